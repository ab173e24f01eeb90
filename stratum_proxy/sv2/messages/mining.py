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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from stratum_proxy.sv2.errors import Sv2ProtocolError
from stratum_proxy.sv2.messages.base import EXTENSION_WORKER_HASHRATE_TRACKING, Message, register
from stratum_proxy.sv2.messages.tlv import TLV_FIELD_USER_IDENTITY, Tlv
from stratum_proxy.sv2.types import (
    B0_32,
    B0_64K,
    B0_255,
    BOOL,
    F32,
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


@register
@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitSharesError(Message):
    MSG_TYPE: ClassVar[int] = 0x1D
    CHANNEL_MSG: ClassVar[bool] = True

    channel_id: U32
    sequence_number: U32
    error_code: STR0_255


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
