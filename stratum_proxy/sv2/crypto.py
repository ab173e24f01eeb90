"""Every cryptographic primitive Stratum V2 needs, behind one small interface.

This is the only module that touches library internals: coincurve exposes no
public wrapper for ElligatorSwift, so we call its cffi layer
(``coincurve._libsecp256k1``, present since coincurve 19.0.1) here and nowhere
else.  If that private layer moves, only this file changes.

Nothing here draws randomness or reads a clock: callers pass ``aux`` bytes taken
from their own ``rng`` (STYLE item 2) so handshakes are reproducible in tests.

Failures raise :class:`CryptoError` (invalid secret key, bad MAC); the Noise and
transport layers turn it into a protocol error that names the peer's fault.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Callable

from coincurve import PrivateKey, PublicKeyXOnly
from coincurve._libsecp256k1 import ffi, lib
from coincurve.context import GLOBAL_CONTEXT
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

Rng = Callable[[int], bytes]
"""``rng(n)`` returns n random bytes (``os.urandom`` in production)."""

ELLSWIFT_SIZE = 64  # BIP324: u (32) || t (32)
XONLY_SIZE = 32
SECRET_SIZE = 32
SIGNATURE_SIZE = 64
MAC_SIZE = 16  # Poly1305 tag
KEY_SIZE = 32
# Noise §5.1: nonce 2^64-1 is reserved for rekey and must never encrypt.
MAX_NONCE = 2**64 - 1

# The order of the secp256k1 group: a valid secret key is in [1, N-1].
CURVE_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class CryptoError(ValueError):
    """A primitive refused its input: invalid key, wrong length or bad MAC."""


def _need(name: str, value: bytes, size: int) -> None:
    if len(value) != size:
        raise CryptoError(f"{name} must be {size} bytes, got {len(value)}")


def is_valid_secret(sk: bytes) -> bool:
    return len(sk) == SECRET_SIZE and 0 < int.from_bytes(sk, "big") < CURVE_ORDER


def generate_secret(rng: Rng) -> bytes:
    """A uniformly random valid secret key (retries the ~2^-128 invalid draws)."""
    while True:
        sk = rng(SECRET_SIZE)
        if is_valid_secret(sk):
            return sk


def is_valid_xonly(xonly: bytes) -> bool:
    """True when the 32 bytes are the x coordinate of a secp256k1 point (BIP340 lift_x)."""
    if len(xonly) != XONLY_SIZE:
        return False
    try:
        PublicKeyXOnly(xonly)
    except ValueError:
        return False
    return True


def xonly_pubkey(sk: bytes) -> bytes:
    """BIP340 x-only public key (32 bytes) of a secret key."""
    if not is_valid_secret(sk):
        raise CryptoError("invalid secp256k1 secret key")
    return bytes(PrivateKey(sk).public_key.format(compressed=True)[1:])


# --- ElligatorSwift (BIP324) -------------------------------------------------


def ellswift_create(sk: bytes, aux: bytes) -> bytes:
    """64-byte ElligatorSwift encoding of ``sk``'s public key; ``aux`` picks the encoding."""
    _need("aux", aux, 32)
    if not is_valid_secret(sk):
        raise CryptoError("invalid secp256k1 secret key")
    out = ffi.new("unsigned char[64]")
    if not lib.secp256k1_ellswift_create(GLOBAL_CONTEXT.ctx, out, sk, aux):
        raise CryptoError("ellswift_create failed")
    return bytes(ffi.buffer(out, ELLSWIFT_SIZE))


def ellswift_decode(ell: bytes) -> bytes:
    """x coordinate (32 bytes) of the point an ElligatorSwift encoding stands for.

    Every 64-byte string decodes to some point (BIP324 "xswiftec" is total).
    """
    _need("ellswift encoding", ell, ELLSWIFT_SIZE)
    pubkey = ffi.new("secp256k1_pubkey *")
    if not lib.secp256k1_ellswift_decode(GLOBAL_CONTEXT.ctx, pubkey, ell):
        raise CryptoError("ellswift_decode failed")
    out = ffi.new("unsigned char[33]")
    size = ffi.new("size_t *", 33)
    lib.secp256k1_ec_pubkey_serialize(
        GLOBAL_CONTEXT.ctx, out, size, pubkey, lib.SECP256K1_EC_COMPRESSED
    )
    return bytes(ffi.buffer(out, 33))[1:]


def bip324_ecdh(ell_a: bytes, ell_b: bytes, sk: bytes, *, initiator: bool) -> bytes:
    """BIP324 ``v2_ecdh``: SHA256 tagged hash of (ell_a, ell_b, shared x).

    ``ell_a`` is always the initiator's encoding and ``ell_b`` the responder's,
    whoever computes; ``initiator`` says which of the two ``sk`` belongs to
    (libsecp256k1 party 0 = A, 1 = B).  SV2 notes §2.1.
    """
    _need("ellswift A", ell_a, ELLSWIFT_SIZE)
    _need("ellswift B", ell_b, ELLSWIFT_SIZE)
    if not is_valid_secret(sk):
        raise CryptoError("invalid secp256k1 secret key")
    out = ffi.new("unsigned char[32]")
    party = 0 if initiator else 1
    hash_fn = lib.secp256k1_ellswift_xdh_hash_function_bip324
    if not lib.secp256k1_ellswift_xdh(
        GLOBAL_CONTEXT.ctx, out, ell_a, ell_b, sk, party, hash_fn, ffi.NULL
    ):
        raise CryptoError("ellswift_xdh failed")
    return bytes(ffi.buffer(out, 32))


# --- BIP340 Schnorr ----------------------------------------------------------


def schnorr_sign(msg32: bytes, sk: bytes, aux: bytes) -> bytes:
    """BIP340 signature over a 32-byte message with explicit auxiliary randomness."""
    _need("message", msg32, 32)
    _need("aux", aux, 32)
    if not is_valid_secret(sk):
        raise CryptoError("invalid secp256k1 secret key")
    return bytes(PrivateKey(sk).sign_schnorr(msg32, aux))


def schnorr_verify(msg32: bytes, xonly: bytes, sig: bytes) -> bool:
    """True only for a valid BIP340 signature; malformed keys/sigs are just invalid."""
    if len(msg32) != 32 or len(xonly) != XONLY_SIZE or len(sig) != SIGNATURE_SIZE:
        return False
    try:
        key = PublicKeyXOnly(xonly)
    except ValueError:  # x is not on the curve or >= p
        return False
    return bool(key.verify(sig, msg32))


# --- Hashes and the Noise KDF ------------------------------------------------


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def hkdf2(chaining_key: bytes, ikm: bytes) -> tuple[bytes, bytes]:
    """Noise §4.3 HKDF with two outputs (SV2 notes §2.1)."""
    temp = hmac_sha256(chaining_key, ikm)
    out1 = hmac_sha256(temp, b"\x01")
    out2 = hmac_sha256(temp, out1 + b"\x02")
    return out1, out2


# --- ChaCha20-Poly1305 with the Noise nonce layout ---------------------------


# 4 zero bytes || u64 LE counter in one call: every frame takes two nonces per direction.
_pack_nonce = struct.Struct("<4xQ").pack


def aead_nonce(n: int) -> bytes:
    """Noise ChaChaPoly nonce: 4 zero bytes || u64 LE counter (Noise §12.3, SV2 §4.6)."""
    if not 0 <= n < MAX_NONCE:
        raise CryptoError(f"nonce {n} out of range (2^64-1 is reserved)")
    return _pack_nonce(n)


def aead_encrypt(key: bytes, n: int, ad: bytes, plaintext: bytes) -> bytes:
    """Ciphertext || 16-byte tag."""
    _need("key", key, KEY_SIZE)
    return ChaCha20Poly1305(key).encrypt(aead_nonce(n), plaintext, ad)


def aead_decrypt(key: bytes, n: int, ad: bytes, ciphertext: bytes) -> bytes:
    """Plaintext; raises CryptoError when the tag does not authenticate."""
    _need("key", key, KEY_SIZE)
    if len(ciphertext) < MAC_SIZE:
        raise CryptoError(f"ciphertext of {len(ciphertext)} bytes is shorter than its MAC")
    try:
        return ChaCha20Poly1305(key).decrypt(aead_nonce(n), ciphertext, ad)
    except InvalidTag:
        raise CryptoError("MAC check failed (ciphertext altered or wrong key)") from None


class CipherState:
    """A key and its nonce counter (Noise §5.1), one per direction after Split.

    The counter advances only on success: a failed decryption leaves it as it
    was, and the caller must drop the connection anyway (SV2 §4.6).

    One ChaCha20Poly1305 object serves the whole direction (its key schedule is
    set up once), and its methods take any bytes-like object, so the transport
    passes slices of what it received as memoryviews, without copying them.
    """

    __slots__ = ("_aead", "nonce")

    def __init__(self, key: bytes, nonce: int = 0) -> None:
        _need("key", key, KEY_SIZE)
        self._aead = ChaCha20Poly1305(key)
        self.nonce = nonce

    def encrypt(self, ad: bytes, plaintext: bytes | bytearray | memoryview) -> bytes:
        n = self.nonce
        if not 0 <= n < MAX_NONCE:
            raise CryptoError(f"nonce {n} out of range (2^64-1 is reserved)")
        # No associated data and empty associated data give the same tag; None
        # skips the library's check of an empty buffer (the transport's every call).
        ciphertext = self._aead.encrypt(_pack_nonce(n), plaintext, ad or None)
        self.nonce = n + 1
        return ciphertext

    def encrypt_two(
        self, first: bytes | bytearray | memoryview, second: bytes | bytearray | memoryview
    ) -> bytes:
        """``encrypt(b"", first) + encrypt(b"", second)`` in one call: a frame's header
        and its one payload chunk, the transport's every frame."""
        n = self.nonce
        if not 0 <= n < MAX_NONCE - 1:
            raise CryptoError(f"nonces {n}, {n + 1} out of range (2^64-1 is reserved)")
        seal = self._aead.encrypt
        ciphertext = seal(_pack_nonce(n), first, None) + seal(_pack_nonce(n + 1), second, None)
        self.nonce = n + 2
        return ciphertext

    def decrypt_no_ad(self, ciphertext: bytes | bytearray | memoryview) -> bytes:
        """``decrypt(b"", ciphertext)`` for a ciphertext the caller sized to hold its MAC:
        the transport's every frame header and payload chunk."""
        n = self.nonce
        if not 0 <= n < MAX_NONCE:
            raise CryptoError(f"nonce {n} out of range (2^64-1 is reserved)")
        try:
            plaintext = self._aead.decrypt(_pack_nonce(n), ciphertext, None)
        except InvalidTag:
            raise CryptoError("MAC check failed (ciphertext altered or wrong key)") from None
        self.nonce = n + 1
        return plaintext

    def decrypt(self, ad: bytes, ciphertext: bytes | bytearray | memoryview) -> bytes:
        if len(ciphertext) < MAC_SIZE:
            raise CryptoError(f"ciphertext of {len(ciphertext)} bytes is shorter than its MAC")
        n = self.nonce
        if not 0 <= n < MAX_NONCE:
            raise CryptoError(f"nonce {n} out of range (2^64-1 is reserved)")
        try:
            plaintext = self._aead.decrypt(_pack_nonce(n), ciphertext, ad or None)
        except InvalidTag:
            raise CryptoError("MAC check failed (ciphertext altered or wrong key)") from None
        self.nonce = n + 1
        return plaintext
