"""SV2 crypto primitives against BIP324 / BIP340 vectors and independent oracles."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from stratum_proxy.sv2 import crypto
from stratum_proxy.sv2.crypto import CipherState, CryptoError

VECTORS = Path(__file__).resolve().parents[1] / "data" / "vectors" / "sv2"
N = crypto.CURVE_ORDER


def _rows(name: str) -> list[dict[str, str]]:
    with (VECTORS / name).open(newline="") as f:
        return list(csv.DictReader(f))


DECODE_ROWS = _rows("ellswift_decode_test_vectors.csv")
INV_ROWS = _rows("xswiftec_inv_test_vectors.csv")
PACKET_ROWS = _rows("packet_encoding_test_vectors.csv")
BIP340_ROWS = _rows("bip340_test-vectors.csv")


def test_vector_files_are_complete() -> None:
    assert (len(DECODE_ROWS), len(PACKET_ROWS), len(BIP340_ROWS)) == (76, 7, 19)
    assert len(INV_ROWS) > 10


@pytest.mark.parametrize("row", DECODE_ROWS, ids=lambda r: r["comment"][:40])
def test_ellswift_decode_bip324(row: dict[str, str]) -> None:
    assert crypto.ellswift_decode(bytes.fromhex(row["ellswift"])) == bytes.fromhex(row["x"])


@pytest.mark.parametrize("row", INV_ROWS, ids=lambda r: r["comment"][:40])
def test_xswiftec_inverse_vectors_decode_back(row: dict[str, str]) -> None:
    """BIP324: every t that xswiftec_inv returns for (x, u) satisfies xswiftec(u, t) = x."""
    u, x = bytes.fromhex(row["u"]), bytes.fromhex(row["x"])
    ts = [bytes.fromhex(row[f"case{c}_t"]) for c in range(8) if row[f"case{c}_t"]]
    for t in ts:
        assert crypto.ellswift_decode(u + t) == x


@pytest.mark.parametrize("row", PACKET_ROWS, ids=lambda r: r["in_idx"])
def test_bip324_ecdh_shared_secret(row: dict[str, str]) -> None:
    sk = bytes.fromhex(row["in_priv_ours"])
    ours, theirs = bytes.fromhex(row["in_ellswift_ours"]), bytes.fromhex(row["in_ellswift_theirs"])
    initiator = row["in_initiating"] == "1"
    assert crypto.xonly_pubkey(sk) == bytes.fromhex(row["mid_x_ours"])
    assert crypto.ellswift_decode(ours) == bytes.fromhex(row["mid_x_ours"])
    assert crypto.ellswift_decode(theirs) == bytes.fromhex(row["mid_x_theirs"])
    ell_a, ell_b = (ours, theirs) if initiator else (theirs, ours)
    secret = crypto.bip324_ecdh(ell_a, ell_b, sk, initiator=initiator)
    assert secret == bytes.fromhex(row["mid_shared_secret"])
    # The party flag matters: claiming the other role gives another secret.
    assert crypto.bip324_ecdh(ell_a, ell_b, sk, initiator=not initiator) != secret


def test_ellswift_create_roundtrip_and_ecdh_agreement() -> None:
    a, b = b"\x01" * 32, (N - 5).to_bytes(32, "big")
    ell_a = crypto.ellswift_create(a, b"\xaa" * 32)
    ell_a2 = crypto.ellswift_create(a, b"\xab" * 32)
    ell_b = crypto.ellswift_create(b, b"\x00" * 32)
    assert ell_a != ell_a2  # aux randomises the encoding ...
    assert crypto.ellswift_decode(ell_a) == crypto.ellswift_decode(ell_a2) == crypto.xonly_pubkey(a)
    assert crypto.ellswift_decode(ell_b) == crypto.xonly_pubkey(b)
    shared = crypto.bip324_ecdh(ell_a, ell_b, a, initiator=True)
    assert shared == crypto.bip324_ecdh(ell_a, ell_b, b, initiator=False)


@pytest.mark.parametrize("bad", [bytes(32), N.to_bytes(32, "big"), b"\xff" * 32, b"\x01" * 31])
def test_invalid_secret_keys_are_refused(bad: bytes) -> None:
    assert not crypto.is_valid_secret(bad)
    with pytest.raises(CryptoError):
        crypto.xonly_pubkey(bad)
    with pytest.raises(CryptoError):
        crypto.ellswift_create(bad, bytes(32))
    with pytest.raises(CryptoError):
        crypto.bip324_ecdh(bytes(64), bytes(64), bad, initiator=True)


def test_generate_secret_skips_out_of_range_draws() -> None:
    draws = iter([bytes(32), b"\xff" * 32, b"\x07" * 32])
    assert crypto.generate_secret(lambda n: next(draws)) == b"\x07" * 32


def _bip340_id(row: dict[str, str]) -> str:
    return f"{row['index']}-{row['comment'][:30]}"


@pytest.mark.parametrize("row", BIP340_ROWS, ids=_bip340_id)
def test_bip340_vectors(row: dict[str, str]) -> None:
    msg = bytes.fromhex(row["message"])
    if len(msg) != 32:
        # SV2 only signs 32-byte SHA256 digests; our wrapper (like coincurve's
        # sign_schnorr) takes exactly 32, so the variable-length rows do not apply.
        pytest.skip(f"{len(msg)}-byte message: SV2 signs only 32-byte digests")
    pub, sig = bytes.fromhex(row["public key"]), bytes.fromhex(row["signature"])
    expected = row["verification result"] == "TRUE"
    if row["secret key"]:
        sk = bytes.fromhex(row["secret key"])
        assert crypto.xonly_pubkey(sk) == pub
        assert crypto.schnorr_sign(msg, sk, bytes.fromhex(row["aux_rand"])) == sig
    assert crypto.schnorr_verify(msg, pub, sig) is expected


def test_schnorr_verify_is_false_on_malformed_input() -> None:
    sk = b"\x03" * 32
    msg = hashlib.sha256(b"m").digest()
    sig = crypto.schnorr_sign(msg, sk, bytes(32))
    pub = crypto.xonly_pubkey(sk)
    assert crypto.schnorr_verify(msg, pub, sig)
    assert not crypto.schnorr_verify(msg, pub, sig[:63])
    assert not crypto.schnorr_verify(msg, pub[:31], sig)
    assert not crypto.schnorr_verify(msg[:31], pub, sig)
    assert not crypto.schnorr_verify(msg, b"\xff" * 32, sig)  # x >= p


@pytest.mark.parametrize("ikm", [b"", b"\x01" * 32, bytes(range(77))])
def test_hkdf2_is_rfc5869_with_chaining_key_as_salt(ikm: bytes) -> None:
    """Noise §4.3 HKDF = RFC 5869 extract(salt=ck) + expand(info="") for 64 bytes."""
    ck = hashlib.sha256(b"ck").digest()
    oracle = HKDF(algorithm=hashes.SHA256(), length=64, salt=ck, info=b"").derive(ikm)
    assert crypto.hkdf2(ck, ikm) == (oracle[:32], oracle[32:])


def test_aead_nonce_layout_matches_raw_chacha20() -> None:
    """SV2 §4.6 / Noise §12.3: nonce = 4 zero bytes || u64 LE counter.

    Checked against raw ChaCha20 (block counter 1 encrypts, RFC 8439 §2.8).
    """
    key, n, plaintext = bytes(range(32)), 0x0102030405060708, b"sv2 nonce layout check"
    cipher = CipherState(key, nonce=n)
    ciphertext = cipher.encrypt(b"", plaintext)
    assert cipher.nonce == n + 1
    nonce16 = (1).to_bytes(4, "little") + bytes(4) + n.to_bytes(8, "little")
    keystream = Cipher(algorithms.ChaCha20(key, nonce16), mode=None).encryptor()
    expected = keystream.update(plaintext)
    assert ciphertext[: len(plaintext)] == expected
    assert len(ciphertext) == len(plaintext) + crypto.MAC_SIZE
    assert crypto.aead_encrypt(key, n, b"", plaintext) == ciphertext


def test_cipher_state_counts_and_refuses_bad_tags() -> None:
    key = b"\x42" * 32
    tx, rx = CipherState(key), CipherState(key)
    first, second = tx.encrypt(b"ad", b"one"), tx.encrypt(b"ad", b"two")
    assert rx.decrypt(b"ad", first) == b"one"
    tampered = second[:-1] + bytes([second[-1] ^ 1])
    with pytest.raises(CryptoError, match="MAC"):
        rx.decrypt(b"ad", tampered)
    assert rx.nonce == 1  # a failed decryption does not advance
    with pytest.raises(CryptoError, match="MAC"):
        rx.decrypt(b"other ad", second)
    with pytest.raises(CryptoError, match="shorter"):
        rx.decrypt(b"ad", b"\x00" * 15)
    assert rx.decrypt(b"ad", second) == b"two"
    with pytest.raises(CryptoError, match="MAC"):
        crypto.aead_decrypt(key, 5, b"", first)


def test_reserved_nonce_is_refused() -> None:
    with pytest.raises(CryptoError, match="reserved"):
        CipherState(b"\x01" * 32, nonce=crypto.MAX_NONCE).encrypt(b"", b"x")
    assert crypto.aead_nonce(crypto.MAX_NONCE - 1) == bytes(4) + b"\xfe" + b"\xff" * 7  # LE
