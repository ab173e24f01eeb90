"""A store whose tables or view were dropped is repaired on start; dead letters replay once."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import orjson
import pytest
from helpers.store_rows import rec, scalar

from stratum_proxy.errors import StoreBusyError
from stratum_proxy.store import migrate
from stratum_proxy.store.backend import encode_batch, open_store
from stratum_proxy.store.chdb_store import ChdbStore
from stratum_proxy.store.deadletter import DEADLETTER_FILE, read_dead_letters
from stratum_proxy.store.faults import FATAL, FaultyStore, synthetic_record
from stratum_proxy.store.pipeline import SharePipeline
from stratum_proxy.store.schema import LATEST_VERSION, SchemaConfig
from stratum_proxy.store.settings import StoreSettings
from stratum_proxy.store.spool_admin import replay_dead_letters, spool_status
from stratum_proxy.store.spool_state import lock_directory, unlock_directory

pytest.importorskip("chdb")


def _objects(store: ChdbStore) -> set[str]:
    return set(
        store.query("SELECT name FROM system.tables WHERE database = 'mining'").decode().split()
    )


def _reopen(path: Path) -> ChdbStore:
    s = open_store(f"chdb://{path}", StoreSettings())
    assert isinstance(s, ChdbStore)
    s.ensure_schema()
    return s


def test_expected_objects_come_from_the_ddl() -> None:
    assert migrate.expected_objects(SchemaConfig(), 3) == [
        "schema_version",
        "shares",
        "mv_hash_rate_stats",
        "mv_hash_rate_stats_feed",
    ]
    assert migrate.expected_objects(SchemaConfig(), 1) == ["schema_version", "shares"]
    cluster = migrate.expected_objects(SchemaConfig(cluster="c"), 3)
    assert {"shares_local", "shares", "mv_hash_rate_stats_local"} <= set(cluster)


@pytest.mark.parametrize(
    "dropped",
    [
        ["shares"],
        ["mv_hash_rate_stats_feed"],
        ["mv_hash_rate_stats"],
        ["mv_hash_rate_stats_feed", "mv_hash_rate_stats", "shares"],
    ],
)
def test_start_recreates_what_was_dropped(tmp_path: Path, dropped: list[str]) -> None:
    path = tmp_path / "db"
    s = _reopen(path)
    try:
        full = _objects(s)
        s.insert(encode_batch([rec(nonce="00000001")], "before"))
        for name in dropped:
            kind = "VIEW" if name.endswith("_feed") else "TABLE"
            s.query(f"DROP {kind} mining.{name}")
    finally:
        s.close()
    s = _reopen(path)
    try:
        assert _objects(s) == full
        assert scalar(s, "SELECT max(version) FROM mining.schema_version") == str(LATEST_VERSION)
        cols = scalar(
            s,
            "SELECT groupArray(name) FROM system.columns "
            "WHERE database = 'mining' AND table = 'shares'",
        )
        assert "'version_bits','extranonce1'" in cols
        kept = "0" if "shares" in dropped else "1"
        assert scalar(s, "SELECT count() FROM mining.shares") == kept
        s.insert(encode_batch([rec(nonce="00000002")], "after"))
        assert scalar(s, "SELECT count() FROM mining.shares") == str(int(kept) + 1)
        # The aggregate is fed again; what it held before survives unless it was dropped.
        agg_kept = 0 if "mv_hash_rate_stats" in dropped else 1
        assert scalar(s, "SELECT sum(share_count) FROM mining.mv_hash_rate_stats") == str(
            agg_kept + 1
        )
        # Repaired once: the next start finds nothing missing.
        assert migrate.missing_objects(s._execute, s.schema, 3) == []
    finally:
        s.close()


def test_repair_leaves_an_intact_store_alone(store: ChdbStore) -> None:
    before = store.query("SELECT name, create_table_query FROM system.tables ORDER BY name")
    assert migrate.repair_schema(store._execute, store.schema, 3) == []
    store.query("DROP TABLE mining.mv_hash_rate_stats")
    assert migrate.repair_schema(store._execute, store.schema, 3) == ["mv_hash_rate_stats"]
    after = store.query("SELECT name, create_table_query FROM system.tables ORDER BY name")
    assert after == before


def _dead_letter_batches(tmp_path: Path, count: int) -> StoreSettings:
    """Run the real pipeline against a store refusing every insert for good."""
    settings = StoreSettings(
        url=f"chdb://{tmp_path}/db",
        spool_dir=tmp_path / "spool",
        batch_rows=100,
        linger_s=0.02,
        fsync_interval_s=0.02,
        retry_initial_s=0.01,
        retry_max_s=0.05,
        shutdown_timeout_s=5.0,
    )
    holder: list[FaultyStore] = []

    def factory() -> FaultyStore:
        store = FaultyStore(open_store(settings.url, settings), FATAL)
        holder.append(store)
        return store

    pipeline = SharePipeline(settings, proxy_id="t", store_factory=factory)
    pipeline.start()
    try:
        for i in range(count):
            pipeline.put(synthetic_record(i))
        deadline = time.monotonic() + 20
        while pipeline.statistics()["rows_dead_lettered"] != count:
            assert time.monotonic() < deadline, "rows not dead-lettered in time"
            time.sleep(0.02)
    finally:
        pipeline.close()
    assert sum(len(e["rows"]) for e in read_dead_letters(settings.spool_dir)) == count
    return settings


def _count(settings: StoreSettings) -> tuple[int, int]:
    s = open_store(settings.url, settings)
    try:
        s.ensure_schema()
        rows, distinct = s.query("SELECT count(), uniqExact(nonce) FROM mining.shares").split()
        agg = int(s.query("SELECT sum(share_count) FROM mining.mv_hash_rate_stats"))
    finally:
        s.close()
    assert agg == int(rows), "the aggregate counts each replayed row once"
    return int(rows), int(distinct)


def _replay(settings: StoreSettings) -> dict[str, object]:
    s = open_store(settings.url, settings)
    try:
        s.ensure_schema()
        return replay_dead_letters(settings.spool_dir, s, now=1_800_000_000.0)
    finally:
        s.close()


def test_dead_letters_replay_once(tmp_path: Path) -> None:
    settings = _dead_letter_batches(tmp_path, 450)
    spool = settings.spool_dir
    batches = len(read_dead_letters(spool))
    with open(spool / DEADLETTER_FILE, "ab") as f:
        f.write(b"{not json\n")
    status = spool_status(spool)
    assert status["dead_letter_rows"] == 450
    report = _replay(settings)
    assert report["rows_replayed"] == 450 and report["batches_replayed"] == batches
    assert report["malformed_lines"] == 1 and report["batches_failed"] == 0
    assert _count(settings) == (450, 450)
    # Moved aside, private; the damaged line stays in the dead-letter file.
    archived = spool / f"{DEADLETTER_FILE}.replayed-20270115T080000Z"
    assert archived.exists() and stat.S_IMODE(os.stat(archived).st_mode) == 0o600
    assert (spool / DEADLETTER_FILE).read_bytes() == b"{not json\n"
    assert stat.S_IMODE(os.stat(spool / DEADLETTER_FILE).st_mode) == 0o600
    # Replayed again (the archive put back by hand): the tokens dedup every batch.
    os.replace(archived, spool / DEADLETTER_FILE)
    again = _replay(settings)
    assert again["rows_replayed"] == 450
    assert _count(settings) == (450, 450)
    # Nothing left: a third run has nothing to do and changes nothing.
    os.replace(archived, tmp_path / "kept")
    empty = _replay(settings)
    assert empty["batches_replayed"] == 0 and empty["rows_replayed"] == 0
    assert _count(settings) == (450, 450)


def test_a_batch_failing_again_stays_dead_lettered(tmp_path: Path) -> None:
    settings = _dead_letter_batches(tmp_path, 250)
    spool = settings.spool_dir
    lines = (spool / DEADLETTER_FILE).read_bytes().splitlines(keepends=True)
    # Damage one batch so that the store refuses it again (a UInt32 out of range).
    entry = orjson.loads(lines[0])
    entry["rows"][0][entry["columns"].index("channel_id")] = -1
    bad_rows = len(entry["rows"])
    (spool / DEADLETTER_FILE).write_bytes(orjson.dumps(entry) + b"\n" + b"".join(lines[1:]))
    report = _replay(settings)
    assert report["batches_failed"] == 1 and report["rows_failed"] == bad_rows
    assert report["rows_replayed"] == 250 - bad_rows
    assert _count(settings)[0] == 250 - bad_rows
    left = read_dead_letters(spool)
    assert len(left) == 1 and left[0]["token"] == entry["token"]
    assert left[0]["rows"] == entry["rows"] and "UInt32" in left[0]["error"]


def test_replay_needs_the_spool_lock(tmp_path: Path) -> None:
    settings = _dead_letter_batches(tmp_path, 10)
    fd = lock_directory(settings.spool_dir)
    try:
        with pytest.raises(StoreBusyError):
            _replay(settings)
    finally:
        unlock_directory(fd)
    assert _count(settings) == (0, 0)


def test_replay_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from stratum_proxy.cli import EXIT_ERROR, EXIT_OK, main

    settings = _dead_letter_batches(tmp_path, 120)
    argv = ["spool", "replay-deadletter", "--spool-dir", str(settings.spool_dir)]
    argv += ["--store", settings.url]
    assert main(argv) == EXIT_OK
    out = capsys.readouterr().out
    assert "replayed 120 rows" in out and "deadletter.jsonl.replayed-" in out
    assert _count(settings) == (120, 120)
    assert main(["spool", "status", "--spool-dir", str(settings.spool_dir)]) == EXIT_OK
    status = orjson.loads(capsys.readouterr().out)
    assert status["dead_letter_rows"] == 0 and status["dead_letter_batches"] == 0
    # A batch refused again makes the command fail, saying how many are left.
    bad = synthetic_record(1)._replace(channel_id=-1)
    entry = {"token": "t-1", "columns": list(bad._fields), "rows": [list(bad)]}
    (settings.spool_dir / DEADLETTER_FILE).write_bytes(orjson.dumps(entry) + b"\n")
    assert main(argv) == EXIT_ERROR
    assert "1 batches (1 rows) are still dead-lettered" in capsys.readouterr().err


def test_a_table_dropped_while_running_is_rebuilt_and_no_row_is_dead_lettered(
    tmp_path: Path,
) -> None:
    """``DROP TABLE mining.shares`` under a running pipeline: the next insert finds the
    table missing, the writer recreates the schema and resends the same batch."""
    settings = StoreSettings(
        url=f"chdb://{tmp_path}/db",
        spool_dir=tmp_path / "spool",
        batch_rows=50,
        linger_s=0.02,
        shutdown_timeout_s=5.0,
    )
    pipeline = SharePipeline(settings, proxy_id="t")
    pipeline.start()
    try:
        for i in range(50):
            pipeline.put(synthetic_record(i))
        deadline = time.monotonic() + 20
        while pipeline.statistics()["rows_written"] < 50:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        pipeline.query("DROP TABLE mining.shares")  # on the writer's own connection
        for i in range(50, 120):
            pipeline.put(synthetic_record(i))
        while pipeline.statistics()["rows_written"] < 120:
            assert pipeline.statistics()["rows_dead_lettered"] == 0
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        pipeline.close()
    assert not (settings.spool_dir / DEADLETTER_FILE).exists()
    s = open_store(settings.url, settings)
    try:
        rows, distinct = s.query("SELECT count(), uniqExact(nonce) FROM mining.shares").split()
        aggregated = int(s.query("SELECT sum(share_count) FROM mining.mv_hash_rate_stats"))
    finally:
        s.close()
    assert int(rows) == int(distinct) == 70  # the rows written after the drop, each once
    assert aggregated == 120  # the aggregate was not dropped: it has them all
