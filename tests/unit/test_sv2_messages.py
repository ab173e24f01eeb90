"""SV2 messages: ids and channel bits per the spec tables, exact vectors, sizes, tails."""

from __future__ import annotations

import dataclasses

import pytest

from stratum_proxy.errors import LocalProtocolError
from stratum_proxy.sv2.errors import Sv2ProtocolError
from stratum_proxy.sv2.framing import FrameDecoder, Header
from stratum_proxy.sv2.messages import (
    ChannelEndpointChanged,
    CloseChannel,
    Message,
    NewExtendedMiningJob,
    NewMiningJob,
    OpenExtendedMiningChannel,
    OpenExtendedMiningChannelSuccess,
    OpenMiningChannelError,
    OpenStandardMiningChannel,
    OpenStandardMiningChannelSuccess,
    Reconnect,
    RequestExtensions,
    RequestExtensionsError,
    RequestExtensionsSuccess,
    SetCustomMiningJob,
    SetCustomMiningJobError,
    SetCustomMiningJobSuccess,
    SetExtranoncePrefix,
    SetGroupChannel,
    SetNewPrevHash,
    SetTarget,
    SetupConnection,
    SetupConnectionError,
    SetupConnectionSuccess,
    SubmitSharesError,
    SubmitSharesExtended,
    SubmitSharesStandard,
    SubmitSharesSuccess,
    Tlv,
    UpdateChannel,
    UpdateChannelError,
    decode_message,
    encode_message,
    message_class,
)
from stratum_proxy.sv2.messages.base import _REGISTRY

H32 = bytes(range(32))
EN = b"\x00" * 7 + b"\x01"

# (class, extension, msg_type, channel bit) written from notes §4.1/§4.2 (spec + SRI constants).
ID_TABLE = [
    (SetupConnection, 0, 0x00, False),
    (SetupConnectionSuccess, 0, 0x01, False),
    (SetupConnectionError, 0, 0x02, False),
    (ChannelEndpointChanged, 0, 0x03, True),
    (Reconnect, 0, 0x04, False),
    (OpenStandardMiningChannel, 0, 0x10, False),
    (OpenStandardMiningChannelSuccess, 0, 0x11, False),
    (OpenMiningChannelError, 0, 0x12, False),
    (OpenExtendedMiningChannel, 0, 0x13, False),
    (OpenExtendedMiningChannelSuccess, 0, 0x14, False),
    (NewMiningJob, 0, 0x15, True),
    (UpdateChannel, 0, 0x16, True),
    (UpdateChannelError, 0, 0x17, True),
    (CloseChannel, 0, 0x18, True),
    (SetExtranoncePrefix, 0, 0x19, True),
    (SubmitSharesStandard, 0, 0x1A, True),
    (SubmitSharesExtended, 0, 0x1B, True),
    (SubmitSharesSuccess, 0, 0x1C, True),
    (SubmitSharesError, 0, 0x1D, True),
    (NewExtendedMiningJob, 0, 0x1F, True),
    (SetNewPrevHash, 0, 0x20, True),
    (SetTarget, 0, 0x21, True),
    (SetCustomMiningJob, 0, 0x22, True),
    (SetCustomMiningJobSuccess, 0, 0x23, True),
    (SetCustomMiningJobError, 0, 0x24, True),
    (SetGroupChannel, 0, 0x25, False),
    (RequestExtensions, 1, 0x00, False),
    (RequestExtensionsSuccess, 1, 0x01, False),
    (RequestExtensionsError, 1, 0x02, False),
]

# One instance per class with every field away from its default, and the payload
# size the spec tables give (notes §4.2 "size" column where there is one).
SAMPLES: list[tuple[Message, int | None]] = [
    (
        SetupConnection(
            protocol=0,
            min_version=2,
            max_version=2,
            flags=4,
            endpoint_host="pool.example",
            endpoint_port=3336,
            vendor="v",
            hardware_version="hw",
            firmware="fw",
            device_id="d",
        ),
        None,
    ),
    (SetupConnectionSuccess(used_version=2, flags=2), 6),
    (SetupConnectionError(flags=1, error_code="unsupported-feature-flags"), None),
    (ChannelEndpointChanged(channel_id=9), 4),
    (Reconnect(new_host="other", new_port=34255), None),
    (
        OpenStandardMiningChannel(
            request_id=1, user_identity="acct.w1", nominal_hash_rate=2.0**40, max_target=H32
        ),
        41 + 7,
    ),
    (
        OpenStandardMiningChannelSuccess(
            request_id=1, channel_id=2, target=H32, extranonce_prefix=EN, group_channel_id=3
        ),
        45 + 8,
    ),
    (OpenMiningChannelError(request_id=1, error_code="unknown-user"), None),
    (
        OpenExtendedMiningChannel(
            request_id=1,
            user_identity="acct",
            nominal_hash_rate=5.0,
            max_target=H32,
            min_extranonce_size=8,
        ),
        43 + 4,
    ),
    (
        OpenExtendedMiningChannelSuccess(
            request_id=1,
            channel_id=2,
            target=H32,
            extranonce_size=16,
            extranonce_prefix=EN,
            group_channel_id=7,
        ),
        47 + 8,
    ),
    (NewMiningJob(channel_id=1, job_id=2, min_ntime=None, version=0x20000000, merkle_root=H32), 45),
    (UpdateChannel(channel_id=1, nominal_hash_rate=2.5, maximum_target=H32), 40),
    (UpdateChannelError(channel_id=1, error_code="invalid-channel-id"), None),
    (CloseChannel(channel_id=1, reason_code="bye"), None),
    (SetExtranoncePrefix(channel_id=1, extranonce_prefix=EN), None),
    (
        SubmitSharesStandard(
            channel_id=1, sequence_number=2, job_id=3, nonce=4, ntime=5, version=6
        ),
        24,
    ),
    (
        SubmitSharesExtended(
            channel_id=1, sequence_number=2, job_id=3, nonce=4, ntime=5, version=6, extranonce=EN
        ),
        25 + 8,
    ),
    (
        SubmitSharesSuccess(
            channel_id=1,
            last_sequence_number=9,
            new_submits_accepted_count=10,
            new_shares_sum=2**40,
        ),
        20,
    ),
    (SubmitSharesError(channel_id=1, sequence_number=2, error_code="stale-share"), None),
    (
        NewExtendedMiningJob(
            channel_id=1,
            job_id=2,
            min_ntime=1700000000,
            version=0x20000000,
            version_rolling_allowed=True,
            merkle_path=(H32, H32[::-1]),
            coinbase_tx_prefix=b"\x01" * 40,
            coinbase_tx_suffix=b"\x02" * 300,
        ),
        4 + 4 + 5 + 4 + 1 + (1 + 64) + (2 + 40) + (2 + 300),
    ),
    (SetNewPrevHash(channel_id=1, job_id=2, prev_hash=H32, min_ntime=3, nbits=0x1D00FFFF), 48),
    (SetTarget(channel_id=1, maximum_target=H32), 36),
    (
        SetCustomMiningJob(
            channel_id=1,
            request_id=2,
            mining_job_token=b"tok",
            version=3,
            prev_hash=H32,
            min_ntime=4,
            nbits=5,
            coinbase_tx_version=2,
            coinbase_prefix=b"\x03\x01\x02\x03",
            coinbase_tx_input_n_sequence=0xFFFFFFFF,
            coinbase_tx_outputs=b"\x01" + b"\x00" * 12,
            coinbase_tx_locktime=6,
            merkle_path=(H32,),
        ),
        None,
    ),
    (SetCustomMiningJobSuccess(channel_id=1, request_id=2, job_id=3), 12),
    (
        SetCustomMiningJobError(channel_id=1, request_id=2, error_code="invalid-mining-job-token"),
        None,
    ),
    (SetGroupChannel(group_channel_id=100, channel_ids=(1, 2, 3)), 4 + 2 + 12),
    (RequestExtensions(request_id=1, requested_extensions=(2,)), 2 + 2 + 2),
    (RequestExtensionsSuccess(request_id=1, supported_extensions=(2, 3)), 2 + 2 + 4),
    (
        RequestExtensionsError(request_id=1, unsupported_extensions=(5,), required_extensions=()),
        2 + 4 + 2,
    ),
]


def test_every_registered_class_is_in_the_id_table_and_has_a_sample() -> None:
    assert {cls for cls, *_ in ID_TABLE} == set(_REGISTRY.values())
    assert {type(m) for m, _ in SAMPLES} == set(_REGISTRY.values())


@pytest.mark.parametrize(
    ("cls", "ext", "msg_type", "channel"), ID_TABLE, ids=lambda v: getattr(v, "__name__", "")
)
def test_ids_and_channel_bits(cls: type[Message], ext: int, msg_type: int, channel: bool) -> None:
    assert (ext, msg_type, channel) == (cls.EXTENSION_TYPE, cls.MSG_TYPE, cls.CHANNEL_MSG)
    assert message_class(ext, msg_type) is cls


@pytest.mark.parametrize(("msg", "size"), SAMPLES, ids=lambda v: type(v).__name__)
def test_round_trip_size_and_frame(msg: Message, size: int | None) -> None:
    payload = msg.encode()
    if size is not None:
        assert len(payload) == size
    assert type(msg).decode(payload) == msg
    frame = encode_message(msg)
    [(header, body)] = FrameDecoder().feed(frame)
    assert header == Header(
        extension_type=msg.EXTENSION_TYPE,
        msg_type=msg.MSG_TYPE,
        msg_length=len(payload),
        channel_msg=msg.CHANNEL_MSG,
    )
    assert decode_message(header, body) == msg


@pytest.mark.parametrize(("msg", "size"), SAMPLES, ids=lambda v: type(v).__name__)
def test_trailing_byte_is_rejected(msg: Message, size: int | None) -> None:
    # A lone extra byte is never valid: not a whole U32 group id, not a whole TLV.
    with pytest.raises(Sv2ProtocolError):
        type(msg).decode(msg.encode() + b"\x00")


@pytest.mark.parametrize(("msg", "size"), SAMPLES, ids=lambda v: type(v).__name__)
def test_every_truncation_is_rejected(msg: Message, size: int | None) -> None:
    payload = msg.encode()
    for cut in range(len(payload)):
        if isinstance(msg, OpenExtendedMiningChannelSuccess) and cut == len(payload) - 4:
            continue  # the pre-2025-10 shape, accepted on purpose (below)
        with pytest.raises(Sv2ProtocolError):
            type(msg).decode(payload[:cut])


# sv2-tp src/test/sv2_messages_tests.cpp (notes V13).
SV2_TP_SETUP_CONNECTION = bytes.fromhex(
    "02"
    "0200"
    "0200"
    "01000000"
    "07302e302e302e30"
    "6121"
    "074269746d61696e"
    "085339692031332e35"
    "1c62726169696e732d6f732d323031382d30392d32322d312d68617368"
    "10736f6d652d6465766963652d75756964"
)


def test_sv2_tp_setup_connection_payload() -> None:
    assert len(SV2_TP_SETUP_CONNECTION) == 82
    msg = SetupConnection.decode(SV2_TP_SETUP_CONNECTION)
    assert msg == SetupConnection(
        protocol=2,
        min_version=2,
        max_version=2,
        flags=1,
        endpoint_host="0.0.0.0",
        endpoint_port=8545,
        vendor="Bitmain",
        hardware_version="S9i 13.5",
        firmware="braiins-os-2018-09-22-1-hash",
        device_id="some-device-uuid",
    )
    assert msg.encode() == SV2_TP_SETUP_CONNECTION
    assert encode_message(msg)[:6] == bytes.fromhex("000000520000")


def test_sv2_tp_setup_connection_success_and_error() -> None:
    assert SetupConnectionSuccess(used_version=2, flags=3).encode() == bytes.fromhex("020003000000")
    error_hex = "000000001970726f746f636f6c2d76657273696f6e2d6d69736d61746368"
    error = SetupConnectionError.decode(bytes.fromhex(error_hex))
    assert error == SetupConnectionError(flags=0, error_code="protocol-version-mismatch")
    assert error.encode().hex() == error_hex


def test_new_mining_job_option_sizes() -> None:
    future = NewMiningJob(channel_id=1, job_id=2, min_ntime=None, version=3, merkle_root=H32)
    active = dataclasses.replace(future, min_ntime=1700000000)
    assert len(future.encode()) == 45 and future.encode()[8] == 0
    assert len(active.encode()) == 49 and active.encode()[8:13] == b"\x01" + (1700000000).to_bytes(
        4, "little"
    )


def test_open_extended_success_both_shapes() -> None:
    new = OpenExtendedMiningChannelSuccess(
        request_id=1,
        channel_id=2,
        target=H32,
        extranonce_size=16,
        extranonce_prefix=EN,
        group_channel_id=5,
    )
    payload = new.encode()
    # Pre-2025-10 peers (SRI <= v1.6, message-generator data) stop after the prefix.
    old = OpenExtendedMiningChannelSuccess.decode(payload[:-4])
    assert old == dataclasses.replace(new, group_channel_id=None)
    # We always send the 47+n form: an absent group id goes out as 0.
    assert old.encode() == payload[:-4] + b"\x00\x00\x00\x00"
    with pytest.raises(Sv2ProtocolError):
        OpenExtendedMiningChannelSuccess.decode(payload + b"\x00\x00\x00\x00")


def test_submit_shares_extended_tlv_is_little_endian() -> None:
    base = SubmitSharesExtended(
        channel_id=1, sequence_number=2, job_id=3, nonce=4, ntime=5, version=6, extranonce=EN
    )
    # SRI parsers-sv2 tlv/codec.rs: 02 00 | 01 | 0a 00 | "Worker_001".
    tlv_bytes = bytes.fromhex("0200010a00") + b"Worker_001"
    other = bytes.fromhex("0440020100") + b"x"  # an unknown extension, kept as is
    msg = SubmitSharesExtended.decode(base.encode() + tlv_bytes + other)
    assert msg.extensions == (
        Tlv(extension_type=2, field_type=1, value=b"Worker_001"),
        Tlv(extension_type=0x4004, field_type=2, value=b"x"),
    )
    assert msg.user_identity() == "Worker_001"
    assert msg.encode() == base.encode() + tlv_bytes + other
    assert base.user_identity() is None
    assert Tlv.user_identity("Worker_001").value == b"Worker_001"


@pytest.mark.parametrize("tail", ["0200", "0200010a00" + "41" * 9])
def test_cut_tlv_is_rejected(tail: str) -> None:
    base = SubmitSharesExtended(
        channel_id=1, sequence_number=2, job_id=3, nonce=4, ntime=5, version=6, extranonce=EN
    )
    with pytest.raises(Sv2ProtocolError, match="extensions"):
        SubmitSharesExtended.decode(base.encode() + bytes.fromhex(tail))


def test_user_identity_tlv_over_32_bytes_is_refused() -> None:
    with pytest.raises(LocalProtocolError):
        Tlv.user_identity("w" * 33)


def test_decode_error_names_the_message_and_field() -> None:
    payload = bytearray(SetExtranoncePrefix(channel_id=1, extranonce_prefix=EN).encode())
    payload[4] = 40  # B0_32 length over 32
    with pytest.raises(Sv2ProtocolError, match=r"SetExtranoncePrefix\.extranonce_prefix"):
        SetExtranoncePrefix.decode(bytes(payload))


def test_encode_error_names_the_field() -> None:
    msg = SetExtranoncePrefix(channel_id=1, extranonce_prefix=b"\x00" * 33)
    with pytest.raises(LocalProtocolError, match=r"SetExtranoncePrefix\.extranonce_prefix"):
        msg.encode()


def test_messages_are_frozen_slotted_kw_only() -> None:
    msg = SetTarget(channel_id=1, maximum_target=H32)
    with pytest.raises(dataclasses.FrozenInstanceError):
        msg.channel_id = 2  # type: ignore[misc]
    assert not hasattr(msg, "__dict__")
    with pytest.raises(TypeError):
        SetTarget(1, H32)  # type: ignore[call-arg]
