"""Noise_NX_Secp256k1+EllSwift_ChaChaPoly_SHA256, the SV2 handshake. Sans-I/O.

SV2 spec §4.5, notes §2.1-2.2 (byte-exact):

    -> e                                  64 bytes  (initiator, the client)
    <- e, ee, s, es, SIGNATURE_NOISE_MSG  234 bytes (responder, the server)

Public keys travel as 64-byte ElligatorSwift encodings, ECDH is BIP324's
``v2_ecdh`` (initiator's key always first), and the responder proves its static
key with a certificate signed by the pool's authority key (see cert.py).  The
two messages are raw bytes on the stream: no SV2 frame header, no length.

Both classes take bytes, return bytes to send, and hand over a
:class:`NoiseTransport` when done.  ``now`` and ``rng`` come in as arguments.
Every failure raises :class:`Sv2HandshakeError`; the connection must then close.
"""

from __future__ import annotations

from stratum_proxy.errors import LocalProtocolError
from stratum_proxy.sv2.cert import (
    MAX_U32,
    TIME_LEEWAY_S,
    Certificate,
    Sv2HandshakeError,
    sign_certificate,
    verify_certificate,
)
from stratum_proxy.sv2.crypto import (
    ELLSWIFT_SIZE,
    MAC_SIZE,
    CipherState,
    CryptoError,
    Rng,
    bip324_ecdh,
    ellswift_create,
    ellswift_decode,
    generate_secret,
    hkdf2,
    is_valid_secret,
    is_valid_xonly,
    sha256,
    xonly_pubkey,
)
from stratum_proxy.sv2.transport import MAX_PAYLOAD, NoiseTransport

PROTOCOL_NAME = b"Noise_NX_Secp256k1+EllSwift_ChaChaPoly_SHA256"
ACT1_SIZE = ELLSWIFT_SIZE  # 64
_STATIC_END = ELLSWIFT_SIZE + ELLSWIFT_SIZE + MAC_SIZE  # 144
# The spec's "170 bytes" predates EllSwift; SRI, sv2-tp and ESP-Miner use 234.
ACT2_SIZE = _STATIC_END + 74 + MAC_SIZE  # 234

__all__ = [
    "ACT1_SIZE",
    "ACT2_SIZE",
    "PROTOCOL_NAME",
    "NoiseInitiator",
    "NoiseResponder",
    "Sv2HandshakeError",
]


class _SymmetricState:
    """Noise §5.2 SymmetricState: chaining key, handshake hash, current cipher."""

    __slots__ = ("_cipher", "ck", "h")

    def __init__(self) -> None:
        # The name is longer than HASHLEN, so it is hashed; then MixHash(prologue="").
        self.ck = sha256(PROTOCOL_NAME)
        self.h = sha256(self.ck)
        self._cipher: CipherState | None = None

    def mix_hash(self, data: bytes) -> None:
        self.h = sha256(self.h + data)

    def mix_key(self, ikm: bytes) -> None:
        self.ck, key = hkdf2(self.ck, ikm)
        self._cipher = CipherState(key)

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        ciphertext = plaintext if self._cipher is None else self._cipher.encrypt(self.h, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        plaintext = ciphertext if self._cipher is None else self._cipher.decrypt(self.h, ciphertext)
        self.mix_hash(ciphertext)  # the ciphertext, not the plaintext (Noise §5.2)
        return plaintext

    def split(self) -> tuple[CipherState, CipherState]:
        """(initiator→responder, responder→initiator) ciphers (Noise §5.2 Split)."""
        k1, k2 = hkdf2(self.ck, b"")
        return CipherState(k1), CipherState(k2)


class NoiseInitiator:
    """Client side: sends act 1, checks the pool's act 2 and certificate."""

    def __init__(
        self,
        authority_pubkey: bytes,
        now: float,
        rng: Rng,
        *,
        leeway_s: float = TIME_LEEWAY_S,
        max_payload: int = MAX_PAYLOAD,
    ) -> None:
        if not is_valid_xonly(authority_pubkey):
            raise ValueError("authority_pubkey must be a 32-byte x-only secp256k1 key")
        self._authority = authority_pubkey
        self._now = now
        self._leeway_s = leeway_s
        self._max_payload = max_payload
        self._e_secret = generate_secret(rng)
        self._e_ell = ellswift_create(self._e_secret, rng(32))
        self._state = _SymmetricState()
        self._state.mix_hash(self._e_ell)
        self._state.encrypt_and_hash(b"")  # empty payload, no key yet: MixHash("")
        self._buffer = bytearray()
        self._sent = False
        self._outcome: str | None = None  # "done" or the failure message
        self.certificate: Certificate | None = None
        self.server_static_xonly: bytes | None = None

    def first_message(self) -> bytes:
        """Act 1: the 64-byte ephemeral key, to send as soon as the socket is up."""
        self._sent = True
        return self._e_ell

    def receive(self, data: bytes, *, now: float | None = None) -> NoiseTransport | None:
        """Feed bytes from the pool; the transport once all 234 bytes of act 2 arrived.

        Bytes after act 2 (frames the pool sent straight away) are handed to the
        transport's decoder: call ``transport.feed(b"")`` once to collect them.
        """
        if not self._sent:
            raise LocalProtocolError("receive() before first_message() was sent")
        if self._outcome == "done":
            raise LocalProtocolError("handshake already complete; use the transport")
        if self._outcome is not None:
            raise Sv2HandshakeError(f"handshake already failed: {self._outcome}")
        if now is not None:
            self._now = now
        self._buffer += data
        if len(self._buffer) < ACT2_SIZE:
            return None
        try:
            transport = self._complete(
                bytes(self._buffer[:ACT2_SIZE]), bytes(self._buffer[ACT2_SIZE:])
            )
        except Sv2HandshakeError as exc:
            self._outcome = str(exc)
            raise
        self._outcome = "done"
        self._buffer.clear()
        return transport

    def receive_eof(self) -> None:
        """The pool closed the connection: raise if that cut the handshake short."""
        if self._outcome is None:
            self._outcome = f"connection closed after {len(self._buffer)} of {ACT2_SIZE} bytes"
            raise Sv2HandshakeError(f"pool {self._outcome} of the handshake")

    def _complete(self, act2: bytes, rest: bytes) -> NoiseTransport:
        state = self._state
        e_r = act2[:ELLSWIFT_SIZE]
        state.mix_hash(e_r)
        state.mix_key(bip324_ecdh(self._e_ell, e_r, self._e_secret, initiator=True))  # ee
        try:
            s_r = state.decrypt_and_hash(act2[ELLSWIFT_SIZE:_STATIC_END])
        except CryptoError:
            raise Sv2HandshakeError(
                "pool's static key failed authentication (act 2 altered in transit, "
                "or the server does not speak SV2 Noise NX)"
            ) from None
        state.mix_key(bip324_ecdh(self._e_ell, s_r, self._e_secret, initiator=True))  # es
        try:
            cert_bytes = state.decrypt_and_hash(act2[_STATIC_END:])
        except CryptoError:
            raise Sv2HandshakeError(
                "pool certificate failed authentication (act 2 altered in transit)"
            ) from None
        cert = Certificate.decode(cert_bytes)
        static_xonly = ellswift_decode(s_r)
        verify_certificate(
            cert,
            static_xonly=static_xonly,
            authority_xonly=self._authority,
            now=self._now,
            leeway_s=self._leeway_s,
        )
        self.certificate, self.server_static_xonly = cert, static_xonly
        send, recv = state.split()
        return NoiseTransport(
            send, recv, handshake_hash=state.h, max_payload=self._max_payload, pending=rest
        )


class NoiseResponder:
    """Server side: answers act 1 with act 2, certifying its static key.

    By default (as SRI pools do) a fresh static key is drawn per connection and
    a certificate valid from ``now`` for ``cert_validity_s`` is signed with the
    authority secret.  A long-lived ``static_secret`` may be given instead, and
    with it a ready ``certificate`` signed offline (then ``authority_secret`` may
    be None, so the authority key need not live on the server).
    """

    def __init__(
        self,
        authority_secret: bytes | None,
        cert_validity_s: int,
        now: float,
        rng: Rng,
        static_secret: bytes | None = None,
        *,
        certificate: Certificate | None = None,
        max_payload: int = MAX_PAYLOAD,
    ) -> None:
        self._max_payload = max_payload
        self._e_secret = generate_secret(rng)
        self._e_ell = ellswift_create(self._e_secret, rng(32))
        if static_secret is not None and not is_valid_secret(static_secret):
            raise ValueError("static_secret is not a valid secp256k1 secret key")
        self._s_secret = static_secret if static_secret is not None else generate_secret(rng)
        self._s_ell = ellswift_create(self._s_secret, rng(32))
        self.certificate = certificate or self._sign(authority_secret, cert_validity_s, now, rng)
        self._buffer = bytearray()
        self._outcome: str | None = None

    def _sign(
        self, authority_secret: bytes | None, validity_s: int, now: float, rng: Rng
    ) -> Certificate:
        if authority_secret is None:
            raise ValueError("authority_secret is required unless a certificate is given")
        valid_from = int(now)
        if not 0 < validity_s <= MAX_U32 - valid_from:
            raise ValueError(f"cert_validity_s {validity_s} out of range")
        return sign_certificate(
            authority_secret=authority_secret,
            static_xonly=xonly_pubkey(self._s_secret),
            valid_from=valid_from,
            not_valid_after=valid_from + validity_s,
            aux=rng(32),
        )

    def receive(self, data: bytes) -> tuple[bytes, NoiseTransport] | None:
        """Feed bytes from the client; (act 2 to send, transport) once act 1 is complete."""
        if self._outcome == "done":
            raise LocalProtocolError("handshake already complete; use the transport")
        if self._outcome is not None:
            raise Sv2HandshakeError(f"handshake already failed: {self._outcome}")
        self._buffer += data
        if len(self._buffer) > ACT1_SIZE:
            self._outcome = (
                f"client sent {len(self._buffer)} bytes before the handshake ended; "
                f"act 1 is exactly {ACT1_SIZE} bytes (is it speaking SV1 or unencrypted SV2?)"
            )
            raise Sv2HandshakeError(self._outcome)
        if len(self._buffer) < ACT1_SIZE:
            return None
        self._outcome = "done"
        return self._answer(bytes(self._buffer))

    def receive_eof(self) -> None:
        """The client closed the connection: raise if that cut the handshake short."""
        if self._outcome is None:
            self._outcome = f"connection closed after {len(self._buffer)} of {ACT1_SIZE} bytes"
            raise Sv2HandshakeError(f"client {self._outcome} of the handshake")

    def _answer(self, e_i: bytes) -> tuple[bytes, NoiseTransport]:
        state = _SymmetricState()
        state.mix_hash(e_i)
        state.decrypt_and_hash(b"")  # empty payload, no key yet: MixHash("")
        state.mix_hash(self._e_ell)
        state.mix_key(bip324_ecdh(e_i, self._e_ell, self._e_secret, initiator=False))  # ee
        encrypted_static = state.encrypt_and_hash(self._s_ell)
        state.mix_key(bip324_ecdh(e_i, self._s_ell, self._s_secret, initiator=False))  # es
        encrypted_cert = state.encrypt_and_hash(self.certificate.encode())
        to_responder, to_initiator = state.split()
        transport = NoiseTransport(
            to_initiator, to_responder, handshake_hash=state.h, max_payload=self._max_payload
        )
        return self._e_ell + encrypted_static + encrypted_cert, transport
