"""Fuzz the Noise handshake and encrypted transport: any input either works or raises
Sv2ProtocolError — never another exception, never a hang."""

from __future__ import annotations

import hashlib
import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stratum_proxy.sv2.crypto import CipherState, Rng, xonly_pubkey
from stratum_proxy.sv2.errors import Sv2ProtocolError
from stratum_proxy.sv2.noise import NoiseInitiator, NoiseResponder
from stratum_proxy.sv2.transport import NoiseTransport

AUTH_SK = b"\x5a" * 32
T0 = 1_750_000_000.0
K1, K2 = b"\x01" * 32, b"\x02" * 32
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _rng(seed: bytes) -> Rng:
    counter = itertools.count()

    def rng(n: int) -> bytes:
        return hashlib.sha256(seed + next(counter).to_bytes(8, "big")).digest()[:n]

    return rng


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def _frame(payload: bytes, msg_type: int) -> bytes:
    return b"\x00\x00" + bytes([msg_type]) + len(payload).to_bytes(3, "little") + payload


@FAST
@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=6))
def test_responder_accepts_or_raises_protocol_error(data: bytes, cuts: list[int]) -> None:
    responder = NoiseResponder(AUTH_SK, 3600, T0, _rng(b"r"))
    try:
        for part in _split(data, cuts):
            result = responder.receive(part)
            if result is not None:
                assert len(result[0]) == 234
                break
    except Sv2ProtocolError as exc:
        assert exc.fatal
        assert len(data) > 64  # only an over-long act 1 is refused


@FAST
@given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=6))
def test_initiator_rejects_random_act2(data: bytes, cuts: list[int]) -> None:
    initiator = NoiseInitiator(xonly_pubkey(AUTH_SK), T0, _rng(b"i"))
    initiator.first_message()
    try:
        for part in _split(data, cuts):
            assert initiator.receive(part) is None
        initiator.receive_eof()
    except Sv2ProtocolError as exc:
        assert exc.fatal
    else:
        raise AssertionError("random bytes completed a handshake")


@FAST
@given(st.data())
def test_initiator_with_mutated_act2(data: st.DataObject) -> None:
    initiator = NoiseInitiator(xonly_pubkey(AUTH_SK), T0, _rng(b"i"))
    result = NoiseResponder(AUTH_SK, 3600, T0, _rng(b"r")).receive(initiator.first_message())
    assert result is not None
    act2 = bytearray(result[0])
    for index in data.draw(st.lists(st.integers(0, 233), min_size=1, max_size=4, unique=True)):
        act2[index] ^= data.draw(st.integers(1, 255))
    try:
        initiator.receive(bytes(act2))
    except Sv2ProtocolError:
        return
    raise AssertionError("a mutated act 2 was accepted")


@FAST
@given(st.binary(max_size=2000), st.lists(st.integers(0, 2000), max_size=8))
def test_transport_decoder_on_random_bytes(data: bytes, cuts: list[int]) -> None:
    decoder = NoiseTransport(CipherState(K1), CipherState(K2))
    try:
        for part in _split(data, cuts):
            assert decoder.feed(part) == []  # forging a MAC by chance is not an option
    except Sv2ProtocolError as exc:
        assert exc.fatal


@FAST
@given(
    st.lists(st.tuples(st.binary(max_size=3000), st.integers(0, 255)), max_size=5),
    st.lists(st.integers(0, 20000), max_size=10),
)
def test_transport_round_trip_any_split(frames: list[tuple[bytes, int]], cuts: list[int]) -> None:
    sender = NoiseTransport(CipherState(K1), CipherState(K2))
    receiver = NoiseTransport(CipherState(K2), CipherState(K1))
    plain = [_frame(payload, msg_type) for payload, msg_type in frames]
    wire = b"".join(sender.encrypt_frame(f) for f in plain)
    received: list[bytes] = []
    for part in _split(wire, cuts):
        received += receiver.feed(part)
    assert received == plain
    assert receiver.buffered == 0


@FAST
@given(st.binary(min_size=0, max_size=200), st.data())
def test_transport_mutated_stream_never_yields_altered_frames(
    payload: bytes, data: st.DataObject
) -> None:
    sender = NoiseTransport(CipherState(K1), CipherState(K2))
    receiver = NoiseTransport(CipherState(K2), CipherState(K1))
    frame = _frame(payload, 7)
    wire = bytearray(sender.encrypt_frame(frame))
    index = data.draw(st.integers(0, len(wire) - 1))
    wire[index] ^= data.draw(st.integers(1, 255))
    try:
        received = receiver.feed(bytes(wire))
    except Sv2ProtocolError:
        return
    assert received == []  # cannot happen with a MAC over every byte
    raise AssertionError("a mutated frame was neither rejected nor held")
