"""Connection ids are unique per proxy across restarts (issue: ids repeated after a restart).

Two runs of the real daemon on the same store and spool, two miners each: every
connection has its own ``connection_id``, passthrough rows carry it as
``channel_id`` too, and the original design's per-channel query on
``mining.mv_hash_rate_stats`` sees one worker per channel.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from stratum_proxy.sim.miner import MinerConfig, TestMiner
from stratum_proxy.sim.pool import TestPool
from stratum_proxy.sim.pool_config import PoolConfig
from stratum_proxy.store.backend import open_store
from stratum_proxy.store.settings import StoreSettings

# The original design's query, as written there (ORDER BY and FORMAT added).
DESIGN_QUERY = (
    "SELECT channel_id, sum(share_count) AS shares, sum(total_hashes) / greatest(1, "
    "dateDiff('second', min(min_timestamp), max(max_timestamp))) AS hashrate "
    "FROM mining.mv_hash_rate_stats WHERE period_start >= now() - INTERVAL 60 MINUTE "
    "GROUP BY channel_id ORDER BY channel_id FORMAT JSONEachRow"
)


async def _run_once(proxy_factory: Any, pool: TestPool, overrides: dict[str, Any], run: int) -> Any:
    proxy = await proxy_factory([f"stratum+tcp://127.0.0.1:{pool.port}"], **overrides)
    miners = [
        TestMiner(MinerConfig(workers=(f"run{run}.rig{i}",), max_submits=5)) for i in range(2)
    ]
    try:
        async with asyncio.timeout(60):
            await asyncio.gather(*(m.run("127.0.0.1", proxy.port) for m in miners))
    finally:
        assert await proxy.shutdown() == 0
    return proxy


async def test_ids_are_unique_across_restarts_and_the_design_query_keeps_workers_apart(
    proxy_factory: Any, tmp_path: Any
) -> None:
    pool = TestPool(PoolConfig(difficulty=1e-6))
    await pool.start()
    overrides = {"store.url": f"chdb://{tmp_path}/farm", "store.spool_dir": tmp_path / "spool"}
    try:
        first = await _run_once(proxy_factory, pool, overrides, 1)
        await _run_once(proxy_factory, pool, overrides, 2)
    finally:
        await pool.close()
    first.store_url = overrides["store.url"]
    rows = first.rows()
    assert len(rows) == 20
    by_connection: dict[int, set[str]] = {}
    for row in rows:
        assert row["connection_id"] > 0
        assert (
            row["channel_id"] == row["connection_id"]
        )  # passthrough: the channel is the connection
        by_connection.setdefault(row["connection_id"], set()).add(row["worker"])
    assert len(by_connection) == 4, by_connection
    assert all(len(workers) == 1 for workers in by_connection.values())
    run1 = {c for c, w in by_connection.items() if next(iter(w)).startswith("run1.")}
    run2 = set(by_connection) - run1
    assert max(run1) < min(run2)  # the second run numbered after the first

    store = open_store(overrides["store.url"], StoreSettings())
    try:
        channels = [
            orjson.loads(line) for line in store.query(DESIGN_QUERY).splitlines() if line.strip()
        ]
        workers_per_channel = store.query(
            "SELECT max(n) FROM (SELECT channel_id, uniqExact(worker) AS n "
            "FROM mining.mv_hash_rate_stats GROUP BY channel_id)"
        )
    finally:
        store.close()
    assert [c["channel_id"] for c in channels] == sorted(by_connection)
    assert all(c["shares"] == 5 and c["hashrate"] > 0 for c in channels)
    assert workers_per_channel.strip() == b"1"
