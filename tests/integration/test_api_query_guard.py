"""API queries on the real embedded engine: reads of mining.* run, everything else is refused.

Each attack from the issue is tried against a store holding real rows; after
every one the table, its rows and the file system are checked unchanged.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from helpers.store_rows import rec

from stratum_proxy.errors import QueryBusy, QueryInvalid, QueryRefused, QueryTimeout
from stratum_proxy.logging import get_logger
from stratum_proxy.settings import ApiSettings
from stratum_proxy.store.backend import encode_batch, open_store
from stratum_proxy.store.chdb_store import ChdbStore
from stratum_proxy.store.query_runner import QueryRunner
from stratum_proxy.store.settings import StoreSettings

ROWS = 50


@pytest.fixture
def filled(tmp_path: Path) -> Iterator[ChdbStore]:
    store = open_store(f"chdb://{tmp_path / 'db'}", StoreSettings())
    assert isinstance(store, ChdbStore)
    try:
        store.ensure_schema()
        yield _fill(store)
    finally:
        store.close()


def _fill(store: ChdbStore) -> ChdbStore:
    records = [rec(worker=f"rig{i % 5}", nonce=f"{i:08x}") for i in range(ROWS)]
    store.insert(encode_batch(records, "t:1:50"))
    return store


def _runner(store: ChdbStore, **api: Any) -> QueryRunner:
    settings = ApiSettings(**api)
    return QueryRunner(store.url, StoreSettings(url=store.url), settings, get_logger())


def _count(store: ChdbStore) -> int:
    return int(store.query("SELECT count() FROM mining.shares"))


ATTACKS = {
    "file table function": "SELECT * FROM file('/etc/passwd', 'LineAsString')",
    "file function": "SELECT file('/etc/hostname')",
    "url": "SELECT * FROM url('http://127.0.0.1:1/x', 'CSV', 'a String')",
    "remote": "SELECT * FROM remote('127.0.0.1:1', 'mining', 'shares')",
    "s3": "SELECT * FROM s3('http://127.0.0.1:1/b/k.csv')",
    "executable": "SELECT * FROM executable('id', 'TSV', 'a String')",
    "table function in a subquery": (
        "SELECT count() FROM mining.shares WHERE worker IN "
        "(SELECT * FROM file('/etc/passwd', 'LineAsString'))"
    ),
    "table function joined": (
        "SELECT * FROM mining.shares AS s JOIN url('http://127.0.0.1:1/', 'CSV', 'a String') "
        "AS u ON 1"
    ),
    "drop": "DROP TABLE mining.shares",
    "truncate": "TRUNCATE TABLE mining.shares",
    "alter delete": "ALTER TABLE mining.shares DELETE WHERE worker = 'rig1'",
    "delete": "DELETE FROM mining.shares WHERE worker = 'rig1'",
    "insert": "INSERT INTO mining.shares (worker, pool_difficulty) VALUES ('forged', 1e9)",
    "insert into function": "INSERT INTO FUNCTION file('/tmp/sp_pwned', 'TSV') SELECT 1",
    "create": "CREATE TABLE mining.x (a UInt8) ENGINE = Memory",
    "system": "SYSTEM DROP MARK CACHE",
    "kill": "KILL QUERY WHERE 1",
    "set": "SET readonly = 0",
    "set then drop": "SET readonly=0; DROP TABLE mining.shares",
    "select then drop": "SELECT 1; DROP TABLE mining.shares",
    "settings clause": "SELECT count() FROM mining.shares SETTINGS max_execution_time = 1000",
    "into outfile": "SELECT * FROM mining.shares INTO OUTFILE '{outfile}'",
    "system table": "SELECT * FROM system.processes",
    "system table in IN": "SELECT count() FROM mining.shares WHERE 1 IN system.one",
    "other database": "SELECT * FROM default.anything",
    "dictionary": "SELECT dictGet('d', 'a', toUInt64(1))",
    "explain": "EXPLAIN SELECT 1",
    "optimize": "OPTIMIZE TABLE mining.shares FINAL",
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
async def test_attack_is_refused_and_changes_nothing(
    filled: ChdbStore, tmp_path: Path, name: str
) -> None:
    outfile = tmp_path / "out.tsv"
    runner = _runner(filled)
    try:
        with pytest.raises(QueryRefused) as refused:
            await runner.run(ATTACKS[name].format(outfile=outfile))
    finally:
        assert runner.close(wait_s=10)
    assert str(refused.value)  # the reason is said
    assert _count(filled) == ROWS
    assert b"shares" in filled.query("SHOW TABLES FROM mining")
    assert not outfile.exists()
    assert not Path("/tmp/sp_pwned").exists()
    assert not filled.query("SELECT 1 FROM mining.shares WHERE worker = 'forged'")


READS = {
    "count": ("SELECT count() FROM mining.shares", b"50\n"),
    "unqualified": ("SELECT count() FROM shares", b"50\n"),
    "cte": ("WITH w AS (SELECT worker FROM mining.shares) SELECT count() FROM w", b"50\n"),
    "union": (
        "SELECT count() FROM mining.shares UNION ALL SELECT count() FROM shares",
        b"50\n50\n",
    ),
    "join": (
        "SELECT count() FROM mining.shares AS a "
        "JOIN (SELECT DISTINCT worker FROM mining.shares) AS b USING (worker)",
        b"50\n",
    ),
    "in subquery": (
        "SELECT count() FROM shares WHERE worker IN (SELECT worker FROM shares WHERE 1)",
        b"50\n",
    ),
    "format": (
        "SELECT worker, count() AS n FROM mining.shares GROUP BY worker ORDER BY worker "
        "LIMIT 1 FORMAT JSONEachRow",
        b'{"worker":"rig0","n":10}\n',
    ),
    "numbers": ("SELECT sum(number) FROM numbers(10)", b"45\n"),
    "aggregate view": ("SELECT count() >= 1 FROM mining.mv_hash_rate_stats", b"1\n"),
}


@pytest.mark.parametrize("name", sorted(READS))
async def test_reads_of_the_projects_tables_run(filled: ChdbStore, name: str) -> None:
    sql, expected = READS[name]
    runner = _runner(filled)
    try:
        assert await runner.run(sql) == expected
    finally:
        assert runner.close(wait_s=10)


async def test_describe_and_show_tables(filled: ChdbStore) -> None:
    runner = _runner(filled)
    try:
        assert b"share_difficulty\tFloat64" in await runner.run("DESCRIBE TABLE mining.shares")
        assert b"shares" in await runner.run("SHOW TABLES")
        with pytest.raises(QueryRefused):
            await runner.run("SHOW TABLES FROM system")
        with pytest.raises(QueryRefused):
            await runner.run("DESCRIBE TABLE system.processes")
    finally:
        assert runner.close(wait_s=10)


async def test_bad_sql_gets_the_engines_message(filled: ChdbStore) -> None:
    runner = _runner(filled)
    try:
        with pytest.raises(QueryInvalid, match="Syntax error"):
            await runner.run("SELEC count() FROM mining.shares")
        with pytest.raises(QueryInvalid, match=r"UNKNOWN_IDENTIFIER|Unknown expression"):
            await runner.run("SELECT no_such_column FROM mining.shares")
        with pytest.raises(QueryRefused, match="empty"):
            await runner.run("   ")
    finally:
        assert runner.close(wait_s=10)


async def test_result_rows_and_memory_are_limited(filled: ChdbStore) -> None:
    runner = _runner(filled, query_max_result_rows=10, query_max_memory_bytes=32 * 1024 * 1024)
    try:
        with pytest.raises(QueryInvalid, match="TOO_MANY_ROWS_OR_BYTES"):
            await runner.run("SELECT * FROM mining.shares")
        with pytest.raises(QueryInvalid, match="MEMORY_LIMIT_EXCEEDED"):
            await runner.run("SELECT length(groupArray(number)) FROM numbers(100000000)")
        assert await runner.run("SELECT count() FROM mining.shares") == b"50\n"
    finally:
        assert runner.close(wait_s=10)


HEAVY = "SELECT count() FROM numbers(100000000000) WHERE sipHash64(number) % 7 = 0"


async def test_a_long_query_is_cancelled_and_rows_keep_being_written(filled: ChdbStore) -> None:
    """The heavy query runs on its own connection: the writer's inserts go on meanwhile."""
    runner = _runner(filled, query_timeout_s=1.5)
    inserted: list[float] = []
    query_done = threading.Event()

    def writer() -> None:  # what the share writer does, on the writer's own connection
        n = 0
        while not query_done.is_set() and n < 200:
            n += 1
            filled.insert(encode_batch([rec(worker="live", nonce=f"{n:08x}")], f"live:{n}:{n}"))
            inserted.append(time.monotonic())
            time.sleep(0.05)

    thread = threading.Thread(target=writer)
    try:
        started = time.monotonic()
        task = asyncio.ensure_future(runner.run(HEAVY))
        await asyncio.sleep(0.2)
        thread.start()
        with pytest.raises(QueryTimeout, match=r"TIMEOUT_EXCEEDED|did not finish"):
            await task
        finished = time.monotonic()
    finally:
        query_done.set()
        thread.join()
        assert runner.close(wait_s=10)
    assert finished - started < 1.5 + 5  # cancelled by the engine, not left running
    during = [t for t in inserted if t < finished]
    assert len(during) >= 5, "the writer was held up by the query"
    assert int(filled.query("SELECT count() FROM mining.shares WHERE worker = 'live'")) == len(
        inserted
    )


async def test_every_slot_busy_answers_busy_at_once(filled: ChdbStore) -> None:
    runner = _runner(filled, query_timeout_s=1.5, max_concurrent_queries=1)
    try:
        heavy = asyncio.ensure_future(runner.run(HEAVY))
        await asyncio.sleep(0.2)
        with pytest.raises(QueryBusy, match="slots are busy"):
            await runner.run("SELECT 1")
        with pytest.raises(QueryTimeout):
            await heavy
        assert await runner.run("SELECT 1") == b"1\n"  # the slot is free again
    finally:
        assert runner.close(wait_s=10)


async def test_store_not_open_and_closed_runner_are_busy(filled: ChdbStore) -> None:
    runner = _runner(filled)
    runner.attach(lambda: False)
    with pytest.raises(QueryBusy, match="not open"):
        await runner.run("SELECT 1")
    runner.attach(lambda: True)
    assert runner.close(wait_s=10)
    with pytest.raises(QueryBusy, match="stopping"):
        await runner.run("SELECT 1")


async def test_close_cancels_a_running_query(filled: ChdbStore) -> None:
    runner = _runner(filled, query_timeout_s=60)
    task = asyncio.ensure_future(runner.run(HEAVY))
    await asyncio.sleep(0.3)
    started = time.monotonic()
    assert runner.close(wait_s=5)  # the running query was cancelled in the engine
    assert time.monotonic() - started < 3
    with pytest.raises(QueryTimeout, match="QUERY_WAS_CANCELLED"):
        await task


async def test_cleanup_runs_through_the_runner(filled: ChdbStore) -> None:
    old = [rec(ts=time.time() - 3 * 86400, nonce=f"{i:08x}") for i in range(3)]
    filled.insert(encode_batch(old, "old:1:3"))
    runner = _runner(filled)
    try:
        # Rows three days old go; the fresh ones stay.
        assert await runner.cleanup(2) == 3
        assert _count(filled) == ROWS
        # The read-only connection still refuses the same kind of statement.
        with pytest.raises(QueryRefused):
            await runner.run("ALTER TABLE mining.shares DELETE WHERE 1")
    finally:
        assert runner.close(wait_s=10)


def test_limit_settings_end_with_readonly() -> None:
    from stratum_proxy.store.query_runner import limit_settings

    settings = limit_settings(SimpleNamespace(**ApiSettings().model_dump()), "mining")
    assert list(settings)[-1] == "readonly" and settings["readonly"] == 1
    assert orjson.dumps(settings)  # plain values only


async def test_the_stats_reports_sql_passes_the_guard(filled: ChdbStore) -> None:
    """``stratum-proxy stats`` goes through /api/query when the daemon holds the store."""
    from stratum_proxy.store.reports import worker_stats

    seen: list[str] = []

    class Recording:
        def query(self, sql: str) -> bytes:
            seen.append(sql)
            return filled.query(sql)

    rows = worker_stats(Recording(), 24, time.time())
    assert sum(r.shares for r in rows) == ROWS
    runner = _runner(filled)
    try:
        for sql in seen:
            assert await runner.run(sql) == filled.query(sql)
    finally:
        assert runner.close(wait_s=10)
