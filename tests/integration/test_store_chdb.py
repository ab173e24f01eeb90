"""The embedded store on a real chdb engine: schema, exactness, dedup, aggregates, late rows."""

from __future__ import annotations

import dataclasses
import math
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from stratum_proxy.errors import ConfigError, StoreBusyError
from stratum_proxy.store import schema as schema_mod
from stratum_proxy.store.backend import encode_batch, open_store, schema_for
from stratum_proxy.store.chdb_store import ChdbStore
from stratum_proxy.store.record import COLUMNS, ShareRecord
from stratum_proxy.store.schema import SchemaConfig, all_statements, sql_string
from stratum_proxy.store.settings import StoreSettings

HASHES_PER_DIFF = 4294967296


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ChdbStore]:
    s = open_store(f"chdb://{tmp_path / 'db'}", StoreSettings())
    assert isinstance(s, ChdbStore)
    try:
        s.ensure_schema()
        yield s
    finally:
        s.close()


def rec(**change: object) -> ShareRecord:
    base = ShareRecord(
        ts=time.time() - 60,
        proxy_id="proxy-1",
        upstream="pool-a",
        protocol="sv1",
        channel_id=1,
        worker="farm.rig1",
        miner_addr="10.0.0.2:40000",
        job_id="1f",
        extranonce2="0000002a",
        ntime="6650b2f1",
        nonce="1a2b3c4d",
        version=0x20000000,
        share_hash="0000000000000000000abc" + "0" * 42,
        share_difficulty=70_000.5,
        pool_difficulty=65_536.0,
        network_difficulty=83_148_355_189_239.77,
        status="accepted",
        reject_reason="",
        is_block=False,
        response_ms=23.25,
    )
    return dataclasses.replace(base, **change)  # type: ignore[arg-type]


def rows(store: ChdbStore, sql: str) -> list[dict[str, object]]:
    out = store.query(
        sql + " FORMAT JSONEachRow SETTINGS output_format_json_quote_64bit_integers=0"
    )
    return [orjson.loads(line) for line in out.splitlines()]


def scalar(store: ChdbStore, sql: str) -> str:
    return store.query(sql).decode().strip()


def test_schema_has_the_record_columns_and_types(store: ChdbStore) -> None:
    cols = rows(
        store,
        "SELECT name, type FROM system.columns WHERE database = 'mining' AND table = 'shares' "
        "ORDER BY position",
    )
    assert tuple(c["name"] for c in cols) == COLUMNS
    types = {c["name"]: c["type"] for c in cols}
    assert types["ts"] == "DateTime64(3, 'UTC')"
    assert types["version"] == types["channel_id"] == "UInt32"
    assert types["is_block"] == "Bool"
    assert types["response_ms"] == "Float32"
    for name in ("proxy_id", "upstream", "protocol", "worker", "status"):
        assert types[name] == "LowCardinality(String)"
    for name in ("share_difficulty", "pool_difficulty", "network_difficulty"):
        assert types[name] == "Float64"
    engine = scalar(store, "SELECT engine_full FROM system.tables WHERE name = 'shares'")
    assert "PARTITION BY toDate(ts)" in engine and "ORDER BY (worker, ts)" in engine
    assert "TTL toDateTime(ts) + toIntervalDay(30)" in engine
    assert (
        "ttl_only_drop_parts = 1" in engine
        and "non_replicated_deduplication_window = 1000" in engine
    )
    agg = scalar(store, "SELECT engine_full FROM system.tables WHERE name = 'mv_hash_rate_stats'")
    assert agg.startswith("AggregatingMergeTree") and "toIntervalDay(400)" in agg
    assert "non_replicated_deduplication_window = 1000" in agg


def _schema_snapshot(store: ChdbStore) -> bytes:
    return store.query(
        "SELECT name, create_table_query FROM system.tables WHERE database = 'mining' ORDER BY name"
    )


def test_ensure_schema_is_idempotent(store: ChdbStore) -> None:
    before = _schema_snapshot(store)
    store.ensure_schema()
    store.ensure_schema()
    assert _schema_snapshot(store) == before
    versions = scalar(
        store,
        "SELECT groupArray(version) FROM "
        "(SELECT version FROM mining.schema_version ORDER BY version)",
    )
    assert versions == "[1,2,3]"


def test_migration_from_a_v1_store_keeps_rows(tmp_path: Path) -> None:
    s = open_store(f"chdb://{tmp_path}", StoreSettings())
    assert isinstance(s, ChdbStore)
    try:
        assert schema_mod.ensure_schema(s._execute, s.schema, target=1) == 1
        s.query(
            "INSERT INTO mining.shares (ts, worker, status, pool_difficulty) "
            "VALUES (now64(3) - 5, 'old.rig', 'accepted', 512)"
        )
        assert scalar(s, "SELECT count() FROM system.tables WHERE database = 'mining'") == "2"
        s.ensure_schema()
        assert scalar(s, "SELECT max(version) FROM mining.schema_version") == "3"
        cols = scalar(
            s,
            "SELECT groupArray(name) FROM system.columns "
            "WHERE table = 'shares' AND database = 'mining'",
        )
        assert "'version_bits','extranonce1'" in cols
        assert scalar(s, "SELECT worker, version_bits = '' FROM mining.shares") == "old.rig\t1"
        snapshot = _schema_snapshot(s)
        s.ensure_schema()
        assert _schema_snapshot(s) == snapshot
        assert scalar(s, "SELECT count() FROM mining.schema_version") == "3"
        # The new view sees new rows.
        s.insert(encode_batch([rec()], "after-migration"))
        assert scalar(s, "SELECT sum(share_count) FROM mining.mv_hash_rate_stats") == "1"
    finally:
        s.close()


def test_changed_retention_is_applied_on_start(tmp_path: Path) -> None:
    url = f"chdb://{tmp_path}"
    s = open_store(url, StoreSettings())
    s.ensure_schema()
    s.close()
    s = open_store(url, StoreSettings(retention_days=7, aggregate_retention_days=90))
    try:
        s.ensure_schema()
        engines = s.query(
            "SELECT engine_full FROM system.tables WHERE database = 'mining' ORDER BY name"
        )
        assert b"toIntervalDay(7)" in engines and b"toIntervalDay(90)" in engines
        assert b"toIntervalDay(30)" not in engines
    finally:
        s.close()


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
        )
        for i in range(24)
    ]
    store.insert(encode_batch(records, "exact"))
    exprs = []
    for name in COLUMNS:
        if name == "ts":
            exprs.append("toUnixTimestamp64Milli(ts)")
        elif name in ("share_difficulty", "pool_difficulty", "network_difficulty"):
            exprs.append(f"reinterpretAsUInt64({name})")
        elif name == "response_ms":
            exprs.append("reinterpretAsUInt32(response_ms)")
        elif name in ("channel_id", "version"):
            exprs.append(name)
        elif name == "is_block":
            exprs.append("toUInt8(is_block)")
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
            if name == "ts":
                fields.append(str(round(v * 1000)))
            elif name in ("share_difficulty", "pool_difficulty", "network_difficulty"):
                fields.append(str(struct.unpack("<Q", struct.pack("<d", v))[0]))
            elif name == "response_ms":
                fields.append(str(struct.unpack("<I", struct.pack("<f", v))[0]))
            elif name == "is_block":
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


def test_cluster_ddl_parses(store: ChdbStore) -> None:
    cfg = SchemaConfig(cluster="farm-cluster", retention_days=14)
    statements = all_statements(cfg)
    assert cfg.insert_table == "mining.shares_local"
    for statement in statements:
        formatted = scalar(store, f"SELECT formatQuery({sql_string(statement)})")
        assert formatted, statement
        if not statement.startswith("INSERT"):
            assert "ON CLUSTER `farm-cluster`" in statement
    text = "\n".join(statements)
    assert (
        "ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')" in text
    )
    assert "ReplicatedAggregatingMergeTree(" in text
    assert "replicated_deduplication_window = 1000" in text
    assert "Distributed(`farm-cluster`, `mining`, `shares_local`, rand())" in text
    assert "Distributed(`farm-cluster`, `mining`, `mv_hash_rate_stats_local`, rand())" in text
    assert "FROM mining.shares_local" in text and "TO mining.mv_hash_rate_stats_local" in text


def test_cluster_setting_needs_a_server(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        open_store(f"chdb://{tmp_path}", StoreSettings(cluster="farm"))
    assert "store.cluster" in str(info.value)
    # Nothing was left held: the path opens normally afterwards.
    open_store(f"chdb://{tmp_path}", StoreSettings()).close()


def test_schema_for_takes_the_database_from_a_server_url() -> None:
    settings = StoreSettings(retention_days=9, cluster="c1")
    cfg = schema_for("clickhouse://u:p@h:9000/farm", settings)
    assert (cfg.database, cfg.retention_days, cfg.cluster) == ("farm", 9, "c1")
    assert cfg.insert_table == "farm.shares_local" and cfg.table("shares") == "farm.shares"
    assert schema_for("chdb:///x", StoreSettings()).database == "mining"
