"""The embedded store on a real chdb engine: exactness, dedup, aggregates, late rows, queries."""

from __future__ import annotations

import dataclasses
import math
import struct
import time
from decimal import Decimal
from pathlib import Path

import pytest
from helpers.store_rows import rec, rows, scalar

from stratum_proxy.errors import StoreBusyError
from stratum_proxy.store.backend import encode_batch, open_store
from stratum_proxy.store.chdb_store import ChdbStore
from stratum_proxy.store.record import COLUMN_SPECS, COLUMNS, ShareRecord
from stratum_proxy.store.settings import StoreSettings

TRICKY = [
    "",
    'it\'s "quoted"',
    "tab\there\nnewline\r\nback\\slash",
    "NUL\x00inside",
    "ünïcødé ✓ 矿工 🚀",
    "a" * 300,
]


def test_every_column_reads_back_exactly(store: ChdbStore) -> None:
    now = math.floor(time.time())
    records = [
        rec(
            ts=now - 100 + i + 0.001 * (i * 37 % 1000),
            proxy_id=TRICKY[i % 6],
            upstream=TRICKY[(i + 1) % 6],
            protocol="sv2" if i % 2 else "sv1",
            channel_id=[0, 1, 0xFFFFFFFF][i % 3],
            worker=TRICKY[(i + 2) % 6],
            miner_addr=TRICKY[(i + 3) % 6],
            job_id=TRICKY[(i + 4) % 6],
            extranonce2=TRICKY[(i + 5) % 6],
            ntime=f"{i:08x}",
            nonce=TRICKY[i % 6][::-1],
            version=[0, 0x20000000, 0xFFFFFFFF][i % 3],
            share_hash=f"{i:064x}",
            share_difficulty=[0.1 + 0.2, 5e-324, 1.7976931348623157e308, 0.0][i % 4],
            pool_difficulty=[65536.0, 1 / 3, 2.5e-7][i % 3],
            network_difficulty=math.pi * 1e13 + i,
            status=["accepted", "rejected", "no_response"][i % 3],
            reject_reason=TRICKY[(i + 4) % 6],
            is_block=i % 5 == 0,
            response_ms=[0.1, 12345.678, 3.4e38][i % 3],
            version_bits=TRICKY[(i + 1) % 6],
            extranonce1=f"{i:08x}",
            connection_id=0xFFFFFFFF - i * 7919,
            miner_difficulty=[1 / 3, 65536.0, 5e-324][i % 3],
            forwarded=i % 2 == 0,
            verdict_by=["pool", "proxy", ""][i % 3],
        )
        for i in range(24)
    ]
    store.insert(encode_batch(records, "exact"))
    exprs = []
    kinds = {name: spec.type for name, spec in zip(COLUMNS, COLUMN_SPECS, strict=True)}
    for name in COLUMNS:
        if kinds[name].startswith("DateTime64"):
            exprs.append(f"toUnixTimestamp64Milli({name})")
        elif kinds[name] == "Float64":
            exprs.append(f"reinterpretAsUInt64({name})")
        elif kinds[name] == "Float32":
            exprs.append(f"reinterpretAsUInt32({name})")
        elif kinds[name] == "UInt32":
            exprs.append(name)
        elif kinds[name] == "Bool":
            exprs.append(f"toUInt8({name})")
        else:
            exprs.append(f"hex({name})")
    got = store.query(
        f"SELECT {', '.join(exprs)} FROM mining.shares ORDER BY extranonce1 FORMAT TSV"
    )
    expected_lines = []
    for r in records:
        fields = []
        for name in COLUMNS:
            v = getattr(r, name)
            if kinds[name].startswith("DateTime64"):
                fields.append(str(int(Decimal(repr(v)) * 1000)))  # digits beyond ms dropped
            elif kinds[name] == "Float64":
                fields.append(str(struct.unpack("<Q", struct.pack("<d", v))[0]))
            elif kinds[name] == "Float32":
                fields.append(str(struct.unpack("<I", struct.pack("<f", v))[0]))
            elif kinds[name] == "Bool":
                fields.append(str(int(v)))
            elif isinstance(v, int):
                fields.append(str(v))
            else:
                fields.append(v.encode().hex().upper())
        expected_lines.append("\t".join(fields))
    assert got.decode().splitlines() == expected_lines


def _counts(store: ChdbStore) -> tuple[int, int]:
    shares = int(scalar(store, "SELECT count() FROM mining.shares"))
    agg = int(scalar(store, "SELECT sum(share_count) FROM mining.mv_hash_rate_stats") or 0)
    return shares, agg


def test_retried_batch_counts_once_in_shares_and_aggregate(store: ChdbStore) -> None:
    batch = encode_batch(
        [rec(nonce=f"{i:08x}", channel_id=i % 4) for i in range(500)], "proxy-1:1:500"
    )
    store.insert(batch)
    store.insert(batch)
    store.insert(
        encode_batch([rec(nonce=f"{i:08x}", channel_id=i % 4) for i in range(500)], "proxy-1:1:500")
    )
    assert _counts(store) == (500, 500)
    # The token, not the content, decides: the same rows under another token are new rows.
    store.insert(dataclasses.replace(batch, token="proxy-1:501:1000"))
    assert _counts(store) == (1000, 1000)


def test_retried_batch_over_midnight_counts_once(store: ChdbStore) -> None:
    midnight = math.floor(time.time() / 86400) * 86400
    records = [rec(ts=midnight - 300 + 60 * i, nonce=f"{i:08x}") for i in range(10)]
    batch = encode_batch(records, "span")
    for _ in range(3):
        store.insert(batch)
    parts = scalar(
        store, "SELECT uniqExact(partition) FROM system.parts WHERE table = 'shares' AND active"
    )
    assert parts == "2"
    assert _counts(store) == (10, 10)


def test_design_hashrate_query_runs_as_written(store: ChdbStore) -> None:
    t0 = math.floor(time.time()) - 1800
    records = []
    # channel 1: 20 accepted at pool difficulty 1024 and 4 rejected, over exactly 600 s.
    for i in range(24):
        status = "rejected" if i % 6 == 5 else "accepted"
        records.append(
            rec(ts=t0 + 0.5 + 600 * i / 23, channel_id=1, status=status, pool_difficulty=1024.0)
        )
    # channel 2: a difficulty change half way; own share difficulty must not matter.
    for i in range(11):
        diff = 2048.0 if i < 5 else 4096.0
        records.append(
            rec(ts=t0 + 0.5 + 30 * i, channel_id=2, pool_difficulty=diff, share_difficulty=1e12)
        )
    store.insert(encode_batch(records, "hr"))
    design_query = """
    SELECT channel_id, sum(share_count) AS shares,
           sum(total_hashes) / greatest(1, dateDiff('second', min(min_timestamp), max(max_timestamp))) AS hashrate
    FROM mining.mv_hash_rate_stats WHERE period_start >= now() - INTERVAL 60 MINUTE
    GROUP BY channel_id
    """  # noqa: E501  (DESIGN.md's query, verbatim)
    got = {r["channel_id"]: (r["shares"], r["hashrate"]) for r in rows(store, design_query)}
    ch1 = [r for r in records if r.channel_id == 1]
    ch2 = [r for r in records if r.channel_id == 2]

    def expected(group: list[ShareRecord]) -> tuple[int, float]:
        work = sum(r.pool_difficulty for r in group if r.status == "accepted") * 2**32
        seconds = math.floor(max(r.ts for r in group)) - math.floor(min(r.ts for r in group))
        return len(group), work / max(1, seconds)

    assert got[1][0] == 24 and got[1][1] == pytest.approx(expected(ch1)[1], rel=1e-12)
    assert expected(ch1)[1] == 20 * 1024 * 2**32 / 600
    assert got[2][0] == 11 and got[2][1] == pytest.approx(expected(ch2)[1], rel=1e-12)
    assert expected(ch2)[1] == (5 * 2048 + 6 * 4096) * 2**32 / 300


def _wait_for(store: ChdbStore, sql: str, want: str, timeout_s: float = 10.0) -> str:
    deadline = time.monotonic() + timeout_s
    got = scalar(store, sql)
    while got != want and time.monotonic() < deadline:
        time.sleep(0.05)
        got = scalar(store, sql)
    return got


def test_late_rows_follow_each_tables_retention(store: ChdbStore) -> None:
    now = time.time()
    fresh = [rec(ts=now - 10, nonce="fresh")]
    late = [rec(ts=now - 40 * 86400, nonce=f"late{i}", channel_id=9) for i in range(3)]
    ancient = [rec(ts=now - 500 * 86400, nonce="ancient", channel_id=10)]
    store.insert(encode_batch(fresh + late + ancient, "replayed"))
    # shares keeps 30 days: the late and ancient rows' parts expire and are dropped.
    assert _wait_for(store, "SELECT count() FROM mining.shares", "1") == "1"
    assert scalar(store, "SELECT nonce FROM mining.shares") == "fresh"
    # The aggregate keeps 400 days: it counts the late rows; its own TTL merge
    # (sub-second here) removes the ancient one.
    by_channel = (
        "SELECT groupArray((channel_id, n)) FROM (SELECT channel_id, sum(share_count) AS n "
        "FROM mining.mv_hash_rate_stats GROUP BY channel_id ORDER BY channel_id)"
    )
    assert _wait_for(store, by_channel, "[(1,1),(9,3)]") == "[(1,1),(9,3)]"


def test_query_returns_what_clickhouse_prints(store: ChdbStore) -> None:
    assert store.query("SELECT 1 AS a, 'x\ty' AS b") == b"1\tx\\ty\n"
    assert store.query("SELECT 1 AS a, 'x' AS b FORMAT JSONEachRow") == b'{"a":1,"b":"x"}\n'
    assert store.query("SELECT 1 AS a FORMAT CSVWithNames") == b'"a"\n1\n'


def test_empty_batch_is_a_no_op(store: ChdbStore) -> None:
    store.insert(encode_batch([], "empty"))
    assert _counts(store) == (0, 0)


def test_one_embedded_store_per_process(tmp_path: Path) -> None:
    first = open_store(f"chdb://{tmp_path / 'a'}", StoreSettings())
    try:
        with pytest.raises(StoreBusyError) as info:
            open_store(f"chdb://{tmp_path / 'b'}", StoreSettings())
        assert "one embedded engine per process" in str(info.value)
    finally:
        first.close()
    second = open_store(f"chdb://{tmp_path / 'b'}", StoreSettings())
    try:
        second.ensure_schema()
        assert scalar(second, "SELECT count() FROM mining.shares") == "0"  # type: ignore[arg-type]
    finally:
        second.close()
