"""``stratum-proxy dashboard --store``: the dashboard over a store with no daemon."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from helpers.store_rows import rec

from stratum_proxy.errors import StoreBusyError
from stratum_proxy.logging import get_logger
from stratum_proxy.settings import load_settings
from stratum_proxy.sim.pool import TestPool
from stratum_proxy.sim.pool_config import PoolConfig
from stratum_proxy.store.backend import encode_batch, open_store
from stratum_proxy.store.settings import StoreSettings
from stratum_proxy.web.browse import browse_store


async def test_a_copied_store_is_browsed_read_only(tmp_path: Path) -> None:
    url = f"chdb://{tmp_path}/copy"
    now = time.time()
    store = open_store(url, StoreSettings())
    try:
        store.ensure_schema()
        store.insert(
            encode_batch(
                [
                    rec(ts=now - 120, worker="a", share_difficulty=9e5),
                    rec(ts=now - 60, worker="a", status="rejected", reject_reason="22 Duplicate"),
                    rec(ts=now - 30, worker="b", manual=True, share_hash=""),
                ],
                "copy",
            )
        )
    finally:
        store.close()
    settings = load_settings(None, **{"store.url": url, "store.spool_dir": tmp_path / "spool"})
    stop = asyncio.Event()
    bound: list[tuple[str, int]] = []
    task = asyncio.create_task(
        browse_store(settings, "127.0.0.1:0", get_logger(), stop=stop, on_ready=bound.append)
    )
    try:
        async with asyncio.timeout(20):
            while not bound:
                assert not task.done(), task.result()
                await asyncio.sleep(0.02)
        base = f"http://127.0.0.1:{bound[0][1]}"
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/api/farm?hours=1") as response:
                assert response.status == 200
                farm = await response.json()
            async with session.get(f"{base}/api/stats") as response:
                assert response.status == 404  # no daemon: no live statistics
            share = {"pool_name": "p", "difficulty": 1, "worker_name": "w", "accepted": True}
            async with session.post(f"{base}/api/shares", json=share) as response:
                assert response.status == 503 and "only reads" in await response.text()
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 20) == 0
    assert farm["totals"]["total_shares"] == 2  # the manual row is left out
    assert farm["reject_reasons"]["duplicate"] == 1
    assert farm["best"]["ever"] == 9e5 and farm["best"]["session"] is None
    assert farm["pipeline"] is None and farm["live"] is None
    assert [p["status"] for p in farm["pools"]] == ["unknown"]


async def test_a_store_a_daemon_holds_points_at_the_daemons_dashboard(
    proxy_factory: Any,
) -> None:
    pool = TestPool(PoolConfig())
    await pool.start()
    proxy = await proxy_factory([f"main=stratum+tcp://127.0.0.1:{pool.port}"])
    try:
        settings = load_settings(None, **{"store.url": proxy.store_url})
        expected = f"its dashboard is at http://{proxy.settings.api.listen}/"
        with pytest.raises(StoreBusyError, match=expected):
            await browse_store(settings, "127.0.0.1:0", get_logger())
    finally:
        await proxy.shutdown()
        await pool.close()
