"""SV2 plaintext frames: header vectors (SRI, sv2-tp), decoder fed the hard way, unknown ids."""

from __future__ import annotations

import pytest

from stratum_proxy.errors import LocalProtocolError
from stratum_proxy.sv2.errors import Sv2ProtocolError
from stratum_proxy.sv2.framing import (
    FRAME_HEADER_SIZE,
    MAX_PAYLOAD,
    FrameDecoder,
    Header,
    UnknownMessage,
    encode_frame,
)
from stratum_proxy.sv2.messages import (
    NewMiningJob,
    SetupConnectionSuccess,
    decode_message,
    encode_message,
)

# SRI parsers-sv2 test `new_mining_job_serialization` (notes §1.1, V4): full frame.
NEW_MINING_JOB_FRAME = (
    bytes.fromhex("008015310000")
    + bytes([1, 2, 3, 4, 5, 6, 7, 8, 1, 9, 10, 11, 12, 13, 14, 15, 16])
    + bytes(range(0x11, 0x31))
)


def test_sri_header_vector() -> None:
    header = Header.decode(bytes([1, 2, 3, 4, 5, 6]))
    assert header == Header(
        extension_type=0x0201, msg_type=3, msg_length=0x060504, channel_msg=False
    )
    assert header.encode() == bytes([1, 2, 3, 4, 5, 6])


def test_sv2_tp_setup_connection_header() -> None:
    header = Header.decode(bytes.fromhex("000000520000"))
    assert (header.extension_type, header.msg_type, header.msg_length) == (0, 0, 82)
    assert not header.channel_msg


def test_channel_bit_is_0x8000_of_the_le_word() -> None:
    # Wire byte 1 bit 7 (notes §1.1, §9.2); the extension id excludes it.
    header = Header.decode(b"\x01\x80\x00\x00\x00\x00")
    assert header.channel_msg and header.extension_type == 0x0001
    encoded = Header(extension_type=0x4001, msg_type=7, msg_length=0, channel_msg=True).encode()
    assert encoded[:2] == b"\x01\xc0"


def test_short_header_is_a_protocol_error() -> None:
    with pytest.raises(Sv2ProtocolError):
        Header.decode(b"\x00" * 5)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"extension_type": 0x8000, "msg_type": 0, "msg_length": 0},
        {"extension_type": 0, "msg_type": 256, "msg_length": 0},
        {"extension_type": 0, "msg_type": 0, "msg_length": MAX_PAYLOAD + 1},
    ],
)
def test_unencodable_header_is_a_local_error(kwargs: dict[str, int]) -> None:
    with pytest.raises(LocalProtocolError):
        Header(channel_msg=False, **kwargs).encode()


def test_sri_new_mining_job_frame_decodes_and_reencodes() -> None:
    assert len(NEW_MINING_JOB_FRAME) == 55
    [(header, payload)] = FrameDecoder().feed(NEW_MINING_JOB_FRAME)
    msg = decode_message(header, payload)
    assert msg == NewMiningJob(
        channel_id=0x04030201,
        job_id=0x08070605,
        min_ntime=0x0C0B0A09,
        version=0x100F0E0D,
        merkle_root=bytes(range(0x11, 0x31)),
    )
    assert encode_message(msg) == NEW_MINING_JOB_FRAME


def _stream() -> tuple[bytes, list[bytes]]:
    payloads = [b"", b"\x01", b"\xab" * 300, b"\x00" * 70000]
    frames = [
        Header(extension_type=0, msg_type=i, msg_length=len(p), channel_msg=bool(i % 2)).encode()
        + p
        for i, p in enumerate(payloads)
    ]
    return b"".join(frames), payloads


def test_decoder_whole_stream() -> None:
    data, payloads = _stream()
    decoder = FrameDecoder()
    frames = decoder.feed(data)
    assert [p for _, p in frames] == payloads
    assert [h.msg_type for h, _ in frames] == [0, 1, 2, 3]
    assert [h.channel_msg for h, _ in frames] == [False, True, False, True]
    assert decoder.pending_bytes == 0


def test_decoder_byte_by_byte() -> None:
    data, payloads = _stream()
    decoder = FrameDecoder()
    frames = []
    for i in range(len(data)):
        frames.extend(decoder.feed(data[i : i + 1]))
    assert [p for _, p in frames] == payloads


def test_decoder_holds_back_a_partial_frame() -> None:
    data, payloads = _stream()
    decoder = FrameDecoder()
    frames = decoder.feed(data + NEW_MINING_JOB_FRAME[:10])
    assert [p for _, p in frames] == payloads
    assert decoder.pending_bytes == 10
    [(header, payload)] = decoder.feed(NEW_MINING_JOB_FRAME[10:])
    assert header.msg_type == 0x15 and len(payload) == 49
    assert decoder.pending_bytes == 0


def test_decoder_next_frame_api() -> None:
    decoder = FrameDecoder()
    decoder.receive_data(NEW_MINING_JOB_FRAME * 2)
    assert decoder.next_frame() is not None
    assert decoder.next_frame() is not None
    assert decoder.next_frame() is None


def test_oversized_frame_is_fatal_and_sticky() -> None:
    decoder = FrameDecoder(max_payload=100)
    big = Header(extension_type=0, msg_type=1, msg_length=101, channel_msg=False).encode()
    with pytest.raises(Sv2ProtocolError) as info:
        decoder.feed(big)
    assert info.value.fatal
    with pytest.raises(Sv2ProtocolError):
        decoder.feed(b"")


def test_good_frames_before_a_bad_header_are_not_lost() -> None:
    decoder = FrameDecoder(max_payload=100)
    bad = Header(extension_type=0, msg_type=1, msg_length=5000, channel_msg=False).encode()
    frames = decoder.feed(NEW_MINING_JOB_FRAME + bad)
    assert len(frames) == 1
    with pytest.raises(Sv2ProtocolError):
        decoder.feed(b"more")


def test_max_payload_setting_is_checked() -> None:
    with pytest.raises(LocalProtocolError):
        FrameDecoder(max_payload=MAX_PAYLOAD + 1)


def test_unknown_channel_extension_message_is_forwardable() -> None:
    payload = b"\x07\x00\x00\x00" + b"opaque"
    frame = Header(extension_type=0x4002, msg_type=0x09, msg_length=len(payload), channel_msg=True)
    [(header, body)] = FrameDecoder().feed(frame.encode() + payload)
    msg = decode_message(header, body)
    assert isinstance(msg, UnknownMessage)
    assert (msg.extension_type, msg.msg_type, msg.channel_id) == (0x4002, 0x09, 7)
    assert encode_frame(msg) == frame.encode() + payload
    moved = msg.with_channel_id(0x01020304)
    assert moved.payload == b"\x04\x03\x02\x01opaque"
    assert encode_frame(moved)[:FRAME_HEADER_SIZE] == frame.encode()


def test_unknown_core_message_type_and_non_channel_message() -> None:
    header = Header(extension_type=0, msg_type=0x70, msg_length=2, channel_msg=False)
    msg = decode_message(header, b"\x01\x02")
    assert isinstance(msg, UnknownMessage) and msg.channel_id is None
    with pytest.raises(LocalProtocolError):
        msg.with_channel_id(1)


def test_dispatch_ignores_a_wrong_channel_bit_on_receive() -> None:
    payload = SetupConnectionSuccess(used_version=2, flags=3).encode()
    header = Header(extension_type=0, msg_type=0x01, msg_length=len(payload), channel_msg=True)
    assert decode_message(header, payload) == SetupConnectionSuccess(used_version=2, flags=3)


def test_payload_length_must_match_header() -> None:
    header = Header(extension_type=0, msg_type=0x01, msg_length=7, channel_msg=False)
    with pytest.raises(Sv2ProtocolError):
        decode_message(header, bytes.fromhex("020003000000"))


def test_sv2_tp_setup_connection_success_frame() -> None:
    frame = encode_message(SetupConnectionSuccess(used_version=2, flags=3))
    assert frame == bytes.fromhex("000001060000" + "020003000000")
