"""Fault drills over the real embedded engine: every row is in the store or counted."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stratum_proxy.store.backend import open_store
from stratum_proxy.store.deadletter import read_dead_letters
from stratum_proxy.store.faults import (
    BUG,
    FATAL,
    HANG,
    OK,
    RETRYABLE,
    FaultyStore,
    synthetic_record,
)
from stratum_proxy.store.pipeline import SharePipeline
from stratum_proxy.store.settings import StoreSettings
from stratum_proxy.store.spool_admin import drain_spool, spool_status
from stratum_proxy.store.spool_format import CHUNK_HEADER_SIZE, FILE_HEADER, parse_records

pytest.importorskip("chdb")


def make_settings(tmp_path: Path, **overrides: Any) -> StoreSettings:
    values: dict[str, Any] = {
        "url": f"chdb://{tmp_path}/db",
        "spool_dir": tmp_path / "spool",
        "batch_rows": 500,
        "linger_s": 0.05,
        "fsync_interval_s": 0.05,
        "retry_initial_s": 0.02,
        "retry_max_s": 0.1,
        "shutdown_timeout_s": 5.0,
    }
    values.update(overrides)
    return StoreSettings(**values)


def faulty_factory(
    settings: StoreSettings, mode: str, holder: list[FaultyStore]
) -> Callable[[], Any]:
    def factory() -> FaultyStore:
        store = FaultyStore(open_store(settings.url, settings), mode)
        holder.append(store)
        return store

    return factory


def store_counts(settings: StoreSettings) -> tuple[int, int]:
    """(rows, distinct nonces) in mining.shares, read with a fresh store handle."""
    store = open_store(settings.url, settings)
    try:
        out = store.query("SELECT count(), uniqExact(nonce) FROM mining.shares")
    finally:
        store.close()
    rows, distinct = out.decode().split()
    return int(rows), int(distinct)


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def put_rows(pipeline: SharePipeline, start: int, count: int) -> list[float]:
    """Put rows; returns each put's duration in seconds."""
    durations = []
    for i in range(start, start + count):
        t0 = time.perf_counter()
        pipeline.put(synthetic_record(i))
        durations.append(time.perf_counter() - t0)
    return durations


def assert_never_waited(durations: list[float]) -> None:
    """put never waits on the store: a put that did would wait out every retry or hang.

    A loaded machine may preempt a few single puts for some milliseconds; a put
    waiting on the failing store would make the bulk of them slow instead.
    """
    ordered = sorted(durations)
    assert ordered[int(len(ordered) * 0.99)] < 0.001
    assert ordered[-1] < 0.5


def test_rows_reach_the_store_exactly(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    pipeline = SharePipeline(settings, proxy_id="t")
    pipeline.start()
    put_rows(pipeline, 0, 2000)
    wait_for(lambda: pipeline.statistics()["rows_written"] == 2000)
    out = pipeline.query(
        "SELECT worker, nonce, share_difficulty, response_ms, status FROM mining.shares "
        "WHERE nonce = '000003e9' FORMAT JSONEachRow"
    )
    row = json.loads(out)
    expected = synthetic_record(1001)
    assert row["worker"] == expected.worker
    assert row["share_difficulty"] == expected.share_difficulty
    assert row["status"] == expected.status
    pipeline.close()
    assert store_counts(settings) == (2000, 2000)
    assert spool_status(settings.spool_dir or tmp_path)["segments"] == 0


def test_retryable_errors_are_retried_and_nothing_is_doubled(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, queue_size=300)
    stores: list[FaultyStore] = []
    pipeline = SharePipeline(
        settings, proxy_id="t", store_factory=faulty_factory(settings, RETRYABLE, stores)
    )
    pipeline.start()
    wait_for(lambda: pipeline.statistics()["store_up"] == 1)  # opened; inserts will fail
    durations = put_rows(pipeline, 0, 3000)  # ten times the queue: most rows go to the spool
    wait_for(lambda: int(pipeline.statistics()["retries"] or 0) >= 3)
    stats = pipeline.statistics()
    assert stats["store_up"] == 0 and stats["rows_written"] == 0
    assert stats["spill"] == 1 and stats["rows_shed"] == 0
    stores[0].mode = OK
    wait_for(lambda: pipeline.statistics()["rows_written"] == 3000)
    pipeline.close()
    assert store_counts(settings) == (3000, 3000)
    assert_never_waited(durations)  # the event loop never waited on the failing store


def test_non_retryable_errors_go_to_the_dead_letter_file(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    stores: list[FaultyStore] = []
    pipeline = SharePipeline(
        settings, proxy_id="t", store_factory=faulty_factory(settings, FATAL, stores)
    )
    pipeline.start()
    put_rows(pipeline, 0, 700)
    wait_for(lambda: pipeline.statistics()["rows_dead_lettered"] == 700)
    stores[0].mode = OK
    put_rows(pipeline, 700, 300)
    wait_for(lambda: pipeline.statistics()["rows_written"] == 300)
    pipeline.close()
    letters = read_dead_letters(settings.spool_dir or tmp_path)
    dead = [row for entry in letters for row in entry["rows"]]
    assert {row[entry_index("nonce")] for row in dead} == {f"{i:08x}" for i in range(700)}
    assert all("NO_SUCH_COLUMN" in entry["error"] for entry in letters)
    rows, _ = store_counts(settings)
    assert rows + len(dead) == 1000


def test_an_unexpected_exception_is_retried_a_little_then_dead_lettered(tmp_path: Path) -> None:
    """A bug in a store (a TypeError) must not hold every later row back for ever."""
    settings = make_settings(tmp_path)
    stores: list[FaultyStore] = []
    pipeline = SharePipeline(
        settings, proxy_id="t", store_factory=faulty_factory(settings, BUG, stores)
    )
    pipeline.start()
    put_rows(pipeline, 0, 200)
    wait_for(lambda: pipeline.statistics()["rows_dead_lettered"] == 200)
    assert stores[0].attempts == 4  # the first try and three more
    stores[0].mode = OK
    put_rows(pipeline, 200, 100)
    wait_for(lambda: pipeline.statistics()["rows_written"] == 100)
    pipeline.close()
    (entry,) = read_dead_letters(settings.spool_dir or tmp_path)
    assert "unexpected TypeError" in entry["error"] and len(entry["rows"]) == 200
    assert store_counts(settings) == (100, 100)


def test_an_unexpected_exception_that_passes_costs_nothing(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    stores: list[FaultyStore] = []
    pipeline = SharePipeline(
        settings, proxy_id="t", store_factory=faulty_factory(settings, OK, stores)
    )
    pipeline.start()
    wait_for(lambda: bool(stores))
    stores[0].mode = BUG
    put_rows(pipeline, 0, 50)
    wait_for(lambda: stores[0].attempts >= 1)
    stores[0].mode = OK  # a fluke: the next try goes through
    wait_for(lambda: pipeline.statistics()["rows_written"] == 50)
    pipeline.close()
    assert read_dead_letters(settings.spool_dir or tmp_path) == []
    assert store_counts(settings) == (50, 50)


def entry_index(column: str) -> int:
    from stratum_proxy.store.record import COLUMNS

    return COLUMNS.index(column)


def test_hanging_store_does_not_block_put_or_close(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, queue_size=200)
    stores: list[FaultyStore] = []
    pipeline = SharePipeline(
        settings, proxy_id="t", store_factory=faulty_factory(settings, HANG, stores)
    )
    pipeline.start()
    put_rows(pipeline, 0, 100)
    wait_for(lambda: pipeline.statistics()["insert_running_s"] is not None)
    durations = put_rows(pipeline, 100, 1400)
    with pytest.raises(Exception, match="timed out"):
        pipeline.query("SELECT 1", timeout_s=0.2)
    t0 = time.monotonic()
    pipeline.close(timeout_s=0.5)
    assert time.monotonic() - t0 < 2.0
    assert_never_waited(durations)
    assert pipeline.statistics()["rows_shed"] == 0
    # The hung insert finishes late (as a stuck server eventually would); the
    # engine must be released before the next pipeline opens it.
    stores[0].release()
    wait_for(lambda: not stores[0].inner._session, timeout=5)
    restarted = SharePipeline(settings, proxy_id="t")
    restarted.start()
    wait_for(
        lambda: (
            restarted.statistics()["spool_rows"] == 0 and restarted.statistics()["queue_depth"] == 0
        )
    )
    restarted.close()
    assert store_counts(settings) == (1500, 1500)


def test_disk_cap_sheds_and_counts(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, queue_size=100, spool_max_bytes=1024 * 1024)
    stores: list[FaultyStore] = []
    pipeline = SharePipeline(
        settings, proxy_id="t", store_factory=faulty_factory(settings, RETRYABLE, stores)
    )
    pipeline.start()
    total = 8000  # about 2.5 MB of spool at ~330 bytes a row: well past the 1 MiB cap
    for start in range(0, total, 1000):
        put_rows(pipeline, start, 1000)
        time.sleep(0.06)  # let the flusher see the cap
    pipeline.close(timeout_s=2.0)
    shed = int(pipeline.statistics()["rows_shed"] or 0)
    assert shed > 0
    assert spool_status(settings.spool_dir or tmp_path)["bytes"] <= 1024 * 1024
    restarted = SharePipeline(settings, proxy_id="t")
    restarted.start()
    wait_for(
        lambda: (
            restarted.statistics()["spool_rows"] == 0 and restarted.statistics()["queue_depth"] == 0
        )
    )
    restarted.close()
    rows, distinct = store_counts(settings)
    assert rows == distinct
    assert rows + shed == total


def test_corrupt_segment_is_skipped_and_counted(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, spool_segment_bytes=64 * 1024)
    stores: list[FaultyStore] = []
    pipeline = SharePipeline(
        settings, proxy_id="t", store_factory=faulty_factory(settings, RETRYABLE, stores)
    )
    pipeline.start()
    put_rows(pipeline, 0, 2000)
    pipeline.close(timeout_s=2.0)
    spool_dir = settings.spool_dir or tmp_path
    segments = sorted(spool_dir.glob("seg-*.spool"))
    assert len(segments) >= 3
    expected = 0
    for victim in segments[1:3]:  # damage inside the first record (chunk) of two segments
        data = bytearray(victim.read_bytes())
        chunks = parse_records(bytes(data), len(FILE_HEADER))
        assert chunks.records and not chunks.corruptions
        offset = len(FILE_HEADER) + CHUNK_HEADER_SIZE + 10
        data[offset] ^= 0xFF
        data[offset + 1] ^= 0xFF
        expected += chunks.records[0].rows
        victim.write_bytes(bytes(data))
    status = spool_status(spool_dir)
    assert status["corrupt_records"] == 2
    restarted = SharePipeline(settings, proxy_id="t")
    restarted.start()
    wait_for(
        lambda: (
            restarted.statistics()["spool_rows"] == 0 and restarted.statistics()["queue_depth"] == 0
        )
    )
    lost = int(restarted.statistics()["rows_corrupt"] or 0)
    restarted.close()
    rows, distinct = store_counts(settings)
    assert lost == status["rows_corrupt"] == expected
    assert rows == distinct == 2000 - lost


def test_drain_into_another_store_is_idempotent(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    stores: list[FaultyStore] = []
    pipeline = SharePipeline(
        settings, proxy_id="t", store_factory=faulty_factory(settings, RETRYABLE, stores)
    )
    pipeline.start()
    put_rows(pipeline, 0, 1234)
    pipeline.close(timeout_s=2.0)
    spool_dir = settings.spool_dir or tmp_path
    assert spool_status(spool_dir)["rows"] == 1234
    other = make_settings(tmp_path, url=f"chdb://{tmp_path}/other")
    target = open_store(other.url, other)
    try:
        assert drain_spool(spool_dir, target, batch_rows=400) == 1234
        assert drain_spool(spool_dir, target, batch_rows=400) == 0
    finally:
        target.close()
    assert spool_status(spool_dir)["rows"] == 0
    assert store_counts(other) == (1234, 1234)
