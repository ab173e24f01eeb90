"""Benchmark of the share pipeline (not a test): prints what it measures.

    python scripts/bench_pipeline.py [--rows 300000]

1. rows/s into the embedded store through the whole pipeline (put -> writer -> chdb),
   and by the writer alone draining a backlog (target: >= 100,000 rows/s);
2. the writer's encoding cost per row: JSON rows (the fast path) and the
   RowBinary fallback;
3. rows/s the spool journals (encode, checksum, write, grouped fsync);
4. event-loop CPU per put: time.thread_time() around a tight put loop, minus the
   same loop without the put (target: <= 5 us per put);
5. miner round-trip p99 over loopback while the store hangs, next to a baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stratum_proxy.store.backend import JSON_ROWS, encode_batch, encode_row_binary, open_store
from stratum_proxy.store.faults import HANG, RETRYABLE, FaultyStore, synthetic_record
from stratum_proxy.store.pipeline import SharePipeline
from stratum_proxy.store.settings import StoreSettings
from stratum_proxy.store.spool import Spool


def settings_for(tmp: Path, **kw: object) -> StoreSettings:
    base: dict[str, object] = {"url": f"chdb://{tmp}/db", "spool_dir": tmp / "spool"}
    base.update(kw)
    return StoreSettings(**base)  # type: ignore[arg-type]


def wait_until(pipeline: SharePipeline, rows: int) -> None:
    while int(pipeline.statistics()["rows_written"] or 0) < rows:
        time.sleep(0.005)


def bench_store(rows: int, records: list) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        pipeline = SharePipeline(settings_for(Path(tmp), queue_size=rows), proxy_id="bench")
        pipeline.start()
        while not pipeline.statistics()["store_up"]:
            time.sleep(0.01)
        t0 = time.perf_counter()
        for i in range(rows):
            pipeline.put(records[i % len(records)])
        wait_until(pipeline, rows)
        elapsed = time.perf_counter() - t0
        pipeline.close()
    print(
        f"pipeline -> chdb:        {rows / elapsed:12,.0f} rows/s  ({rows} rows, {elapsed:.2f} s)"
    )


def bench_writer(rows: int, records: list) -> None:
    """The writer alone: rows wait (queued and journaled) while the store refuses, then go."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_for(Path(tmp), queue_size=rows, spool_buffer_rows=rows)
        stores: list[FaultyStore] = []

        def factory() -> FaultyStore:
            stores.append(FaultyStore(open_store(settings.url, settings), RETRYABLE))
            return stores[-1]

        pipeline = SharePipeline(settings, proxy_id="bench", store_factory=factory)
        pipeline.start()
        for i in range(rows):
            pipeline.put(records[i % len(records)])
        while pipeline.statistics()["spool_pending"]:
            time.sleep(0.01)
        t0 = time.perf_counter()
        stores[0].mode = "ok"
        wait_until(pipeline, rows)
        elapsed = time.perf_counter() - t0
        pipeline.close()
    print(f"writer alone -> chdb:    {rows / elapsed:12,.0f} rows/s  (backlog of {rows} rows)")


def bench_encode(rows: int, records: list) -> None:
    """Thread CPU per row of one batch's encoding, best of three (plain tuples, as queued)."""
    batch = [tuple(records[i % len(records)]) for i in range(rows)]
    costs = {}
    for name, encode in (("JSON rows", encode_batch), ("RowBinary", encode_row_binary)):
        best = float("inf")
        for _ in range(3):
            t0 = time.thread_time()
            encoded = encode(batch, "bench")
            best = min(best, time.thread_time() - t0)
        assert name == "RowBinary" or encoded.format == JSON_ROWS
        costs[name] = best / rows * 1e6
    print(
        f"encode per row:          {costs['JSON rows']:12.2f} us     "
        f"(RowBinary fallback {costs['RowBinary']:.2f} us)"
    )


def bench_spool(rows: int, records: list) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        spool = Spool(Path(tmp), segment_bytes=64 << 20, max_bytes=1 << 40)
        spool.open()
        t0 = time.perf_counter()
        for start in range(0, rows, 20_000):  # a grouped fsync every 20k rows
            items = [
                (i + 1, records[i % len(records)], False)
                for i in range(start, min(rows, start + 20_000))
            ]
            spool.write(items, sync=True)
        elapsed = time.perf_counter() - t0
        size = spool.bytes_on_disk
        spool.close()
    print(f"spool journal:           {rows / elapsed:12,.0f} rows/s  ({size / rows:.0f} bytes/row)")


def bench_put_cpu(rows: int, records: list) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_for(Path(tmp), queue_size=rows, spool_buffer_rows=rows)
        pipeline = SharePipeline(settings, proxy_id="bench")
        pipeline.start()
        n = len(records)
        t0 = time.thread_time()
        for i in range(rows):
            records[i % n]
        baseline = time.thread_time() - t0
        put = pipeline.put
        t0 = time.thread_time()
        for i in range(rows):
            put(records[i % n])
        with_put = time.thread_time() - t0
        pipeline.close(timeout_s=30)
    per_put = (with_put - baseline) / rows * 1e6
    print(f"event-loop CPU per put:  {per_put:12.2f} us     (target <= 5 us)")


async def _p99(pipeline: SharePipeline | None, count: int) -> float:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        i = 0
        while line := await reader.readline():
            if pipeline is not None:
                pipeline.put(synthetic_record(i))
                i += 1
            writer.write(line)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname()[:2])
    times = []
    for _ in range(count):
        t0 = time.perf_counter()
        writer.write(b'{"method":"mining.submit"}\n')
        await reader.readline()
        times.append(time.perf_counter() - t0)
    writer.close()
    await writer.wait_closed()
    await reader.read()  # the server's handler saw EOF and closed: nothing left to cancel
    server.close()
    await server.wait_closed()
    return sorted(times)[int(count * 0.99)]


def bench_round_trip(count: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = settings_for(Path(tmp), queue_size=1000)
        stores: list[FaultyStore] = []

        def factory() -> FaultyStore:
            stores.append(FaultyStore(open_store(settings.url, settings), HANG))
            return stores[-1]

        pipeline = SharePipeline(settings, proxy_id="bench", store_factory=factory)
        pipeline.start()
        while not pipeline.statistics()["store_up"]:
            time.sleep(0.01)
        baseline = asyncio.run(_p99(None, count))
        hung = asyncio.run(_p99(pipeline, count))
        pipeline.close(timeout_s=1)  # gives up on the hung writer ...
        stores[0].release()
        # ... which then inserts its batch: the engine and the directory are still its own.
        pipeline.wait_writer_done(30)
    print(f"round trip p99 baseline: {baseline * 1e3:12.3f} ms")
    print(f"round trip p99, store hung (spilling): {hung * 1e3:.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=300_000)
    args = parser.parse_args()
    records = [synthetic_record(i) for i in range(10_000)]
    bench_store(args.rows, records)
    bench_writer(args.rows, records)
    bench_encode(min(args.rows, 50_000), records)
    bench_spool(args.rows, records)
    bench_put_cpu(args.rows, records)
    bench_round_trip(5000)


if __name__ == "__main__":
    main()
