"""Aggregate mode end to end over loopback: hashing test miners, test pools, the real daemon.

Many miners share one pool connection, the pool's verdict reaches the miner and
the row, and when the pool dies the miners keep their connections and get work
from the backup, with every share before, during and after recorded honestly.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from stratum_proxy.sim.miner import MinerConfig, TestMiner
from stratum_proxy.sim.pool import TestPool
from stratum_proxy.sim.pool_config import PoolConfig

AGGREGATE = {
    "mode": "aggregate",
    "aggregate.pool_user": "farm1",
    # The miners' difficulty equals the pool's: every share is forwarded and judged there.
    "aggregate.min_difficulty": 1e-6,
    "aggregate.start_difficulty": 1e-6,
    "aggregate.max_difficulty": 1e-6,
}


def _key(worker: str, job: str, en2: str, ntime: str, nonce: str) -> tuple[str, ...]:
    return (worker, job, en2, ntime, nonce)


async def test_miners_share_one_pool_connection_and_get_the_pools_verdicts(
    proxy_factory: Any,
) -> None:
    pool = TestPool(PoolConfig())
    await pool.start()
    proxy = await proxy_factory([f"main=stratum+tcp://127.0.0.1:{pool.port}"], **AGGREGATE)
    miners = [
        TestMiner(MinerConfig(workers=(f"farm1.rig{i}",), max_submits=6, bad_share_every=3))
        for i in range(4)
    ]
    try:
        async with asyncio.timeout(60):
            await asyncio.gather(*(m.run("127.0.0.1", proxy.port) for m in miners))
        stats = proxy.server.statistics()
        assert len(pool.sessions) == 1  # four miners, one pool connection
        assert stats["aggregate"]["0"]["upstreams"] == {"main": 1}
    finally:
        await proxy.shutdown()
        await pool.close()
    rows = proxy.rows()
    assert len(rows) == 24
    # Every forwarded share is one the pool judged, under the miner's own worker name.
    forwarded = [r for r in rows if r["forwarded"]]
    judged = {(j.worker, j.nonce, j.ntime): j for j in pool.judged}
    assert len(forwarded) == len(pool.judged)
    for row in forwarded:
        j = judged[(row["worker"], row["nonce"], row["ntime"])]
        assert row["share_hash"] == j.hash_hex
        assert row["status"] == ("accepted" if j.accepted else "rejected")
        assert row["verdict_by"] == "pool"
    # bad_share_every=3: the misses are refused by the proxy (below the miner's difficulty).
    local = [r for r in rows if not r["forwarded"]]
    assert local and all(r["verdict_by"] == "proxy" and r["status"] == "rejected" for r in local)
    assert {m.config.workers[0] for m in miners} == {j.worker for j in pool.judged}
    # Every miner's answers matched the rows' verdicts.
    answered = Counter(s.accepted for m in miners for s in m.submits)
    assert answered[True] == sum(r["status"] == "accepted" for r in rows)


async def test_a_dead_pool_moves_miners_to_the_backup_without_disconnecting_them(
    proxy_factory: Any,
) -> None:
    main, backup = TestPool(PoolConfig(seed=1)), TestPool(PoolConfig(seed=2))
    await main.start()
    await backup.start()
    proxy = await proxy_factory(
        [
            f"main=stratum+tcp://127.0.0.1:{main.port}",
            f"backup=stratum+tcp://127.0.0.1:{backup.port}",
        ],
        **AGGREGATE,
        **{"aggregate.failback": "stay"},
    )
    miners = [
        TestMiner(MinerConfig(workers=(f"farm1.rig{i}",), duration=4.0, pause=0.05))
        for i in range(3)
    ]
    try:
        tasks = [asyncio.create_task(m.run("127.0.0.1", proxy.port)) for m in miners]
        await main.wait_until(lambda: len(main.judged) >= 6, timeout=20)
        killed_at = asyncio.get_running_loop().time()
        await main.close()  # refuses new connections and drops the proxy's
        await backup.wait_until(lambda: len(backup.judged) >= 6, timeout=20)
        moved_after = asyncio.get_running_loop().time() - killed_at
        async with asyncio.timeout(30):
            await asyncio.gather(*tasks)
    finally:
        await proxy.shutdown()
        await backup.close()
    assert moved_after < 5.0
    assert all(m.reconnects == 0 for m in miners)  # nobody was dropped
    rows = proxy.rows()
    assert len(rows) == sum(len(m.submits) for m in miners)  # every submit is a row
    by_pool = Counter(r["upstream"] for r in rows if r["forwarded"])
    assert by_pool["main"] >= 6 and by_pool["backup"] >= 6
    # No share was credited by anyone who did not judge it: accepted rows were
    # accepted by the pool they name (or, not forwarded, by the proxy).
    accepted_main = {(j.worker, j.nonce) for j in main.judged if j.accepted}
    accepted_backup = {(j.worker, j.nonce) for j in backup.judged if j.accepted}
    for row in rows:
        if row["status"] == "accepted" and row["forwarded"]:
            pool_set = accepted_main if row["upstream"] == "main" else accepted_backup
            assert (row["worker"], row["nonce"]) in pool_set


async def test_passthrough_and_aggregate_listeners_side_by_side(proxy_factory: Any) -> None:
    pool = TestPool(PoolConfig())
    await pool.start()
    overrides = {k: v for k, v in AGGREGATE.items() if k != "mode"}
    proxy = await proxy_factory(
        [f"main=stratum+tcp://127.0.0.1:{pool.port}"],
        listen=["127.0.0.1:0", "aggregate=127.0.0.1:0"],
        **overrides,
    )
    (_, plain_port), (_, aggregate_port) = proxy.server.addresses
    miners = [TestMiner(MinerConfig(workers=(f"farm1.rig{i}",), max_submits=3)) for i in range(4)]
    try:
        async with asyncio.timeout(60):
            await asyncio.gather(
                *(m.run("127.0.0.1", plain_port) for m in miners[:2]),
                *(m.run("127.0.0.1", aggregate_port) for m in miners[2:]),
            )
    finally:
        await proxy.shutdown()
        await pool.close()
    # Two passthrough miners, two pool connections; two aggregated miners, one.
    assert len({j.connection for j in pool.judged}) == 3
    rows = proxy.rows()
    assert len(rows) == 12 and all(r["status"] == "accepted" for r in rows)
    by_worker = {r["worker"]: r for r in rows}
    assert by_worker["farm1.rig0"]["miner_difficulty"] == by_worker["farm1.rig0"]["pool_difficulty"]
    assert by_worker["farm1.rig2"]["extranonce1"] != by_worker["farm1.rig3"]["extranonce1"]
