"""Text forms of SV2 authority keys, as operators paste them into configs and URLs.

SV2 spec §4.7 / SRI key-utils (notes §2.4):

* public key  = Base58Check( 0x01 0x00 || x-only key (32) ) — a little-endian
  U16 version, 1, before the key; this is what ``stratum2+tcp://host:port/<key>``
  carries and what a client pins.
* secret key  = Base58Check( secret (32) ) — no version prefix.

Parsing errors are :class:`ConfigError` and say what is wrong and where to look.
These functions back ``stratum-proxy keys generate`` and ``keys show SECRET``.
"""

from __future__ import annotations

import base58

from stratum_proxy.errors import ConfigError
from stratum_proxy.sv2.crypto import (
    XONLY_SIZE,
    Rng,
    generate_secret,
    is_valid_secret,
    is_valid_xonly,
    xonly_pubkey,
)

PUBLIC_KEY_VERSION = 1  # spec §4.7: the only defined version
_PUBLIC_PREFIX = PUBLIC_KEY_VERSION.to_bytes(2, "little")


def _b58check_decode(text: str, what: str) -> bytes:
    cleaned = text.strip()
    if not cleaned:
        raise ConfigError(f"{what} is empty")
    try:
        return bytes(base58.b58decode_check(cleaned))
    except ValueError as exc:
        # base58 says "Invalid checksum" or "Invalid character 'x'".
        raise ConfigError(f"{what} {_short(cleaned)} is not valid Base58Check: {exc}") from None


def _short(text: str) -> str:
    return repr(text if len(text) <= 16 else f"{text[:6]}...{text[-6:]}")


def encode_public_key(xonly: bytes) -> str:
    if len(xonly) != XONLY_SIZE:
        raise ValueError(f"x-only public key must be 32 bytes, got {len(xonly)}")
    return base58.b58encode_check(_PUBLIC_PREFIX + xonly).decode("ascii")


def decode_public_key(text: str) -> bytes:
    """The 32-byte x-only key of an authority public key in SV2 text form."""
    what = "SV2 authority public key"
    raw = _b58check_decode(text, what)
    if len(raw) != 2 + XONLY_SIZE:
        raise ConfigError(
            f"{what} {_short(text)} decodes to {len(raw)} bytes, expected 34 "
            "(2-byte version + 32-byte key); is it a secret key or another format?"
        )
    version = int.from_bytes(raw[:2], "little")
    if version != PUBLIC_KEY_VERSION:
        raise ConfigError(
            f"{what} {_short(text)} has version {version}, only {PUBLIC_KEY_VERSION} exists"
        )
    xonly = raw[2:]
    if not is_valid_xonly(xonly):
        raise ConfigError(f"{what} {_short(text)} is not a point on secp256k1")
    return xonly


def encode_secret_key(secret: bytes) -> str:
    if not is_valid_secret(secret):
        raise ValueError("not a valid secp256k1 secret key")
    return base58.b58encode_check(secret).decode("ascii")


def decode_secret_key(text: str) -> bytes:
    """The 32-byte secret of an authority secret key in SV2 (key-utils) text form."""
    what = "SV2 authority secret key"
    raw = _b58check_decode(text, what)
    if len(raw) != 32:
        raise ConfigError(
            f"{what} decodes to {len(raw)} bytes, expected 32; "
            "is it a public key (those start with 9)?"
        )
    if not is_valid_secret(raw):
        raise ConfigError(f"{what} is outside the secp256k1 key range")
    return raw


def generate_keypair(rng: Rng) -> tuple[str, str]:
    """A fresh authority key pair as (secret_text, public_text)."""
    secret = generate_secret(rng)
    return encode_secret_key(secret), encode_public_key(xonly_pubkey(secret))


def public_from_secret(secret_text: str) -> str:
    """The public text form that clients pin, for a secret in text form."""
    return encode_public_key(xonly_pubkey(decode_secret_key(secret_text)))


__all__ = [
    "PUBLIC_KEY_VERSION",
    "decode_public_key",
    "decode_secret_key",
    "encode_public_key",
    "encode_secret_key",
    "generate_keypair",
    "public_from_secret",
]
