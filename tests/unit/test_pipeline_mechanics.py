"""Queue/spool/writer mechanics with an in-memory store double (no rows are claimed stored).

The double only records the batches handed to it; tests that claim rows reach
ClickHouse live in tests/integration and use the real embedded engine.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from stratum_proxy.errors import StoreBusyError, StoreError
from stratum_proxy.store.faults import synthetic_record
from stratum_proxy.store.pipeline import SharePipeline
from stratum_proxy.store.record import ShareRecord
from stratum_proxy.store.settings import StoreSettings, resolve_spool_dir


class BatchLog:
    """Remembers (token, nonces) of every batch; fails while ``failing``."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[str]]] = []
        self.failing = False
        self.opened = 0

    def ensure_schema(self) -> None:
        self.opened += 1

    def insert(self, batch: tuple[str, list[str]]) -> None:
        if self.failing:
            raise StoreError("down", retryable=True)
        self.batches.append(batch)

    def query(self, sql: str) -> bytes:
        return sql.upper().encode()

    def close(self) -> None:
        pass


def encode(records: Sequence[ShareRecord], token: str) -> tuple[str, list[str]]:
    return token, [r.nonce for r in records]


def make(tmp_path: Path, log: BatchLog, **overrides: Any) -> SharePipeline:
    values: dict[str, Any] = {
        "url": "chdb:///unused",
        "spool_dir": tmp_path,
        "batch_rows": 100,
        "linger_s": 0.02,
        "fsync_interval_s": 0.02,
        "retry_initial_s": 0.01,
        "retry_max_s": 0.02,
    }
    values.update(overrides)
    return SharePipeline(
        StoreSettings(**values), proxy_id="p", store_factory=lambda: log, encode=encode
    )


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def delivered(log: BatchLog) -> list[int]:
    return [int(n, 16) for _, nonces in log.batches for n in nonces]


def test_spill_and_catch_up_keep_order_and_tokens_contiguous(tmp_path: Path) -> None:
    log = BatchLog()
    log.failing = True
    pipeline = make(tmp_path, log, queue_size=50)
    pipeline.start()
    for i in range(1000):
        pipeline.put(synthetic_record(i))
    assert pipeline.statistics()["spill"] == 1
    log.failing = False
    wait_for(lambda: len(delivered(log)) == 1000)
    wait_for(lambda: pipeline.statistics()["spill"] == 0)  # caught up: the queue again
    for i in range(1000, 1040):
        pipeline.put(synthetic_record(i))
    assert pipeline.statistics()["spill"] == 0
    wait_for(lambda: len(delivered(log)) == 1040)
    pipeline.close()
    assert delivered(log) == list(range(1040))
    ranges = [tuple(int(x) for x in token.split(":")[1:]) for token, _ in log.batches]
    for (_, last), (first, _) in itertools.pairwise(ranges):
        assert first == last + 1
    assert all(token.startswith("p:") for token, _ in log.batches)


def test_seqs_keep_increasing_across_restarts_even_without_the_spool(tmp_path: Path) -> None:
    log = BatchLog()
    first = make(tmp_path / "a", log)
    first.start()
    first.put(synthetic_record(1))
    first.close()
    high = int(first.statistics()["next_seq"] or 0)
    second = make(tmp_path / "b", log)  # a fresh, empty spool directory
    second.start()
    assert int(second.statistics()["next_seq"] or 0) > high - 1
    second.close()
    third = make(tmp_path / "a", log)
    third.start()
    assert int(third.statistics()["next_seq"] or 0) >= high
    third.close()


def test_put_after_close_is_counted_not_raised(tmp_path: Path) -> None:
    pipeline = make(tmp_path, BatchLog())
    pipeline.start()
    pipeline.close()
    pipeline.put(synthetic_record(1))
    assert pipeline.statistics()["rows_shed"] == 1


def test_queries_run_on_the_writer_thread(tmp_path: Path) -> None:
    pipeline = make(tmp_path, BatchLog())
    pipeline.start()
    assert pipeline.query("select 1") == b"SELECT 1"
    pipeline.close()
    with pytest.raises(StoreError, match="not running"):
        pipeline.query("select 1")


def test_store_that_cannot_open_is_retried_and_queries_say_why(tmp_path: Path) -> None:
    attempts: list[int] = []
    log = BatchLog()

    def factory() -> BatchLog:
        attempts.append(1)
        if len(attempts) < 3:
            raise StoreError("connection refused", retryable=True)
        return log

    pipeline = SharePipeline(
        StoreSettings(
            url="chdb:///unused", spool_dir=tmp_path, retry_initial_s=0.05, linger_s=0.02
        ),
        proxy_id="p",
        store_factory=factory,
        encode=encode,
    )
    pipeline.start()
    with pytest.raises(StoreError, match=r"not open yet.*connection refused"):
        pipeline.query("select 1", timeout_s=1)
    pipeline.put(synthetic_record(5))
    wait_for(lambda: delivered(log) == [5])
    pipeline.close()
    assert len(attempts) == 3


def test_second_pipeline_on_one_spool_is_refused(tmp_path: Path) -> None:
    first = make(tmp_path, BatchLog())
    first.start()
    with pytest.raises(StoreBusyError):
        make(tmp_path, BatchLog()).start()
    first.close()


def test_spool_dir_defaults_next_to_the_embedded_data() -> None:
    assert resolve_spool_dir(StoreSettings(url="chdb:///var/lib/sp/db")) == Path(
        "/var/lib/sp/spool"
    )
    assert resolve_spool_dir(StoreSettings(url="clickhouse://u@h:9000/mining")) == Path(
        "data/spool"
    )
    assert resolve_spool_dir(StoreSettings(spool_dir=Path("/x"))) == Path("/x")


def test_queued_rows_leave_the_collectors_view(tmp_path: Path) -> None:
    # A ShareRecord (a tuple subclass) is never untracked by the cyclic GC;
    # queued rows must be, or every collection walks the whole queue.
    import gc

    pipeline = make(tmp_path, BatchLog())
    pipeline.put(synthetic_record(1, ts=1.0))  # not started: the row waits in memory
    gc.collect()  # untracks the row's values...
    gc.collect()  # ...and then the (seq, values) pair that holds them
    queued, pending = pipeline.handoff.queue[0], pipeline.handoff._pending[0]
    assert not gc.is_tracked(queued) and not gc.is_tracked(pending)
    assert ShareRecord._make(queued[1]) == synthetic_record(1, ts=1.0)


def test_flusher_writes_between_fsyncs_in_small_steps(tmp_path: Path) -> None:
    # A long fsync interval: rows still reach the segment file within a few
    # write ticks (small steady writes, not one burst per interval), but they
    # only count as durable at the next fsync.
    log = BatchLog()
    log.failing = True  # rows stay in the spool
    pipeline = make(tmp_path, log, fsync_interval_s=30.0)
    pipeline.start()
    try:
        first = pipeline.spool.durable_seq
        for i in range(100):
            pipeline.put(synthetic_record(i))
        wait_for(lambda: not pipeline.handoff.buffered(), timeout=2.0)
        assert pipeline.spool.written_seq > first
        assert pipeline.spool.durable_seq == first
        assert pipeline.spool.bytes_on_disk > 0
    finally:
        pipeline.close(timeout_s=0.5)
    assert pipeline.spool.durable_seq == pipeline.spool.written_seq
