"""A miner's round trip over loopback does not get slower while the store hangs or fails."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from stratum_proxy.store.backend import open_store
from stratum_proxy.store.faults import HANG, RETRYABLE, FaultyStore, synthetic_record
from stratum_proxy.store.pipeline import SharePipeline
from stratum_proxy.store.settings import StoreSettings

pytest.importorskip("chdb")


async def round_trips(port: int, count: int) -> list[float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    times = []
    for i in range(count):
        t0 = time.perf_counter()
        writer.write(b'{"id":%d,"method":"mining.submit"}\n' % i)
        await reader.readline()
        times.append(time.perf_counter() - t0)
    writer.close()
    await writer.wait_closed()
    return sorted(times)


async def measure(pipeline: SharePipeline | None, count: int) -> float:
    """p99 round trip through a server that records a share per line (if given a pipeline)."""
    counter = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal counter
        while line := await reader.readline():
            if pipeline is not None:
                pipeline.put(synthetic_record(counter))
                counter += 1
            writer.write(line)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        times = await round_trips(port, count)
    finally:
        server.close()
        await server.wait_closed()
    return times[int(len(times) * 0.99)]


@pytest.mark.parametrize("mode", [HANG, RETRYABLE])
async def test_round_trip_unchanged_while_store_fails(tmp_path: Path, mode: str) -> None:
    settings = StoreSettings(
        url=f"chdb://{tmp_path}/db",
        spool_dir=tmp_path / "spool",
        queue_size=500,
        batch_rows=200,
        linger_s=0.02,
        fsync_interval_s=0.05,
        retry_initial_s=0.01,
        retry_max_s=0.05,
    )
    stores: list[FaultyStore] = []

    def factory() -> FaultyStore:
        stores.append(FaultyStore(open_store(settings.url, settings), mode))
        return stores[-1]

    pipeline = SharePipeline(settings, proxy_id="t", store_factory=factory)
    pipeline.start()
    while not pipeline.statistics()["store_up"]:
        await asyncio.sleep(0.02)
    baseline = await measure(None, 1500)
    failing = await measure(pipeline, 3000)  # beyond the queue: spilling to disk too
    stats = pipeline.statistics()
    assert stats["rows_written"] == 0 and stats["rows_shed"] == 0
    assert failing <= max(3 * baseline, baseline + 0.005), (baseline, failing)
    await asyncio.to_thread(pipeline.close, 1.0)
    stores[0].release()
