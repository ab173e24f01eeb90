"""Property and fuzz tests for the SV2 codec.

Invariants: every decoder either returns a value or raises Sv2ProtocolError, never
anything else, on any bytes; encode(decode(x)) == x for every valid x; a frame
stream decodes the same however it is cut into reads.
"""

from __future__ import annotations

import contextlib

import pytest
from helpers.sv2_strategies import CLASSES, any_message, messages_of, u16
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stratum_proxy.sv2.errors import Sv2ProtocolError
from stratum_proxy.sv2.framing import FRAME_HEADER_SIZE, FrameDecoder, Header
from stratum_proxy.sv2.messages import (
    Message,
    decode_message,
    encode_message,
)

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _decode_or_protocol_error(cls: type[Message], payload: bytes) -> Message | None:
    try:
        msg = cls.decode(payload)
    except Sv2ProtocolError:
        return None
    # Whatever we accept we can send again, and that form is stable.
    again = msg.encode()
    assert cls.decode(again).encode() == again
    return msg


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@FUZZ
@given(data=st.data())
def test_encode_decode_round_trip(cls: type[Message], data: st.DataObject) -> None:
    msg = data.draw(messages_of(cls))
    payload = msg.encode()
    decoded = cls.decode(payload)
    assert decoded == msg
    assert decoded.encode() == payload


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@FUZZ
@given(payload=st.binary(max_size=400))
def test_random_payload_decodes_or_raises_protocol_error(
    cls: type[Message], payload: bytes
) -> None:
    _decode_or_protocol_error(cls, payload)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@FUZZ
@given(data=st.data())
def test_mutated_payload_decodes_or_raises_protocol_error(
    cls: type[Message], data: st.DataObject
) -> None:
    payload = bytearray(data.draw(messages_of(cls)).encode())
    for _ in range(data.draw(st.integers(1, 4))):
        where = data.draw(st.integers(0, len(payload)))
        action = data.draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        if action == "flip" and where < len(payload):
            payload[where] ^= data.draw(st.integers(1, 0xFF))
        elif action == "cut":
            del payload[where:]
        elif action == "insert":
            payload[where:where] = data.draw(st.binary(min_size=1, max_size=8))
        elif where < len(payload):
            del payload[where]
    _decode_or_protocol_error(cls, bytes(payload))


@FUZZ
@given(
    ext=st.sampled_from([0, 1, 2, 0x4000]) | u16.map(lambda v: v & 0x7FFF),
    msg_type=st.integers(0, 0xFF),
    channel=st.booleans(),
    payload=st.binary(max_size=200),
)
def test_decode_message_on_any_header(
    ext: int, msg_type: int, channel: bool, payload: bytes
) -> None:
    header = Header(
        extension_type=ext, msg_type=msg_type, msg_length=len(payload), channel_msg=channel
    )
    try:
        msg = decode_message(header, payload)
    except Sv2ProtocolError:
        return
    assert encode_message(msg)[FRAME_HEADER_SIZE:] == msg.encode()


@FUZZ
@given(
    chunks=st.lists(st.binary(max_size=80), max_size=12),
    max_payload=st.sampled_from([0, 16, 2**24 - 1]),
)
def test_frame_decoder_on_random_bytes(chunks: list[bytes], max_payload: int) -> None:
    decoder = FrameDecoder(max_payload=max_payload)
    try:
        for chunk in chunks:
            for header, payload in decoder.feed(chunk):
                assert len(payload) == header.msg_length <= max_payload
                with contextlib.suppress(Sv2ProtocolError):
                    decode_message(header, payload)
    except Sv2ProtocolError as exc:
        assert exc.fatal


@FUZZ
@given(msgs=st.lists(any_message, min_size=1, max_size=6), data=st.data())
def test_frame_stream_survives_any_split(msgs: list[Message], data: st.DataObject) -> None:
    stream = b"".join(encode_message(m) for m in msgs)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    decoder = FrameDecoder()
    decoded = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        decoded += [decode_message(h, p) for h, p in decoder.feed(stream[start:end])]
    assert decoded == msgs
    assert decoder.pending_bytes == 0


@given(raw=st.binary(min_size=6, max_size=6))
def test_every_six_bytes_are_a_header_that_reencodes(raw: bytes) -> None:
    assert Header.decode(raw).encode() == raw
