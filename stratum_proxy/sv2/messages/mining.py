"""Mining protocol messages (spec §5.3, SRI ``subprotocols/mining``; notes §4.2).

Fields are in wire order.  Two messages have a tail beyond their fixed fields:

* ``OpenExtendedMiningChannelSuccess.group_channel_id`` exists only since spec
  2025-10 / SRI v1.7.0; older peers (SRI <= v1.6, the message-generator data)
  end the payload after ``extranonce_prefix``.  Decoding accepts both shapes
  (absent -> ``None``); encoding always writes it (``None`` -> 0), because newer
  clients such as ESP-Miner require the 47+n-byte form.
* ``SubmitSharesExtended.extensions``: TLV fields of negotiated extensions
  (spec §3.4.3), kept in order and re-encoded byte for byte.  Type and length
  are little-endian as SRI sends them (notes §9.3; the spec's example prints BE).

The three messages that cross a connection once per share (SubmitSharesExtended
out, SubmitShares.Success / .Error back) have a struct-based codec of their own
(the functions at the end): one ``pack``/``unpack`` instead of a codec call per
field.  Their classes' ``encode``/``decode`` use it, and the SV2 client calls the
functions directly, without building the message object.  Anything those
functions do not expect (a value out of range, a TLV tail, a short payload)
goes to the generic codec, which gives the same bytes or raises the error that
names the field; the property tests check both against each other.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from stratum_proxy.sv2.errors import Sv2ProtocolError
from stratum_proxy.sv2.messages.base import (
    EXTENSION_WORKER_HASHRATE_TRACKING,
    Message,
    generic_decode,
    generic_encode,
    register,
)
from stratum_proxy.sv2.messages.tlv import TLV_FIELD_USER_IDENTITY, Tlv
from stratum_proxy.sv2.types import (
    B0_32,
    B0_64K,
    B0_255,
    BOOL,
    F32,
    MAX_B0_32,
    MAX_STR0_255,
    OPTION_U32,
    SEQ0_64K_U32,
    SEQ0_255_U256,
    STR0_255,
    U16,
    U32,
    U64,
    U256,
    Reader,
    Writer,
)


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class OpenStandardMiningChannel(Message):
    MSG_TYPE: ClassVar[int] = 0x10
    CHANNEL_MSG: ClassVar[bool] = False

    request_id: U32
    user_identity: STR0_255
    nominal_hash_rate: F32  # h/s
    max_target: U256


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class OpenStandardMiningChannelSuccess(Message):
    MSG_TYPE: ClassVar[int] = 0x11
    CHANNEL_MSG: ClassVar[bool] = False

    request_id: U32
    channel_id: U32
    target: U256
    extranonce_prefix: B0_32
    group_channel_id: U32


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class OpenMiningChannelError(Message):
    MSG_TYPE: ClassVar[int] = 0x12
    CHANNEL_MSG: ClassVar[bool] = False

    request_id: U32
    error_code: STR0_255


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class OpenExtendedMiningChannel(Message):
    MSG_TYPE: ClassVar[int] = 0x13
    CHANNEL_MSG: ClassVar[bool] = False

    request_id: U32
    user_identity: STR0_255
    nominal_hash_rate: F32
    max_target: U256
    min_extranonce_size: U16


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class OpenExtendedMiningChannelSuccess(Message):
    MSG_TYPE: ClassVar[int] = 0x14
    CHANNEL_MSG: ClassVar[bool] = False

    request_id: U32
    channel_id: U32
    target: U256
    extranonce_size: U16
    extranonce_prefix: B0_32
    group_channel_id: int | None = None  # tail: see the module docstring

    def _encode_tail(self, writer: Writer) -> None:
        writer.push_u32(self.group_channel_id or 0)

    @classmethod
    def _decode_tail(cls, reader: Reader) -> dict[str, Any]:
        return {"group_channel_id": None if reader.eof() else reader.pull_u32()}


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class NewMiningJob(Message):
    MSG_TYPE: ClassVar[int] = 0x15
    CHANNEL_MSG: ClassVar[bool] = True

    channel_id: U32
    job_id: U32
    min_ntime: OPTION_U32  # None: future job, waits for SetNewPrevHash
    version: U32
    merkle_root: U256


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateChannel(Message):
    MSG_TYPE: ClassVar[int] = 0x16
    CHANNEL_MSG: ClassVar[bool] = True

    channel_id: U32
    nominal_hash_rate: F32
    maximum_target: U256


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateChannelError(Message):
    MSG_TYPE: ClassVar[int] = 0x17
    CHANNEL_MSG: ClassVar[bool] = True

    channel_id: U32
    error_code: STR0_255


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class CloseChannel(Message):
    MSG_TYPE: ClassVar[int] = 0x18
    CHANNEL_MSG: ClassVar[bool] = True

    channel_id: U32
    reason_code: STR0_255


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class SetExtranoncePrefix(Message):
    MSG_TYPE: ClassVar[int] = 0x19
    CHANNEL_MSG: ClassVar[bool] = True

    channel_id: U32
    extranonce_prefix: B0_32


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitSharesStandard(Message):
    MSG_TYPE: ClassVar[int] = 0x1A
    CHANNEL_MSG: ClassVar[bool] = True

    channel_id: U32
    sequence_number: U32
    job_id: U32
    nonce: U32
    ntime: U32
    version: U32  # the full header nVersion

    @classmethod
    def decode(cls, payload: bytes | bytearray | memoryview) -> Self:
        fields = decode_submit_shares_standard(payload)
        if fields is None:
            return generic_decode(cls, payload)  # raises, saying what is wrong
        channel_id, sequence_number, job_id, nonce, ntime, version = fields
        return cls(
            channel_id=channel_id,
            sequence_number=sequence_number,
            job_id=job_id,
            nonce=nonce,
            ntime=ntime,
            version=version,
        )


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitSharesExtended(Message):
    MSG_TYPE: ClassVar[int] = 0x1B
    CHANNEL_MSG: ClassVar[bool] = True

    channel_id: U32
    sequence_number: U32
    job_id: U32
    nonce: U32
    ntime: U32
    version: U32
    extranonce: B0_32  # length must equal the channel's extranonce_size
    extensions: tuple[Tlv, ...] = ()  # tail: see the module docstring

    def encode(self) -> bytes:
        if not self.extensions:
            payload = encode_submit_shares_extended(
                self.channel_id,
                self.sequence_number,
                self.job_id,
                self.nonce,
                self.ntime,
                self.version,
                self.extranonce,
            )
            if payload is not None:
                return payload
        return generic_encode(self)

    @classmethod
    def decode(cls, payload: bytes | bytearray | memoryview) -> Self:
        fields = decode_submit_shares_extended(payload)
        if fields is None:
            return generic_decode(cls, payload)
        channel_id, sequence_number, job_id, nonce, ntime, version, extranonce = fields
        return cls(
            channel_id=channel_id,
            sequence_number=sequence_number,
            job_id=job_id,
            nonce=nonce,
            ntime=ntime,
            version=version,
            extranonce=extranonce,
        )

    def _encode_tail(self, writer: Writer) -> None:
        for tlv in self.extensions:
            tlv.push(writer)

    @classmethod
    def _decode_tail(cls, reader: Reader) -> dict[str, Any]:
        extensions: list[Tlv] = []
        while not reader.eof():
            try:
                extensions.append(Tlv.pull(reader))
            except Sv2ProtocolError as exc:
                raise Sv2ProtocolError(f"{cls.__name__}.extensions: {exc}") from exc
        return {"extensions": tuple(extensions)}

    def user_identity(self) -> str | None:
        """The extension-0x0002 worker name, if the miner sent one as valid UTF-8."""
        for tlv in self.extensions:
            if (tlv.extension_type, tlv.field_type) == (
                EXTENSION_WORKER_HASHRATE_TRACKING,
                TLV_FIELD_USER_IDENTITY,
            ):
                try:
                    return tlv.value.decode("utf-8")
                except UnicodeDecodeError:
                    return None
        return None


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitSharesSuccess(Message):
    MSG_TYPE: ClassVar[int] = 0x1C
    CHANNEL_MSG: ClassVar[bool] = True

    channel_id: U32
    last_sequence_number: U32
    new_submits_accepted_count: U32  # since the previous Success (batched acks)
    new_shares_sum: U64

    def encode(self) -> bytes:
        payload = encode_submit_shares_success(
            self.channel_id,
            self.last_sequence_number,
            self.new_submits_accepted_count,
            self.new_shares_sum,
        )
        return generic_encode(self) if payload is None else payload  # raises: which field

    @classmethod
    def decode(cls, payload: bytes | bytearray | memoryview) -> Self:
        fields = decode_submit_shares_success(payload)
        if fields is None:
            return generic_decode(cls, payload)
        channel_id, last_sequence_number, new_submits_accepted_count, new_shares_sum = fields
        return cls(
            channel_id=channel_id,
            last_sequence_number=last_sequence_number,
            new_submits_accepted_count=new_submits_accepted_count,
            new_shares_sum=new_shares_sum,
        )


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitSharesError(Message):
    MSG_TYPE: ClassVar[int] = 0x1D
    CHANNEL_MSG: ClassVar[bool] = True

    channel_id: U32
    sequence_number: U32
    error_code: STR0_255

    def encode(self) -> bytes:
        try:
            code = self.error_code.encode("utf-8")
            if len(code) <= MAX_STR0_255 and type(self.error_code) is str:
                return _ERROR_HEAD.pack(self.channel_id, self.sequence_number, len(code)) + code
        except (struct.error, UnicodeEncodeError, AttributeError):
            pass
        return generic_encode(self)  # raises, naming the first field that does not fit

    @classmethod
    def decode(cls, payload: bytes | bytearray | memoryview) -> Self:
        fields = decode_submit_shares_error(payload)
        if fields is None:
            return generic_decode(cls, payload)
        channel_id, sequence_number, error_code = fields
        return cls(channel_id=channel_id, sequence_number=sequence_number, error_code=error_code)


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class NewExtendedMiningJob(Message):
    MSG_TYPE: ClassVar[int] = 0x1F
    CHANNEL_MSG: ClassVar[bool] = True

    channel_id: U32  # an extended channel or a group channel
    job_id: U32
    min_ntime: OPTION_U32
    version: U32
    version_rolling_allowed: BOOL
    merkle_path: SEQ0_255_U256  # raw nodes, deepest first
    coinbase_tx_prefix: B0_64K
    coinbase_tx_suffix: B0_64K


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class SetNewPrevHash(Message):
    MSG_TYPE: ClassVar[int] = 0x20
    CHANNEL_MSG: ClassVar[bool] = True

    channel_id: U32
    job_id: U32
    prev_hash: U256  # header byte order
    min_ntime: U32
    nbits: U32


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class SetTarget(Message):
    MSG_TYPE: ClassVar[int] = 0x21
    CHANNEL_MSG: ClassVar[bool] = True

    channel_id: U32
    maximum_target: U256


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class SetCustomMiningJob(Message):
    MSG_TYPE: ClassVar[int] = 0x22
    CHANNEL_MSG: ClassVar[bool] = True

    channel_id: U32
    request_id: U32
    mining_job_token: B0_255
    version: U32
    prev_hash: U256
    min_ntime: U32
    nbits: U32
    coinbase_tx_version: U32
    coinbase_prefix: B0_255
    coinbase_tx_input_n_sequence: U32
    coinbase_tx_outputs: B0_64K
    coinbase_tx_locktime: U32
    merkle_path: SEQ0_255_U256


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class SetCustomMiningJobSuccess(Message):
    MSG_TYPE: ClassVar[int] = 0x23
    CHANNEL_MSG: ClassVar[bool] = True

    channel_id: U32
    request_id: U32
    job_id: U32


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class SetCustomMiningJobError(Message):
    MSG_TYPE: ClassVar[int] = 0x24
    CHANNEL_MSG: ClassVar[bool] = True

    channel_id: U32
    request_id: U32
    error_code: STR0_255


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class SetGroupChannel(Message):
    MSG_TYPE: ClassVar[int] = 0x25
    CHANNEL_MSG: ClassVar[bool] = False

    group_channel_id: U32
    channel_ids: SEQ0_64K_U32


# --- the per-share messages' struct codec (see the module docstring) ----------------------

# channel_id, sequence_number, job_id, nonce, ntime, version: SubmitSharesStandard.
_SUBMIT_STANDARD = struct.Struct("<6I")
_SUBMIT_STANDARD_SIZE = _SUBMIT_STANDARD.size  # 24
# channel_id, sequence_number, job_id, nonce, ntime, version, then extranonce's length byte.
_SUBMIT_EXTENDED_HEAD = struct.Struct("<6IB")
_SUBMIT_EXTENDED_HEAD_SIZE = _SUBMIT_EXTENDED_HEAD.size  # 25
# channel_id, last_sequence_number, new_submits_accepted_count, new_shares_sum.
_SUCCESS = struct.Struct("<3IQ")
_SUCCESS_SIZE = _SUCCESS.size  # 20
# channel_id, sequence_number, then error_code's length byte.
_ERROR_HEAD = struct.Struct("<2IB")
_ERROR_HEAD_SIZE = _ERROR_HEAD.size  # 9


def encode_submit_shares_extended(
    channel_id: int,
    sequence_number: int,
    job_id: int,
    nonce: int,
    ntime: int,
    version: int,
    extranonce: bytes,
) -> bytes | None:
    """A SubmitSharesExtended payload without TLVs; None if a value does not fit its type."""
    if type(extranonce) is not bytes or len(extranonce) > MAX_B0_32:
        return None
    try:
        head = _SUBMIT_EXTENDED_HEAD.pack(
            channel_id, sequence_number, job_id, nonce, ntime, version, len(extranonce)
        )
    except struct.error:
        return None
    return head + extranonce


def decode_submit_shares_extended(
    payload: bytes | bytearray | memoryview,
) -> tuple[int, int, int, int, int, int, bytes] | None:
    """(channel_id, sequence_number, job_id, nonce, ntime, version, extranonce) of a
    SubmitSharesExtended without TLVs; None for anything else (TLVs, malformed)."""
    if len(payload) < _SUBMIT_EXTENDED_HEAD_SIZE:
        return None
    channel_id, seq, job_id, nonce, ntime, version, size = _SUBMIT_EXTENDED_HEAD.unpack_from(
        payload
    )
    if size > MAX_B0_32 or len(payload) != _SUBMIT_EXTENDED_HEAD_SIZE + size:
        return None
    extranonce = bytes(payload[_SUBMIT_EXTENDED_HEAD_SIZE:])
    return channel_id, seq, job_id, nonce, ntime, version, extranonce


def decode_submit_shares_standard(
    payload: bytes | bytearray | memoryview,
) -> tuple[int, int, int, int, int, int] | None:
    """(channel_id, sequence_number, job_id, nonce, ntime, version) of a
    SubmitSharesStandard; None unless the payload is exactly those 24 bytes."""
    if len(payload) != _SUBMIT_STANDARD_SIZE:
        return None
    fields: tuple[int, int, int, int, int, int] = _SUBMIT_STANDARD.unpack(payload)
    return fields


def encode_submit_shares_success(
    channel_id: int, last_sequence_number: int, accepted_count: int, shares_sum: int
) -> bytes | None:
    """A SubmitShares.Success payload; None if a value does not fit its type."""
    try:
        return _SUCCESS.pack(channel_id, last_sequence_number, accepted_count, shares_sum)
    except struct.error:
        return None


def decode_submit_shares_success(
    payload: bytes | bytearray | memoryview,
) -> tuple[int, int, int, int] | None:
    """(channel_id, last_sequence_number, new_submits_accepted_count, new_shares_sum);
    None when the payload is not exactly those 20 bytes."""
    if len(payload) != _SUCCESS_SIZE:
        return None
    fields: tuple[int, int, int, int] = _SUCCESS.unpack(payload)
    return fields


def decode_submit_shares_error(
    payload: bytes | bytearray | memoryview,
) -> tuple[int, int, str] | None:
    """(channel_id, sequence_number, error_code); None when malformed (the generic
    decoder then raises the error that says how)."""
    if len(payload) < _ERROR_HEAD_SIZE:
        return None
    channel_id, seq, size = _ERROR_HEAD.unpack_from(payload)
    if len(payload) != _ERROR_HEAD_SIZE + size:
        return None
    try:
        code = bytes(payload[_ERROR_HEAD_SIZE:]).decode("utf-8")
    except UnicodeDecodeError:
        return None
    return channel_id, seq, code
