"""Every real block and pool fixture in shared/vectors must reproduce its hash and difficulty."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stratum_proxy.shares import (
    DIFF1_TARGET,
    Job,
    compute_share,
    nbits_to_target,
    rolled_version,
    sha256d,
    swap_prevhash_words,
)

VECTORS_PATH = Path(__file__).resolve().parents[1] / "data" / "vectors" / "share_vectors.json"
VECTORS: list[dict[str, Any]] = json.loads(VECTORS_PATH.read_text())
STRATUM_VECTORS = [v for v in VECTORS if v["coinb1"] is not None]


def _job(v: dict[str, Any]) -> Job:
    return Job(
        job_id=v.get("job_id") or v["id"],
        prevhash=swap_prevhash_words(bytes.fromhex(v["prevhash_stratum"])),
        coinb1=bytes.fromhex(v["coinb1"]),
        coinb2=bytes.fromhex(v["coinb2"]),
        merkle_branch=tuple(bytes.fromhex(b) for b in v["merkle_branch"]),
        version=int(v.get("version_job") or v["version"], 16),
        nbits=int(v["nbits"], 16),
        ntime=int(v["ntime"], 16),
        clean_jobs=True,
        extranonce1=bytes.fromhex(v["extranonce1"]),
        pool_difficulty=1.0,
    )


def _version(v: dict[str, Any]) -> int:
    mask = int(v["version_mask"], 16) if v.get("version_mask") else 0
    bits = int(v["version_bits"], 16) if v.get("version_bits") else None
    return rolled_version(int(v.get("version_job") or v["version"], 16), mask, bits)


@pytest.mark.parametrize("v", STRATUM_VECTORS, ids=[v["id"] for v in STRATUM_VECTORS])
def test_vector_hash_and_difficulty(v: dict[str, Any]) -> None:
    job = _job(v)
    result = compute_share(
        job, bytes.fromhex(v["extranonce2"]), int(v["ntime"], 16), int(v["nonce"], 16), _version(v)
    )
    assert result.hash_hex == v["expected_hash_be"]
    # Floors are compared with integers: a double can round across the integer.
    assert DIFF1_TARGET // result.hash_int == v["expected_difficulty_floor"]
    assert result.difficulty == pytest.approx(v["expected_difficulty"], rel=1e-12)
    assert job.network_difficulty == pytest.approx(v["nbits_difficulty"], rel=1e-12)
    # A block vector is a block: its hash meets its own nbits target.
    if v["kind"] == "block" or v.get("block_hash"):
        assert result.is_block


@pytest.mark.parametrize("v", STRATUM_VECTORS, ids=[v["id"] for v in STRATUM_VECTORS])
def test_vector_header_bytes(v: dict[str, Any]) -> None:
    job = _job(v)
    header = job.header(
        bytes.fromhex(v["extranonce2"]), int(v["ntime"], 16), int(v["nonce"], 16), _version(v)
    )
    assert header.hex() == v["header_hex"]
    assert job.merkle_root(bytes.fromhex(v["extranonce2"]))[::-1].hex() == v["merkle_root_be"]


def test_header_only_fixture() -> None:
    """ESP-Miner's fixture gives the header directly: hash and diff 18 must come out."""
    (v,) = [v for v in VECTORS if v["coinb1"] is None]
    digest = sha256d(bytes.fromhex(v["header_hex"]))
    assert digest[::-1].hex() == v["expected_hash_be"]
    assert DIFF1_TARGET // int.from_bytes(digest, "little") == v["expected_difficulty_floor"]


def test_witness_coinbase_gives_wrong_root() -> None:
    """Stratum commits to the non-witness coinbase; hashing the witness form must not match."""
    for v in VECTORS:
        if "coinbase_with_witness_hex" not in v:
            continue
        wrong = sha256d(bytes.fromhex(v["coinbase_with_witness_hex"]))
        right = sha256d(bytes.fromhex(v["coinbase_hex"]))
        assert wrong != right
        assert right == sha256d(
            bytes.fromhex(v["coinb1"] + v["extranonce1"] + v["extranonce2"] + v["coinb2"])
        )


def test_version_rolling_needs_the_mask() -> None:
    """Without BIP310 rolling the S19 XP share is worthless; with it, it meets diff 699."""
    (v,) = [v for v in VECTORS if v.get("version_mask")]
    job = _job(v)
    args = (bytes.fromhex(v["extranonce2"]), int(v["ntime"], 16), int(v["nonce"], 16))
    unrolled = compute_share(job, *args, job.version)
    rolled = compute_share(job, *args, _version(v))
    assert unrolled.difficulty < 1
    assert rolled.difficulty >= 699


def test_rolled_version_rule() -> None:
    assert rolled_version(0x20000004, 0x1FFFE000, 0x00092000) == 0x20092004
    # Bits outside the mask are ignored (BIP310), not XORed in.
    assert rolled_version(0x20000004, 0x1FFFE000, 0xFFFFFFFF) == 0x3FFFE004
    assert rolled_version(0x20000004, 0x1FFFE000, None) == 0x20000004


def test_nbits_targets() -> None:
    assert nbits_to_target(0x1D00FFFF) == DIFF1_TARGET
    assert nbits_to_target(0x207FFFFF) == 0x7FFFFF << (8 * 29)
    assert nbits_to_target(0x03123456) == 0x123456
    assert nbits_to_target(0x02123456) == 0x1234


def test_merkle_root_cache_bounded() -> None:
    (v,) = [v for v in STRATUM_VECTORS if v["id"] == "mainnet-170"]
    job = _job(v)
    first = job.merkle_root(b"\x00")
    for i in range(1000):
        job.merkle_root(i.to_bytes(4, "little"))
    assert len(job._roots) <= 64
    assert job.merkle_root(b"\x00") == first
