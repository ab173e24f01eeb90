"""The SV2 server certificate (SIGNATURE_NOISE_MESSAGE), SV2 spec §4.5.2 / notes §2.3.

A pool proves that its Noise static key is vouched for by its authority key:

    version U16 LE (only 0) | valid_from U32 LE | not_valid_after U32 LE | signature (64, BIP340)

The signature is over SHA256(version || valid_from || not_valid_after || static_xonly),
where static_xonly is the x coordinate of the server's static key (decoded from its
ElligatorSwift form, not the 64 encoded bytes).  Clients pin only the authority
key: SRI pools make a fresh static key and certificate per connection.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime

from stratum_proxy.sv2.crypto import (
    SIGNATURE_SIZE,
    XONLY_SIZE,
    schnorr_sign,
    schnorr_verify,
    sha256,
)
from stratum_proxy.sv2.errors import Sv2ProtocolError
from stratum_proxy.sv2.keys import encode_public_key

CERTIFICATE_VERSION = 0  # the only version defined; sv2-tp rejects others
CERTIFICATE_SIZE = 2 + 4 + 4 + SIGNATURE_SIZE  # 74
# SRI SignatureNoiseMessage::verify_with_now tolerates this much clock skew
# between pool and client either side of the window (ESP-Miner does the same).
TIME_LEEWAY_S = 10.0
MAX_U32 = 2**32 - 1

_HEAD = struct.Struct("<HII")


class Sv2HandshakeError(Sv2ProtocolError):
    """The Noise handshake failed; the connection must be closed (always fatal)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, fatal=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class Certificate:
    version: int
    valid_from: int
    not_valid_after: int
    signature: bytes

    def encode(self) -> bytes:
        return _HEAD.pack(self.version, self.valid_from, self.not_valid_after) + self.signature

    @classmethod
    def decode(cls, data: bytes) -> Certificate:
        if len(data) != CERTIFICATE_SIZE:
            raise Sv2HandshakeError(
                f"pool certificate is {len(data)} bytes, expected {CERTIFICATE_SIZE}"
            )
        version, valid_from, not_valid_after = _HEAD.unpack_from(data)
        return cls(
            version=version,
            valid_from=valid_from,
            not_valid_after=not_valid_after,
            signature=bytes(data[_HEAD.size :]),
        )


def certificate_digest(
    *, version: int, valid_from: int, not_valid_after: int, static_xonly: bytes
) -> bytes:
    """The 32-byte message the authority signs (42 bytes hashed once)."""
    if len(static_xonly) != XONLY_SIZE:
        raise ValueError(f"static key must be 32 bytes x-only, got {len(static_xonly)}")
    return sha256(_HEAD.pack(version, valid_from, not_valid_after) + static_xonly)


def sign_certificate(
    *,
    authority_secret: bytes,
    static_xonly: bytes,
    valid_from: int,
    not_valid_after: int,
    aux: bytes,
    version: int = CERTIFICATE_VERSION,
) -> Certificate:
    """A certificate for ``static_xonly``; ``aux`` is 32 bytes of BIP340 randomness."""
    if not 0 <= valid_from <= not_valid_after <= MAX_U32:
        raise ValueError(f"bad validity window {valid_from}..{not_valid_after}")
    digest = certificate_digest(
        version=version,
        valid_from=valid_from,
        not_valid_after=not_valid_after,
        static_xonly=static_xonly,
    )
    return Certificate(
        version=version,
        valid_from=valid_from,
        not_valid_after=not_valid_after,
        signature=schnorr_sign(digest, authority_secret, aux),
    )


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def verify_certificate(
    cert: Certificate,
    *,
    static_xonly: bytes,
    authority_xonly: bytes,
    now: float,
    leeway_s: float = TIME_LEEWAY_S,
) -> None:
    """Raise Sv2HandshakeError unless ``cert`` is valid for this static key, now."""
    if cert.version != CERTIFICATE_VERSION:
        raise Sv2HandshakeError(
            f"pool certificate has version {cert.version}; only {CERTIFICATE_VERSION} exists"
        )
    digest = certificate_digest(
        version=cert.version,
        valid_from=cert.valid_from,
        not_valid_after=cert.not_valid_after,
        static_xonly=static_xonly,
    )
    if not schnorr_verify(digest, authority_xonly, cert.signature):
        raise Sv2HandshakeError(
            "pool certificate not signed by the configured authority key "
            f"{encode_public_key(authority_xonly)}; check the pool's authority public key"
        )
    if now < cert.valid_from - leeway_s:
        raise Sv2HandshakeError(
            f"pool certificate not valid before {_utc(cert.valid_from)} (now {_utc(now)}); "
            "check the clocks of the proxy and the pool"
        )
    if now > cert.not_valid_after + leeway_s:
        raise Sv2HandshakeError(
            f"pool certificate expired at {_utc(cert.not_valid_after)} (now {_utc(now)}); "
            "check the clocks of the proxy and the pool"
        )
