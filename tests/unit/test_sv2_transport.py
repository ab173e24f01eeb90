"""Encrypted SV2 frame layer (spec §4.6, notes §1.2): chunking, partial input, corruption."""

from __future__ import annotations

import pytest

from stratum_proxy.errors import LocalProtocolError
from stratum_proxy.sv2.crypto import MAX_NONCE, CipherState
from stratum_proxy.sv2.errors import Sv2ProtocolError
from stratum_proxy.sv2.transport import MAX_PAYLOAD, NoiseTransport, encrypted_payload_size

K1, K2 = b"\x01" * 32, b"\x02" * 32


def _pair(max_payload: int = MAX_PAYLOAD) -> tuple[NoiseTransport, NoiseTransport]:
    client = NoiseTransport(CipherState(K1), CipherState(K2), max_payload=max_payload)
    server = NoiseTransport(CipherState(K2), CipherState(K1), max_payload=max_payload)
    return client, server


def _frame(payload: bytes, msg_type: int = 0x15, ext: int = 0x8000) -> bytes:
    return (
        ext.to_bytes(2, "little") + bytes([msg_type]) + len(payload).to_bytes(3, "little") + payload
    )


def _payload(size: int) -> bytes:
    return bytes(i * 7 % 251 for i in range(size))


# Expected wire sizes written out by hand from notes §1.2 (22-byte header, then
# ciphertext chunks of at most 65535 = 65519 + 16).
WIRE_CHUNKS = {
    0: [],
    1: [17],
    65519: [65535],
    65520: [65535, 17],
    131038: [65535, 65535],
    131039: [65535, 65535, 17],
    70000: [65535, 4497],
}


@pytest.mark.parametrize("size", sorted(WIRE_CHUNKS))
def test_chunking_matches_the_spec(size: int) -> None:
    client, server = _pair()
    frame = _frame(_payload(size))
    wire = client.encrypt_frame(frame)
    assert len(wire) == 22 + sum(WIRE_CHUNKS[size])
    assert encrypted_payload_size(size) == sum(WIRE_CHUNKS[size])
    # Decrypt chunk by chunk with a bare cipher: each chunk is its own AEAD message.
    cipher, offset = CipherState(K1), 22
    assert cipher.decrypt(b"", wire[:22]) == frame[:6]
    plain = b""
    for chunk in WIRE_CHUNKS[size]:
        plain += cipher.decrypt(b"", wire[offset : offset + chunk])
        offset += chunk
    assert plain == frame[6:]
    assert cipher.nonce == 1 + len(WIRE_CHUNKS[size])
    assert server.feed(wire) == [frame]
    assert server.buffered == 0


def test_encrypted_size_agrees_with_sri_formula() -> None:
    for size in [*range(0, 300), *range(65500, 65540), *range(131020, 131060), 2**24 - 1]:
        assert encrypted_payload_size(size) == size + -(-size // 65519) * 16


def test_byte_by_byte_and_coalesced_input() -> None:
    client, server = _pair()
    frames = [_frame(_payload(n), msg_type=n % 256) for n in (0, 5, 300, 70000)]
    wire = b"".join(client.encrypt_frame(f) for f in frames)
    received: list[bytes] = []
    for i in range(len(wire)):
        received += server.feed(wire[i : i + 1])
    assert received == frames
    # And the other direction in one piece, with a trailing partial frame kept.
    wire = b"".join(server.encrypt_frame(f) for f in frames)
    extra = server.encrypt_frame(_frame(b"tail"))
    wire += extra[:-1]
    assert client.feed(wire) == frames
    assert client.buffered == len(extra) - 1
    assert client.feed(extra[-1:]) == [_frame(b"tail")]


@pytest.mark.parametrize("where", [0, 5, 21, 22, 30, 22 + 65535 - 1, 22 + 65535, -1])
def test_corrupted_ciphertext_is_fatal(where: int) -> None:
    client, server = _pair()
    wire = bytearray(client.encrypt_frame(_frame(_payload(70000))))
    wire[where] ^= 0x80
    with pytest.raises(Sv2ProtocolError, match="failed authentication") as info:
        server.feed(bytes(wire))
    assert info.value.fatal
    # The stream is dead: even valid data is refused afterwards.
    with pytest.raises(Sv2ProtocolError, match="already failed"):
        server.feed(client.encrypt_frame(_frame(b"")))


def test_frames_out_of_order_fail() -> None:
    client, server = _pair()
    first, second = client.encrypt_frame(_frame(b"a")), client.encrypt_frame(_frame(b"b"))
    with pytest.raises(Sv2ProtocolError):
        server.feed(second + first)


def test_payload_limit() -> None:
    client, server = _pair(max_payload=1000)
    assert server.feed(client.encrypt_frame(_frame(_payload(1000)))) == [_frame(_payload(1000))]
    with pytest.raises(Sv2ProtocolError, match="1001 payload bytes, limit is 1000"):
        server.feed(client.encrypt_frame(_frame(_payload(1001)))[:22])


def test_largest_frame_round_trips() -> None:
    client, server = _pair()
    frame = _frame(bytes(2**24 - 1))
    wire = client.encrypt_frame(frame)
    assert len(wire) == 22 + 2**24 - 1 + 257 * 16
    assert server.feed(wire) == [frame]


def test_encrypt_frame_refuses_inconsistent_frames() -> None:
    client, _ = _pair()
    with pytest.raises(LocalProtocolError, match="no header"):
        client.encrypt_frame(b"\x00" * 5)
    with pytest.raises(LocalProtocolError, match="says 3 payload bytes, frame has 2"):
        client.encrypt_frame(_frame(b"abc")[:-1])


def test_reserved_nonce_is_never_used() -> None:
    # Send side: nonces up to 2^64-2 may be used, 2^64-1 never.
    sender = NoiseTransport(CipherState(K1, nonce=MAX_NONCE - 2), CipherState(K2))
    receiver = NoiseTransport(CipherState(K2), CipherState(K1, nonce=MAX_NONCE - 2))
    wire = sender.encrypt_frame(_frame(b"x"))  # uses 2^64-3 and 2^64-2
    assert receiver.feed(wire) == [_frame(b"x")]
    with pytest.raises(LocalProtocolError, match="nonce exhausted"):
        sender.encrypt_frame(_frame(b""))
    # Receive side: a peer that kept sending past the limit is cut off.
    with pytest.raises(Sv2ProtocolError, match="nonce exhausted"):
        receiver.feed(b"\x00" * 22)


def test_frames_before_a_corrupted_one_in_the_same_read_are_returned_with_the_error() -> None:
    client, server = _pair()
    good = [client.encrypt_frame(_frame(_payload(n), msg_type=0x1B)) for n in (10, 40)]
    bad = bytearray(client.encrypt_frame(_frame(_payload(20))))
    bad[-1] ^= 0x01
    frames, error = server.feed_parts_until_error(b"".join(good) + bytes(bad))
    assert [(h[2], p) for h, p in frames] == [(0x1B, _payload(10)), (0x1B, _payload(40))]
    assert isinstance(error, Sv2ProtocolError) and "failed authentication" in str(error)
    # The stream is dead from there on, for either call.
    assert server.feed_parts_until_error(good[0])[0] == []
    with pytest.raises(Sv2ProtocolError, match="already failed"):
        server.feed_parts(good[0])
