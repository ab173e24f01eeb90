"""The dashboard's data endpoints and manual shares, over a daemon fed by hashing miners."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import aiohttp
import orjson

from stratum_proxy.sim.miner import MinerConfig, TestMiner
from stratum_proxy.sim.pool import TestPool
from stratum_proxy.sim.pool_config import PoolConfig


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with session.get(url) as response:
        body = await response.json() if response.status == 200 else await response.text()
        return response.status, body


async def _post(session: aiohttp.ClientSession, url: str, body: Any, **kw: Any) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    headers = {"Content-Type": kw.get("content_type", "application/json")}
    async with session.post(url, data=data, headers=headers) as response:
        answer = await response.json() if response.status == 201 else await response.text()
        return response.status, answer


async def _mine(proxy: Any, shares: int, manual: int = 0) -> int:
    """Two hashing miners send ``shares`` each; returns once the store holds them all."""
    miners = [
        TestMiner(MinerConfig(workers=(f"farm.rig{i}",), max_submits=shares, bad_share_every=4))
        for i in range(2)
    ]
    async with asyncio.timeout(60):
        await asyncio.gather(*(m.run("127.0.0.1", proxy.port) for m in miners))
    await _written(proxy, 2 * shares)
    return 2 * shares


async def _written(proxy: Any, count: int) -> None:
    url = f"http://127.0.0.1:{proxy.api[1]}/api/share-stats?hours=1&manual=1"
    async with aiohttp.ClientSession() as session, asyncio.timeout(30):
        while True:
            status, stats = await _get(session, url)
            if status == 200 and stats["total_shares"] >= count:
                return
            await asyncio.sleep(0.1)


async def test_farm_series_and_worker_panels_match_the_store(proxy_factory: Any) -> None:
    pool = TestPool(PoolConfig())
    await pool.start()
    proxy = await proxy_factory([f"main=stratum+tcp://127.0.0.1:{pool.port}"])
    base = f"http://127.0.0.1:{proxy.api[1]}"
    try:
        await _mine(proxy, 8)
        async with aiohttp.ClientSession() as session:
            status, farm = await _get(session, f"{base}/api/farm?hours=1")
            assert status == 200, farm
            status, series = await _get(session, f"{base}/api/series?range=5m")
            assert status == 200, series
            status, daily = await _get(session, f"{base}/api/series?range=24h&worker=farm.rig0")
            assert status == 200, daily
            status, worker = await _get(session, f"{base}/api/worker?name=farm.rig0&hours=1")
            assert status == 200, worker
            status, workers = await _get(session, f"{base}/api/workers?hours=1")
            assert status == 200
            bad = [
                await _get(session, f"{base}/api/series?range=2w"),
                await _get(session, f"{base}/api/worker?hours=1"),
                await _get(session, f"{base}/api/farm?limit=3"),
            ]
    finally:
        await proxy.shutdown()
        await pool.close()
    rows = proxy.rows()
    accepted = [r for r in rows if r["status"] == "accepted"]
    rejected = [r for r in rows if r["status"] == "rejected"]
    assert rejected, "the miners send bad shares: the pool refuses them"
    totals = farm["totals"]
    assert totals["total_shares"] == len(rows)
    assert totals["accepted_shares"] == len(accepted)
    assert totals["rejected_shares"] == len(rejected)
    assert totals["best_share"] == max(r["share_difficulty"] for r in rows)
    assert farm["workers_up"] == 2 and farm["workers_down"] == 0
    assert sum(farm["reject_reasons"].values()) == len(rejected)
    (main,) = farm["pools"]
    assert main["upstream"] == "main" and main["status"] == "up"
    assert main["accepted"] == len(accepted) and math.isclose(main["hashrate_pct"], 100.0)
    answered = sorted(r["response_ms"] for r in rows if r["status"] != "no_response")
    assert answered[0] <= main["p50_ms"] <= main["p99_ms"] <= answered[-1]
    assert farm["best"]["ever"] == farm["best"]["session"] == totals["best_share"]
    network = rows[-1]["network_difficulty"]
    assert math.isclose(farm["best"]["progress_ever"], totals["best_share"] / network)
    expected = sum(min(1, r["pool_difficulty"] / r["network_difficulty"]) for r in accepted)
    assert math.isclose(farm["luck"]["expected_blocks"], expected, rel_tol=1e-9)
    found = sum(r["is_block"] and r["status"] == "accepted" for r in rows)
    assert farm["luck"]["found_blocks"] == found
    assert {c["share_hash"] for c in farm["block_candidates"]} == {
        r["share_hash"] for r in rows if r["is_block"]
    }
    pipeline = farm["pipeline"]
    assert pipeline["store_up"] is True and pipeline["rows_shed"] == 0
    assert pipeline["queue_rows"] == 0 and pipeline["last_write_ts"] > 0  # all written
    assert farm["live"]["connections"] >= 0
    # Series: every share in a bucket, the accepted work over time.
    assert len(series["t"]) == len(series["hashrate"]) == len(series["accepted"])
    assert series["step_s"] == 10 and series["t"] == sorted(series["t"])
    assert sum(series["accepted"]) == len(accepted)
    assert sum(series["rejected"]) == len(rejected)
    assert daily["step_s"] == 600 and sum(daily["accepted"]) == sum(
        r["worker"] == "farm.rig0" for r in accepted
    )
    # The worker view.
    mine = [r for r in rows if r["worker"] == "farm.rig0"]
    assert worker["stats"]["shares"] == len(mine) and worker["stats"]["status"] == "up"
    hist = worker["difficulty_histogram"]
    assert sum(hist["counts"]) == len(mine) and len(hist["edges"]) == len(hist["counts"]) + 1
    # An honest share at difficulty D lands at or above D, P(>= x) = D / x: all of
    # them but the tail beyond the last bin are expected inside the bins.
    top = hist["edges"][-1]
    tail = sum(1 - r["pool_difficulty"] / top for r in mine)
    assert math.isclose(sum(hist["expected"]), tail, rel_tol=1e-9)
    low = sum(r["share_difficulty"] < r["pool_difficulty"] for r in mine)
    target = mine[0]["pool_difficulty"]
    below = sum(c for c, e in zip(hist["counts"], hist["edges"][1:], strict=True) if e <= target)
    assert low > 0 and below <= low  # bins wholly below D hold only the bad shares
    assert sum(worker["response_histogram"]["counts"]) == len(mine)
    best = worker["best_shares"]
    assert best[0]["share_difficulty"] == max(r["share_difficulty"] for r in mine)
    assert len(worker["recent_shares"]) == len(mine)
    assert {w["status"] for w in workers["workers"]} == {"up"}
    assert [b[0] for b in bad] == [400, 400, 400]
    assert "range" in bad[0][1] and "name" in bad[1][1] and "limit" in bad[2][1]


async def test_manual_shares_are_recorded_marked_and_kept_apart(proxy_factory: Any) -> None:
    pool = TestPool(PoolConfig())
    await pool.start()
    proxy = await proxy_factory([f"main=stratum+tcp://127.0.0.1:{pool.port}"])
    base = f"http://127.0.0.1:{proxy.api[1]}"
    share = {"pool_name": "other", "difficulty": 4096, "worker_name": "farm.rig0", "accepted": True}
    try:
        measured = await _mine(proxy, 4)
        async with aiohttp.ClientSession() as session:
            url = f"{base}/api/shares"
            status, recorded = await _post(session, url, share)
            assert status == 201, recorded
            assert recorded["recorded"]["manual"] is True
            refused = {
                "pool_name": await _post(session, url, {**share, "pool_name": ""}),
                "difficulty": await _post(session, url, {**share, "difficulty": -1}),
                "difficulty ": await _post(session, url, {**share, "difficulty": "big"}),
                "accepted": await _post(session, url, {**share, "accepted": "yes"}),
                "worker_name": await _post(
                    session, url, {k: v for k, v in share.items() if k != "worker_name"}
                ),
                "colour": await _post(session, url, {**share, "colour": "red"}),
                "ts": await _post(session, url, {**share, "ts": 1.0}),
                "JSON": await _post(session, url, b"{not json"),
                "Content-Type": await _post(session, url, share, content_type="text/plain"),
            }
            await _written(proxy, measured + 1)
            _, plain = await _get(session, f"{base}/api/share-stats?hours=1")
            _, with_manual = await _get(session, f"{base}/api/share-stats?hours=1&manual=1")
            _, farm = await _get(session, f"{base}/api/farm?hours=1")
            _, recent = await _get(session, f"{base}/api/shares?hours=1&limit=1000&manual=1")
    finally:
        await proxy.shutdown()
        await pool.close()
    for field, (status, message) in refused.items():
        if field == "Content-Type":
            assert status == 415, message
        else:
            assert status == 400 and field.strip() in message, (field, message)
    rows = proxy.rows()
    manual = [r for r in rows if r["manual"]]
    assert len(manual) == 1, "one row, and none from the refused requests"
    (row,) = manual
    assert (row["upstream"], row["worker"], row["status"]) == ("other", "farm.rig0", "accepted")
    assert row["pool_difficulty"] == row["miner_difficulty"] == 4096 and row["share_hash"] == ""
    assert plain["total_shares"] == measured == farm["totals"]["total_shares"]
    assert with_manual["total_shares"] == measured + 1
    assert with_manual["accepted_shares"] == plain["accepted_shares"] + 1
    assert [p["upstream"] for p in farm["pools"]] == ["main"]  # the manual pool is not shown
    assert sum(s["manual"] for s in recent["shares"]) == 1


async def test_event_stream_pushes_the_farm_and_the_page_is_served(proxy_factory: Any) -> None:
    pool = TestPool(PoolConfig())
    await pool.start()
    proxy = await proxy_factory(
        [f"main=stratum+tcp://127.0.0.1:{pool.port}"], **{"api.dashboard_refresh_s": 0.5}
    )
    base = f"http://127.0.0.1:{proxy.api[1]}"
    try:
        await _mine(proxy, 3)
        async with aiohttp.ClientSession() as session:
            updates: list[dict[str, Any]] = []
            async with session.get(f"{base}/api/events") as response:
                assert response.headers["Content-Type"] == "text/event-stream"
                event = None
                async with asyncio.timeout(10):
                    async for raw in response.content:
                        line = raw.decode().rstrip("\n")
                        if line.startswith("event: "):
                            event = line[7:]
                        elif line.startswith("data: ") and event == "update":
                            updates.append(orjson.loads(line[6:]))
                            if len(updates) == 2:
                                break
            async with session.get(f"{base}/") as page:
                html = await page.text()
                assert page.status == 200 and "text/html" in page.headers["Content-Type"]
            async with session.get(f"{base}/static/app.js") as script:
                assert script.status == 200 and "javascript" in script.headers["Content-Type"]
                assert script.headers["Cache-Control"] == "no-cache"
            async with session.get(f"{base}/static/../../settings.py") as escape:
                assert escape.status in (403, 404)
    finally:
        await proxy.shutdown()
        await pool.close()
    assert updates[0]["farm"]["totals"]["total_shares"] == len(proxy.rows())
    assert updates[1]["farm"]["now"] > updates[0]["farm"]["now"]  # a fresh computation
    assert "/static/" in html


async def test_every_dashboard_endpoint_is_under_the_token_rule(proxy_factory: Any) -> None:
    pool = TestPool(PoolConfig())
    await pool.start()
    token = "dashboard-token-0123456789abcdef"
    pools = [f"main=stratum+tcp://127.0.0.1:{pool.port}"]
    proxy = await proxy_factory(pools, **{"api.token": token})
    base = f"http://127.0.0.1:{proxy.api[1]}"
    share = {"pool_name": "p", "difficulty": 1, "worker_name": "w", "accepted": True}
    gets = ["/api/farm", "/api/series", "/api/worker?name=w", "/api/events", "/api/workers",
            "/api/shares", "/api/share-stats"]  # fmt: skip
    try:
        async with aiohttp.ClientSession() as session:
            refused = {path: (await _get(session, base + path))[0] for path in gets}
            refused["POST /api/shares"] = (await _post(session, f"{base}/api/shares", share))[0]
            public = {}
            for path in ("/", "/static/app.js"):
                async with session.get(base + path) as response:
                    public[path] = response.status
            async with session.get(
                f"{base}/api/farm", headers={"Authorization": f"Bearer {token}"}
            ) as response:
                allowed = response.status
    finally:
        await proxy.shutdown()
        await pool.close()
    assert set(refused.values()) == {401}, refused
    assert public == {"/": 200, "/static/app.js": 200}  # the page holds no data
    assert allowed in (200, 503)  # 503 only while the store is still opening
    assert proxy.rows() == []  # the refused POST wrote nothing
