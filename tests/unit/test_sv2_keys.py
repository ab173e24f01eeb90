"""SV2 authority key text forms (spec §4.7, SRI key-utils); vectors from sv2_notes §2.4."""

from __future__ import annotations

import hashlib
import itertools

import base58
import pytest

from stratum_proxy.errors import ConfigError
from stratum_proxy.sv2 import keys
from stratum_proxy.sv2.crypto import Rng, xonly_pubkey

# Spec §4.7.1 vector.
SPEC_RAW = "76637000979c1c11af0c300bcd8c7fe48610fce9b9c11e3daee35ae0b08a7455"
SPEC_PUBLIC = "9bXiEd8boQVhq7WddEcERUL5tyyJVFYdU8th3HfbNXK3Yw6GRXh"
# SRI key-utils unit test pair.
KU_SECRET = "zmBEmPhqo3A92FkiLVvyCz6htc3e53ph3ZbD4ASqGaLjwnFLi"
KU_PUBLIC = "9bDuixKmZqAJnrmP746n8zU1wyAQRrus7th9dxnkPg6RzQvCnan"
# SRI default pair used by its pool configs and tests.
SRI_PUBLIC = "9auqWEzQDVyd2oe1JVGFLMLHZtCo2FFqZwtKA5gd9xbuEu7PH72"
SRI_SECRET = "mkDLTBBRxdBv998612qipDYoTK3YUrqLe8uWw7gu3iXbSrn2n"
SRI_X = "24ee3c3804a1aaa4c03b80ea19f7a5863c916e8994b7db94a3bad7ee092b6ce7"
# BIP340 test vector 5: an x that is not on the curve.
NOT_ON_CURVE = "eefdea4cdb677750a420fee807eacf21eb9898ae79b9768766e4faa04a2d4a34"


def _rng(seed: bytes) -> Rng:
    counter = itertools.count()

    def rng(n: int) -> bytes:
        return hashlib.sha256(seed + next(counter).to_bytes(8, "big")).digest()[:n]

    return rng


def test_spec_vector_encodes_and_decodes() -> None:
    assert keys.encode_public_key(bytes.fromhex(SPEC_RAW)) == SPEC_PUBLIC
    assert keys.decode_public_key(SPEC_PUBLIC).hex() == SPEC_RAW


def test_key_utils_pair() -> None:
    x = keys.decode_public_key(KU_PUBLIC)
    assert x.hex().startswith("4df78c3f") and x.hex().endswith("9470118c")
    assert xonly_pubkey(keys.decode_secret_key(KU_SECRET)) == x
    assert keys.public_from_secret(KU_SECRET) == KU_PUBLIC


def test_sri_default_pair() -> None:
    assert keys.decode_public_key(SRI_PUBLIC).hex() == SRI_X
    assert keys.public_from_secret(SRI_SECRET) == SRI_PUBLIC
    assert keys.encode_secret_key(keys.decode_secret_key(SRI_SECRET)) == SRI_SECRET


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("9bDuixKmZqAJnrmP746n8zU1wyAQRrus7th9dxnkPg6RzQvCnam", "checksum"),
        ("2myPhc5vkPzuC5FXNK5tee79WmP7uoLh55SxezoF8iqwF3E3rnPY", "version 12"),
        ("2wmHTKZkLg2QzXyEXGMBXzKP7JXDUt8yy9SA5hoQwERc92qR6c", "33 bytes"),
        (SRI_SECRET, "32 bytes"),
        ("9bXiEd8boQVhq7WddEcERUL5tyyJVFYdU8th3HfbNXK3Yw6GRX0", "character"),
        ("   ", "empty"),
    ],
)
def test_bad_public_keys_have_clear_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        keys.decode_public_key(text)


def test_public_key_off_the_curve_is_refused() -> None:
    text = base58.b58encode_check(b"\x01\x00" + bytes.fromhex(NOT_ON_CURVE)).decode()
    with pytest.raises(ConfigError, match="not a point"):
        keys.decode_public_key(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (SRI_PUBLIC, "34 bytes.*public key"),
        (SRI_SECRET[:-1] + "m", "checksum"),
        ("", "empty"),
    ],
)
def test_bad_secret_keys_have_clear_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        keys.decode_secret_key(text)


def test_secret_key_out_of_range_is_refused() -> None:
    with pytest.raises(ConfigError, match="range"):
        keys.decode_secret_key(base58.b58encode_check(bytes(32)).decode())


def test_generate_keypair_round_trips_and_depends_on_rng() -> None:
    secret, public = keys.generate_keypair(_rng(b"a"))
    assert keys.public_from_secret(secret) == public
    assert keys.public_from_secret(f"  {secret}\n") == public  # pasted with whitespace
    assert xonly_pubkey(keys.decode_secret_key(secret)) == keys.decode_public_key(public)
    assert public.startswith("9") and len(public) in (50, 51)
    assert keys.generate_keypair(_rng(b"a")) == (secret, public)
    assert keys.generate_keypair(_rng(b"b"))[0] != secret


def test_encoders_refuse_wrong_input() -> None:
    with pytest.raises(ValueError):
        keys.encode_public_key(b"\x01" * 33)
    with pytest.raises(ValueError):
        keys.encode_secret_key(bytes(32))
