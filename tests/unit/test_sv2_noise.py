"""Noise NX handshake (SV2 spec §4.5, notes §2): constants, transcript, failures."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from stratum_proxy.errors import LocalProtocolError
from stratum_proxy.sv2 import noise
from stratum_proxy.sv2.cert import Certificate, sign_certificate
from stratum_proxy.sv2.crypto import CipherState, Rng, hkdf2, xonly_pubkey
from stratum_proxy.sv2.errors import Sv2ProtocolError
from stratum_proxy.sv2.keys import encode_public_key
from stratum_proxy.sv2.noise import NoiseInitiator, NoiseResponder, Sv2HandshakeError
from stratum_proxy.sv2.transport import NoiseTransport

VECTORS = Path(__file__).resolve().parents[1] / "data" / "vectors" / "sv2"
AUTH_SK = b"\x5a" * 32
AUTH_X = xonly_pubkey(AUTH_SK)
T0 = 1_750_000_000.0
SETUP_FRAME = bytes.fromhex("000000020000") + b"\x00\x02"


def _rng(seed: bytes) -> Rng:
    counter = itertools.count()

    def rng(n: int) -> bytes:
        return hashlib.sha256(seed + next(counter).to_bytes(8, "big")).digest()[:n]

    return rng


def _scripted(*hex_values: str) -> Callable[[int], bytes]:
    values = iter(bytes.fromhex(v) for v in hex_values)

    def rng(n: int) -> bytes:
        value = next(values)
        assert len(value) == n
        return value

    return rng


def _responder(now: float = T0, seed: bytes = b"resp") -> NoiseResponder:
    return NoiseResponder(AUTH_SK, 3600, now, _rng(seed))


def _initiator(now: float = T0, authority: bytes = AUTH_X, leeway_s: float = 10) -> NoiseInitiator:
    return NoiseInitiator(authority, now, _rng(b"init"), leeway_s=leeway_s)


def _act2(responder: NoiseResponder, initiator: NoiseInitiator) -> bytes:
    result = responder.receive(initiator.first_message())
    assert result is not None
    return result[0]


def _assert_connected(client: NoiseTransport, server: NoiseTransport) -> None:
    assert client.handshake_hash == server.handshake_hash
    assert server.feed(client.encrypt_frame(SETUP_FRAME)) == [SETUP_FRAME]
    reply = bytes.fromhex("000001060000") + bytes(6)
    assert client.feed(server.encrypt_frame(reply)) == [reply]


def test_protocol_constants() -> None:
    assert len(noise.PROTOCOL_NAME) == 45
    assert hashlib.sha256(noise.PROTOCOL_NAME).hexdigest() == (
        "2eb47881208e9eee1f669f67c66ee70ea9ea88090d503fe830dc4bc83e29bf10"
    )
    state = noise._SymmetricState()
    assert state.ck.hex() == "2eb47881208e9eee1f669f67c66ee70ea9ea88090d503fe830dc4bc83e29bf10"
    assert state.h.hex() == "922fa32e4f487c0d59caa3bed7899ce3d98db7e13dbd3b7cf2d23dd433dc6104"
    # 64 + (64 + 16) + (74 + 16); the spec's 170 predates EllSwift (notes §1.3).
    assert (noise.ACT1_SIZE, noise.ACT2_SIZE) == (64, 234)


def test_selfgenerated_transcript_regression() -> None:
    """Regression ONLY: sv2_noise_selfgenerated.json came from a Python prototype written
    from the spec, not from an independent SV2 peer; it pins our bytes, not conformance."""
    v = json.loads((VECTORS / "sv2_noise_selfgenerated.json").read_text())
    now = float(v["cert_valid_from"])
    initiator = NoiseInitiator(
        bytes.fromhex(v["authority_xonly"]),
        now,
        _scripted(v["initiator_ephemeral_secret"], v["initiator_ephemeral_aux"]),
    )
    responder = NoiseResponder(
        bytes.fromhex(v["authority_secret"]),
        v["cert_not_valid_after"] - v["cert_valid_from"],
        now,
        # Draw order: ephemeral secret, its ellswift aux, static aux, certificate aux.
        _scripted(
            v["responder_ephemeral_secret"],
            v["responder_ephemeral_aux"],
            v["responder_static_aux"],
            v["cert_sig_aux"],
        ),
        static_secret=bytes.fromhex(v["responder_static_secret"]),
    )
    assert xonly_pubkey(bytes.fromhex(v["authority_secret"])).hex() == v["authority_xonly"]
    msg0 = initiator.first_message()
    assert msg0.hex() == v["msg0"]
    result = responder.receive(msg0)
    assert result is not None
    msg1, server = result
    assert msg1.hex() == v["msg1"]
    client = initiator.receive(msg1)
    assert client is not None
    assert client.handshake_hash.hex() == server.handshake_hash.hex() == v["final_h"]
    assert initiator.certificate == responder.certificate
    assert initiator.certificate is not None
    assert initiator.certificate.valid_from == v["cert_valid_from"]
    k1, k2 = (
        bytes.fromhex(v["k_initiator_to_responder"]),
        bytes.fromhex(v["k_responder_to_initiator"]),
    )
    assert hkdf2(bytes.fromhex(v["final_ck"]), b"") == (k1, k2)
    payload = bytes.fromhex(v["first_frame_plain_payload"])
    # ext 0, msg_type 0 (SetupConnection), msg_length 16
    frame = bytes(3) + len(payload).to_bytes(3, "little") + payload
    wire = client.encrypt_frame(frame)
    assert wire.hex() == v["first_frame_ciphertext"]
    assert server.feed(wire) == [frame]
    # Responder → initiator uses k2 (Split: c2 encrypts responder→initiator).
    back = server.encrypt_frame(frame)
    assert CipherState(k2).decrypt(b"", back[:22]) == frame[:6]


def test_handshake_in_memory_whole() -> None:
    initiator, responder = _initiator(), _responder()
    act1 = initiator.first_message()
    assert len(act1) == 64
    result = responder.receive(act1)
    assert result is not None
    act2, server = result
    assert len(act2) == 234
    client = initiator.receive(act2)
    assert client is not None
    assert initiator.server_static_xonly is not None
    _assert_connected(client, server)


def test_handshake_byte_by_byte() -> None:
    initiator, responder = _initiator(), _responder()
    act1 = initiator.first_message()
    results = [responder.receive(act1[i : i + 1]) for i in range(64)]
    assert results[:-1] == [None] * 63
    final = results[-1]
    assert final is not None
    act2, server = final
    client_results = [initiator.receive(act2[i : i + 1]) for i in range(234)]
    assert client_results[:-1] == [None] * 233
    client = client_results[-1]
    assert client is not None
    _assert_connected(client, server)


def test_frames_behind_act2_reach_the_transport() -> None:
    initiator, responder = _initiator(), _responder()
    result = responder.receive(initiator.first_message())
    assert result is not None
    act2, server = result
    early = server.encrypt_frame(SETUP_FRAME) + server.encrypt_frame(SETUP_FRAME)
    assert len(early) == 2 * (22 + 2 + 16)
    client = initiator.receive(act2 + early[:45])
    assert client is not None
    assert client.feed(b"") == [SETUP_FRAME]
    assert client.feed(early[45:]) == [SETUP_FRAME]


def test_each_connection_gets_a_fresh_static_key_under_one_authority() -> None:
    keys = set()
    for seed in (b"r1", b"r2"):
        initiator = _initiator()
        assert initiator.receive(_act2(_responder(seed=seed), initiator)) is not None
        keys.add(initiator.server_static_xonly)
    assert len(keys) == 2


@pytest.mark.parametrize(
    ("start", "stop", "message"),
    [
        (0, 64, "static key failed authentication"),
        (64, 144, "static key failed authentication"),
        (144, 234, "certificate failed authentication"),
    ],
)
def test_tampering_any_byte_of_act2_fails(start: int, stop: int, message: str) -> None:
    act2 = _act2(_responder(), _initiator())
    for index in range(start, stop):
        initiator = _initiator()
        initiator.first_message()
        tampered = bytearray(act2)
        tampered[index] ^= 0x01
        with pytest.raises(Sv2HandshakeError, match=message) as info:
            initiator.receive(bytes(tampered))
        assert info.value.fatal


def test_wrong_authority_key_fails_and_names_the_key() -> None:
    other = xonly_pubkey(b"\x77" * 32)
    initiator = _initiator(authority=other)
    with pytest.raises(
        Sv2HandshakeError, match="not signed by the configured authority key"
    ) as info:
        initiator.receive(_act2(_responder(), initiator))
    assert encode_public_key(other) in str(info.value)
    assert isinstance(info.value, Sv2ProtocolError)


@pytest.mark.parametrize(
    ("client_now", "leeway", "message"),
    [
        (T0 - 10, 10.0, None),
        (T0 - 10.5, 10.0, "not valid before 2025-06-15T15:06:40Z"),
        (T0 + 3610, 10.0, None),
        (T0 + 3610.5, 10.0, "expired at 2025-06-15T16:06:40Z"),
        (T0 - 0.5, 0.0, "not valid before"),
        (T0 + 3600.5, 0.0, "expired"),
        (T0 + 3600, 0.0, None),
    ],
)
def test_certificate_validity_window(client_now: float, leeway: float, message: str | None) -> None:
    initiator = _initiator(now=client_now, leeway_s=leeway)
    act2 = _act2(_responder(now=T0), initiator)
    if message is None:
        assert initiator.receive(act2) is not None
    else:
        with pytest.raises(Sv2HandshakeError, match=message):
            initiator.receive(act2)


def test_receive_now_overrides_constructor_time() -> None:
    initiator = _initiator(now=T0)
    act2 = _act2(_responder(now=T0), initiator)
    with pytest.raises(Sv2HandshakeError, match="expired"):
        initiator.receive(act2, now=T0 + 7200)


def _offline_certificate(static_secret: bytes, version: int) -> Certificate:
    return sign_certificate(
        authority_secret=AUTH_SK,
        static_xonly=xonly_pubkey(static_secret),
        valid_from=int(T0),
        not_valid_after=int(T0) + 60,
        aux=bytes(32),
        version=version,
    )


def test_certificate_version_other_than_zero_fails() -> None:
    static = b"\x21" * 32
    responder = NoiseResponder(
        None, 0, T0, _rng(b"r"), static, certificate=_offline_certificate(static, 1)
    )
    initiator = _initiator()
    with pytest.raises(Sv2HandshakeError, match="version 1"):
        initiator.receive(_act2(responder, initiator))


def test_offline_certificate_for_long_lived_static_key() -> None:
    static = b"\x21" * 32
    cert = _offline_certificate(static, 0)
    responder = NoiseResponder(None, 0, T0, _rng(b"r"), static, certificate=cert)
    initiator = _initiator()
    act1 = initiator.first_message()
    result = responder.receive(act1)
    assert result is not None
    client = initiator.receive(result[0])
    assert client is not None
    assert initiator.server_static_xonly == xonly_pubkey(static)
    # The same certificate presented with another static key is refused.
    bad = NoiseResponder(None, 0, T0, _rng(b"r"), b"\x22" * 32, certificate=cert)
    initiator = _initiator()
    with pytest.raises(Sv2HandshakeError, match="not signed"):
        initiator.receive(_act2(bad, initiator))


def test_short_act2_then_eof_fails() -> None:
    initiator = _initiator()
    act2 = _act2(_responder(), initiator)
    assert initiator.receive(act2[:233]) is None
    with pytest.raises(Sv2HandshakeError, match="233 of 234"):
        initiator.receive_eof()
    with pytest.raises(Sv2HandshakeError, match="already failed"):
        initiator.receive(act2[233:])


def test_responder_refuses_long_act1_and_early_eof() -> None:
    responder = _responder()
    with pytest.raises(Sv2HandshakeError, match="65 bytes"):
        responder.receive(_initiator().first_message() + b"\x00")
    with pytest.raises(Sv2HandshakeError, match="already failed"):
        responder.receive(b"")
    responder = _responder()
    assert responder.receive(b"\x00" * 10) is None
    with pytest.raises(Sv2HandshakeError, match="10 of 64"):
        responder.receive_eof()


def test_garbage_act2_fails() -> None:
    initiator = _initiator()
    initiator.first_message()
    with pytest.raises(Sv2HandshakeError):
        initiator.receive(_rng(b"junk")(32) * 8)


def test_misuse_is_a_local_error() -> None:
    initiator = _initiator()
    with pytest.raises(LocalProtocolError):
        initiator.receive(b"\x00")
    act2 = _act2(_responder(), initiator)
    assert initiator.receive(act2) is not None
    with pytest.raises(LocalProtocolError):
        initiator.receive(b"")
    initiator.receive_eof()  # after completion, EOF is the transport's business
    responder = _responder()
    assert responder.receive(_initiator().first_message()) is not None
    with pytest.raises(LocalProtocolError):
        responder.receive(b"")
    with pytest.raises(ValueError):
        NoiseInitiator(b"\xff" * 32, T0, _rng(b"x"))
    with pytest.raises(ValueError):
        NoiseResponder(None, 3600, T0, _rng(b"x"))
    with pytest.raises(ValueError):
        NoiseResponder(AUTH_SK, 0, T0, _rng(b"x"))


def test_certificate_codec() -> None:
    cert = Certificate(version=0, valid_from=1, not_valid_after=2**32 - 1, signature=b"\x09" * 64)
    encoded = cert.encode()
    assert encoded[:10] == bytes.fromhex("000001000000ffffffff")
    assert Certificate.decode(encoded) == cert
    with pytest.raises(Sv2HandshakeError, match="73 bytes"):
        Certificate.decode(encoded[:73])
