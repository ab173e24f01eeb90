"""The share-tracking API over a daemon fed by hashing test miners: the store's numbers."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from stratum_proxy.sim.miner import MinerConfig, TestMiner
from stratum_proxy.sim.pool import TestPool
from stratum_proxy.sim.pool_config import PoolConfig


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with session.get(url) as response:
        body = await response.json() if response.status == 200 else await response.text()
        return response.status, body


async def test_share_stats_workers_and_recent_shares_match_the_store(proxy_factory: Any) -> None:
    pool = TestPool(PoolConfig())
    await pool.start()
    proxy = await proxy_factory([f"main=stratum+tcp://127.0.0.1:{pool.port}"])
    assert proxy.api is not None
    base = f"http://127.0.0.1:{proxy.api[1]}"
    miners = [
        TestMiner(MinerConfig(workers=(f"farm.rig{i}",), max_submits=6, bad_share_every=3))
        for i in range(2)
    ]
    try:
        async with asyncio.timeout(60):
            await asyncio.gather(*(m.run("127.0.0.1", proxy.port) for m in miners))
        async with aiohttp.ClientSession() as session:
            async with asyncio.timeout(30):  # every row written
                while True:
                    status, stats = await _get(session, f"{base}/api/share-stats?hours=1")
                    if status == 200 and stats["total_shares"] == 12:
                        break
                    await asyncio.sleep(0.2)
            status, one = await _get(session, f"{base}/api/share-stats?hours=1&worker=farm.rig0")
            assert status == 200 and one["total_shares"] == 6 and one["worker"] == "farm.rig0"
            status, workers = await _get(session, f"{base}/api/workers?hours=1")
            assert status == 200
            status, recent = await _get(session, f"{base}/api/shares?hours=1&limit=5")
            assert status == 200
            status, mine = await _get(session, f"{base}/api/shares?worker=farm.rig1&limit=100")
            assert status == 200
            bad = [
                await _get(session, f"{base}/api/shares?limit=0"),
                await _get(session, f"{base}/api/shares?hours=abc"),
                await _get(session, f"{base}/api/workers?hours=-1"),
                await _get(session, f"{base}/api/shares?colour=red"),
            ]
    finally:
        await proxy.shutdown()
        await pool.close()
    rows = proxy.rows()
    accepted = sum(r["status"] == "accepted" for r in rows)
    assert stats["accepted_shares"] == accepted
    assert stats["rejected_shares"] == sum(r["status"] == "rejected" for r in rows)
    assert stats["no_response_shares"] == 0
    assert stats["best_share"] == max(r["share_difficulty"] for r in rows)
    assert stats["hashrate"] > 0 and stats["workers"] == 2
    assert [w["worker"] for w in workers["workers"]] == ["farm.rig0", "farm.rig1"]
    assert sum(w["accepted"] for w in workers["workers"]) == accepted
    by_hash = sorted(rows, key=lambda r: r["share_hash"])
    newest = sorted(by_hash, key=lambda r: r["ts"], reverse=True)[:5]  # stable: ties by hash
    assert [s["share_hash"] for s in recent["shares"]] == [r["share_hash"] for r in newest]
    assert {s["worker"] for s in mine["shares"]} == {"farm.rig1"} and len(mine["shares"]) == 6
    assert [status for status, _ in bad] == [400, 400, 400, 400]
    assert "limit" in bad[0][1] and "hours" in bad[1][1] and "colour" in bad[3][1]
