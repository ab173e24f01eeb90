"""SV2 job helpers: BIP141 stripping (SRI vectors), SRI share vectors, targets and difficulty."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stratum_proxy.shares import DIFF1_TARGET, compute_share, sha256d
from stratum_proxy.sv2.errors import Sv2ProtocolError
from stratum_proxy.sv2.jobs import (
    MAX_TARGET,
    InvalidJobError,
    block_header,
    extended_merkle_root,
    int_to_target,
    share_job,
    standard_share,
    strip_bip141,
    target_from_difficulty,
    target_to_difficulty,
    target_to_int,
)
from stratum_proxy.sv2.messages import NewExtendedMiningJob, SetNewPrevHash

VECTORS = Path("/work/shared/vectors/sv2")

# SRI sv2/channels-sv2/src/bip141.rs tests (notes V7), as hex.
SRI_STRIPPED = (
    "02000000010000000000000000000000000000000000000000000000000000000000000000ffffffff3c024508"
    "00162f5374726174756d2056322053524920506f6f6c2f2f20",
    "feffffff0200f2052a01000000160014ebe1b7dcc293ccaa0ee743a86f89df8258c208fc0000000000000000"
    "266a24aa21a9ede2f61c3f71d1defd3fa999dfa36953755c690689799962b48bebd836974e8cf944080000",
)
BRAIINS_STRIPPED = (
    "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff4c03cee2"
    "0d0f2f736c7573682fb70017040fae60a3fabe6d6dcfaaffaaa5a7e370441b0637dadb6bb086af512e888d1634"
    "c971fe03946256811000000000000000000092a24600",
    "ffffffff03c223c0120000000017a9141f0cbbec8bc4c945e4e16249b11eee911eded55f87000000000000000026"
    "6a24aa21a9edff1b53ef0499359e8e8e89a02297285cb93828cb909e5f149b8b35a3e5911f5100000000000000"
    "002b6a2952534b424c4f434b3abcae7c708a1d1a9ec2d18cd894801bee6abd77d63e64d5f68f426e0c00785974"
    "00000000",
)
SRI_UNSTRIPPED = (
    "020000000001010000000000000000000000000000000000000000000000000000000000000000ffffffff3c02"
    "450800162f5374726174756d2056322053524920506f6f6c2f2f20",
    "feffffff0200f2052a01000000160014ebe1b7dcc293ccaa0ee743a86f89df8258c208fc0000000000000000"
    "266a24aa21a9ede2f61c3f71d1defd3fa999dfa36953755c690689799962b48bebd836974e8cf901200000"
    "00000000000000000000000000000000000000000000000000000000000044080000",
)


def _hex_pair(pair: tuple[str, str]) -> tuple[bytes, bytes]:
    return bytes.fromhex(pair[0]), bytes.fromhex(pair[1])


@pytest.mark.parametrize("pair", [SRI_STRIPPED, BRAIINS_STRIPPED], ids=["sri", "braiins"])
def test_already_stripped_parts_are_unchanged(pair: tuple[str, str]) -> None:
    prefix, suffix = _hex_pair(pair)
    assert strip_bip141(prefix, suffix) == (prefix, suffix)


def test_unstripped_sri_parts_give_the_sri_expected_output() -> None:
    assert strip_bip141(*_hex_pair(SRI_UNSTRIPPED)) == _hex_pair(SRI_STRIPPED)


@pytest.mark.parametrize("prefix_len", range(6))
def test_prefix_too_short_for_marker_and_flag(prefix_len: int) -> None:
    with pytest.raises(InvalidJobError):
        strip_bip141(b"\x00" * prefix_len, b"\x01\x20" + b"\x00" * 36)


@pytest.mark.parametrize("suffix_len", range(38))
def test_segwit_suffix_too_short_for_witness_and_locktime(suffix_len: int) -> None:
    with pytest.raises(InvalidJobError) as info:
        strip_bip141(b"\x00\x00\x00\x00\x00\x01", b"\x00" * suffix_len)
    assert not info.value.fatal and isinstance(info.value, Sv2ProtocolError)


def test_minimum_segwit_parts() -> None:
    suffix = b"\x01\x20" + b"\x00" * 32 + b"\x00" * 4
    assert strip_bip141(b"\x00\x00\x00\x00\x00\x01", suffix) == (b"\x00" * 4, b"\x00" * 4)


def test_witness_that_is_not_one_32_byte_item_is_refused() -> None:
    # SRI would cut these 34 bytes blindly and hash a wrong txid; we refuse.
    prefix, suffix = _hex_pair(SRI_UNSTRIPPED)
    broken = suffix[:-38] + b"\x02\x20" + suffix[-36:]
    with pytest.raises(InvalidJobError, match="witness"):
        strip_bip141(prefix, broken)


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    first = data[pos]
    if first < 0xFD:
        return first, pos + 1
    size = {0xFD: 2, 0xFE: 4, 0xFF: 8}[first]
    return int.from_bytes(data[pos + 1 : pos + 1 + size], "little"), pos + 1 + size


def _legacy_serialization(tx: bytes) -> bytes:
    """Independent oracle: parse a BIP144 transaction and re-serialize it without witness."""
    assert tx[4] == 0 and tx[5] == 1
    body = tx[6:]
    pos = 0
    count, pos = _varint(body, pos)
    for _ in range(count):
        script_len, pos = _varint(body, pos + 36)
        pos += script_len + 4
    count, pos = _varint(body, pos)
    for _ in range(count):
        script_len, pos = _varint(body, pos + 8)
        pos += script_len
    assert len(tx) - 6 - pos > 4  # witness data remains before the locktime
    return tx[:4] + body[:pos] + tx[-4:]


def _mg_coinbases() -> list[tuple[str, bytes, bytes]]:
    """Coinbase parts in the generator scenarios: sent jobs and fields checked on received ones."""
    found = []
    for path in sorted((VECTORS / "message-generator").rglob("*.json")):
        data = json.loads(path.read_text())
        for entry in data.get("mining_messages", []):
            fields = entry["message"]
            if fields["type"] == "NewExtendedMiningJob":
                prefix, suffix = fields["coinbase_tx_prefix"], fields["coinbase_tx_suffix"]
                found.append((f"{path.name}::{entry['id']}", bytes(prefix), bytes(suffix)))
        for action in data.get("actions", []):
            for result in action.get("results", []):
                value = result.get("value")
                if result["type"] == "match_message_field" and value[1] == "NewExtendedMiningJob":
                    checks = {name: next(iter(v.values())) for name, v in value[2]}
                    prefix, suffix = checks["coinbase_tx_prefix"], checks["coinbase_tx_suffix"]
                    found.append((f"{path.name}::expected", bytes(prefix), bytes(suffix)))
    return found


MG_COINBASES = _mg_coinbases()


@pytest.mark.parametrize(
    ("name", "prefix", "suffix"), MG_COINBASES, ids=[c[0] for c in MG_COINBASES]
)
def test_mg_unstripped_coinbase_gives_the_txid_of_a_full_parse(
    name: str, prefix: bytes, suffix: bytes
) -> None:
    job = NewExtendedMiningJob(
        channel_id=1,
        job_id=1,
        min_ntime=None,
        version=0x20000000,
        version_rolling_allowed=True,
        merkle_path=(),
        coinbase_tx_prefix=prefix,
        coinbase_tx_suffix=suffix,
    )
    extranonce_prefix, extranonce = b"\x00" * 15 + b"\x01", b"\x07" * 16  # translation-proxy sizes
    full_tx = prefix + extranonce_prefix + extranonce + suffix
    expected_txid = sha256d(_legacy_serialization(full_tx))
    assert extended_merkle_root(job, extranonce_prefix, extranonce) == expected_txid


def _extended_vector() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / "sri_share_vectors.json").read_text())
    return data["extended_valid_share"]


def _extended_job(vector: dict[str, Any]) -> tuple[NewExtendedMiningJob, SetNewPrevHash]:
    j, p = vector["new_extended_mining_job"], vector["set_new_prev_hash"]
    job = NewExtendedMiningJob(
        channel_id=j["channel_id"],
        job_id=j["job_id"],
        min_ntime=j["min_ntime"],
        version=j["version"],
        version_rolling_allowed=j["version_rolling_allowed"],
        merkle_path=tuple(bytes.fromhex(n) for n in j["merkle_path"]),
        coinbase_tx_prefix=bytes.fromhex(j["coinbase_tx_prefix"]),
        coinbase_tx_suffix=bytes.fromhex(j["coinbase_tx_suffix"]),
    )
    prev = SetNewPrevHash(
        channel_id=p["channel_id"],
        job_id=p["job_id"],
        prev_hash=bytes.fromhex(p["prev_hash"]),
        min_ntime=p["min_ntime"],
        nbits=p["nbits"],
    )
    return job, prev


def test_sri_extended_share_vector() -> None:
    vector = _extended_vector()
    job, prev = _extended_job(vector)
    prefix = bytes.fromhex(vector["channel"]["extranonce_prefix"])
    share = vector["submit_shares_extended"]
    extranonce = bytes.fromhex(share["extranonce"])
    root = extended_merkle_root(job, prefix, extranonce)
    assert root.hex() == vector["merkle_root_internal"]
    sjob = share_job(job, prev, prefix, pool_difficulty=1.0)
    assert sjob.ntime == prev.min_ntime and sjob.clean_jobs  # a future job
    result = compute_share(sjob, extranonce, share["ntime"], share["nonce"], share["version"])
    assert result.hash_hex == vector["expected_block_hash_display"]
    target = target_to_int(bytes.fromhex(vector["channel"]["target_le"]))
    assert result.meets(target)
    assert not result.is_block
    other = compute_share(sjob, extranonce, share["ntime"], share["nonce"] + 1, share["version"])
    assert other.hash_hex != result.hash_hex


def test_sri_standard_share_vector() -> None:
    data = json.loads((VECTORS / "sri_share_vectors.json").read_text())["standard_valid_share"]
    job, prev, share = (
        data["new_mining_job"],
        data["set_new_prev_hash"],
        data["submit_shares_standard"],
    )
    result = standard_share(
        bytes.fromhex(job["merkle_root"]),
        bytes.fromhex(prev["prev_hash"]),
        prev["nbits"],
        share["version"],
        share["ntime"],
        share["nonce"],
    )
    assert result.hash_hex == data["expected_block_hash_display"]
    assert result.meets(target_to_int(bytes.fromhex(data["channel"]["target_le"])))
    assert result.difficulty == pytest.approx(DIFF1_TARGET / result.hash_int)


def test_block_header_layout() -> None:
    header = block_header(0x20000000, b"\x11" * 32, b"\x22" * 32, 3, 4, 5)
    assert len(header) == 80
    assert header[:4] == b"\x00\x00\x00\x20" and header[68:] == bytes.fromhex(
        "030000000400000005000000"
    )
    with pytest.raises(ValueError):
        block_header(1, b"\x11" * 31, b"\x22" * 32, 3, 4, 5)


def test_target_bytes_are_a_little_endian_integer() -> None:
    # notes §3: U256 targets are LE; 00..00 ff ff 00 00 has its 0xffff at bytes 28-29.
    raw = bytes.fromhex("00" * 28 + "ffff0000")
    assert target_to_int(raw) == 0xFFFF << 224
    assert int_to_target(0xFFFF << 224) == raw
    assert int_to_target(MAX_TARGET) == b"\xff" * 32
    with pytest.raises(ValueError):
        int_to_target(MAX_TARGET + 1)
    with pytest.raises(ValueError):
        target_to_int(b"\x00" * 31)


def test_difficulty_one_is_the_pdiff_target() -> None:
    assert target_from_difficulty(1.0) == 0xFFFF << 208
    assert target_to_difficulty(int_to_target(0xFFFF << 208)) == 1.0
    assert target_to_difficulty(0xFFFF << 207) == 2.0
    assert target_from_difficulty(2.0) == 0xFFFF << 207
    assert target_from_difficulty(1024.0) == (0xFFFF << 208) // 1024
    assert target_to_difficulty(0) == float("inf")


def test_target_from_difficulty_is_exact_and_clamped() -> None:
    # 3 does not divide 0xFFFF * 2**208 evenly: the floor, not a rounded double.
    assert target_from_difficulty(3.0) == (0xFFFF << 208) // 3
    assert target_from_difficulty(1e-30) == MAX_TARGET
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            target_from_difficulty(bad)


@pytest.mark.parametrize("difficulty", [0.001, 0.5, 1.0, 3.7, 1e6, 123456789.25, 1e15])
def test_difficulty_target_round_trip(difficulty: float) -> None:
    assert target_to_difficulty(target_from_difficulty(difficulty)) == pytest.approx(
        difficulty, rel=1e-12
    )
