"""The schema on a real chdb engine: columns and types, idempotence, migration, TTL, cluster DDL."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.store_rows import rec, rows, scalar

from stratum_proxy.errors import ConfigError
from stratum_proxy.store import migrate
from stratum_proxy.store.backend import encode_batch, open_store, schema_for
from stratum_proxy.store.chdb_store import ChdbStore
from stratum_proxy.store.record import COLUMNS
from stratum_proxy.store.schema import LATEST_VERSION, SchemaConfig, all_statements, sql_string
from stratum_proxy.store.settings import StoreSettings


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
    assert versions == str(list(range(1, LATEST_VERSION + 1))).replace(" ", "")


def test_migration_from_a_v1_store_keeps_rows(tmp_path: Path) -> None:
    s = open_store(f"chdb://{tmp_path}", StoreSettings())
    assert isinstance(s, ChdbStore)
    try:
        assert migrate.ensure_schema(s._execute, s.schema, target=1) == 1
        s.query(
            "INSERT INTO mining.shares (ts, worker, status, pool_difficulty) "
            "VALUES (now64(3) - 5, 'old.rig', 'accepted', 512)"
        )
        assert scalar(s, "SELECT count() FROM system.tables WHERE database = 'mining'") == "2"
        s.ensure_schema()
        assert scalar(s, "SELECT max(version) FROM mining.schema_version") == str(LATEST_VERSION)
        cols = scalar(
            s,
            "SELECT groupArray(name) FROM system.columns "
            "WHERE table = 'shares' AND database = 'mining'",
        )
        assert "'version_bits','extranonce1','connection_id'" in cols
        assert scalar(s, "SELECT worker, version_bits = '' FROM mining.shares") == "old.rig\t1"
        snapshot = _schema_snapshot(s)
        s.ensure_schema()
        assert _schema_snapshot(s) == snapshot
        assert scalar(s, "SELECT count() FROM mining.schema_version") == str(LATEST_VERSION)
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


def test_a_dropped_version_table_is_rebuilt_without_touching_rows(tmp_path: Path) -> None:
    url = f"chdb://{tmp_path}"
    s = open_store(url, StoreSettings())
    try:
        s.ensure_schema()
        s.insert(encode_batch([rec()], "kept"))
        s.query("DROP TABLE mining.schema_version")
    finally:
        s.close()
    s = open_store(url, StoreSettings())
    try:
        s.ensure_schema()
        assert scalar(s, "SELECT max(version) FROM mining.schema_version") == str(LATEST_VERSION)
        assert scalar(s, "SELECT count() FROM mining.shares") == "1"
        assert scalar(s, "SELECT sum(share_count) FROM mining.mv_hash_rate_stats") == "1"
    finally:
        s.close()


def test_migration_to_connection_ids_keeps_rows_and_the_design_query(tmp_path: Path) -> None:
    s = open_store(f"chdb://{tmp_path}", StoreSettings())
    assert isinstance(s, ChdbStore)
    try:
        assert migrate.ensure_schema(s._execute, s.schema, target=3) == 3
        # Rows of a release without the column: channel 1 is the connection's id.
        s.query(
            "INSERT INTO mining.shares (ts, worker, channel_id, status, pool_difficulty) "
            "VALUES (now64(3) - 5, 'old.rig', 1, 'accepted', 512)"
        )
        s.ensure_schema()
        assert scalar(s, "SELECT max(version) FROM mining.schema_version") == str(LATEST_VERSION)
        names = scalar(
            s,
            "SELECT groupArray(name) FROM (SELECT name FROM system.columns "
            "WHERE table = 'shares' AND database = 'mining' ORDER BY position)",
        )
        assert names == "[" + ",".join(f"'{c}'" for c in COLUMNS) + "]"
        assert scalar(s, "SELECT worker, channel_id, connection_id FROM mining.shares") == (
            "old.rig\t1\t0"  # recorded before the column: 0, "not known"
        )
        s.insert(encode_batch([rec(worker="new.rig", channel_id=4097, connection_id=4097)], "b1"))
        got = rows(
            s,
            "SELECT channel_id, sum(share_count) AS shares, sum(total_hashes) / greatest(1, "
            "dateDiff('second', min(min_timestamp), max(max_timestamp))) AS hashrate "
            "FROM mining.mv_hash_rate_stats WHERE period_start >= now() - INTERVAL 60 MINUTE "
            "GROUP BY channel_id ORDER BY channel_id",
        )
        # The aggregate existed before the migration: it counted the old row and the new one.
        assert [(r["channel_id"], r["shares"]) for r in got] == [(1, 1), (4097, 1)]
        assert scalar(s, "SELECT connection_id FROM mining.shares WHERE worker = 'new.rig'") == (
            "4097"
        )
    finally:
        s.close()


def test_manual_rows_stay_out_of_the_aggregate_after_migrating_a_v5_store(tmp_path: Path) -> None:
    s = open_store(f"chdb://{tmp_path}", StoreSettings())
    assert isinstance(s, ChdbStore)
    try:
        assert migrate.ensure_schema(s._execute, s.schema, target=5) == 5
        s.query(  # a row of a release without the column, fed by the view as it was
            "INSERT INTO mining.shares (ts, worker, channel_id, status, pool_difficulty) "
            "VALUES (now64(3) - 5, 'old.rig', 1, 'accepted', 512)"
        )
        s.ensure_schema()
        s.insert(encode_batch([rec(), rec(manual=True, share_hash="", worker="farm.rig1")], "v6"))
        s.ensure_schema()  # idempotent: MODIFY QUERY again changes nothing
        assert scalar(s, "SELECT countIf(manual) FROM mining.shares") == "1"
        per_worker = rows(
            s,
            "SELECT worker, sum(share_count) AS n FROM mining.mv_hash_rate_stats "
            "GROUP BY worker ORDER BY worker",
        )
        assert per_worker == [{"worker": "farm.rig1", "n": 1}, {"worker": "old.rig", "n": 1}]
        view = scalar(s, "SELECT create_table_query FROM system.tables WHERE name LIKE '%_feed'")
        assert "WHERE NOT manual" in view
    finally:
        s.close()
