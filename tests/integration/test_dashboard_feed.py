"""The dashboard's event feed on a real embedded store: one computation for every page."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from helpers.store_rows import rec

from stratum_proxy.logging import get_logger
from stratum_proxy.store.backend import encode_batch
from stratum_proxy.store.chdb_store import ChdbStore
from stratum_proxy.web.dashboard import DashboardData, DashboardFeed, DashboardSource


def _counting_source(store: ChdbStore) -> tuple[DashboardSource, list[str]]:
    asked: list[str] = []

    async def query(sql: str) -> bytes:
        asked.append(sql)
        return bytes(await asyncio.to_thread(store.query, sql))

    return DashboardSource(query=query), asked


def _update(event: bytes) -> dict[str, Any]:
    name, data = event.decode().splitlines()[:2]
    assert name == "event: update"
    return dict(orjson.loads(data.removeprefix("data: ")))


async def test_many_pages_share_one_computation_and_a_slow_page_gets_the_latest(
    store: ChdbStore,
) -> None:
    store.insert(encode_batch([rec(ts=time.time() - 5)], "one"))
    source, asked = _counting_source(store)
    feed = DashboardFeed(DashboardData(source), refresh_s=0.2, log=get_logger())
    pages = [feed.subscribe() for _ in range(5)]
    try:
        firsts = [_update(await asyncio.wait_for(p.get(), 10)) for p in pages]
        queries_per_refresh = len(asked)
        store.insert(encode_batch([rec(ts=time.time() - 1)], "two"))
        await asyncio.sleep(1.0)  # several refreshes; nobody reads meanwhile
        latest = [_update(p.get_nowait()) for p in pages]
        assert all(p.empty() for p in pages)  # one update held per page, not a backlog
    finally:
        await feed.close()
    assert {f["farm"]["totals"]["total_shares"] for f in firsts} == {1}
    assert {u["farm"]["totals"]["total_shares"] for u in latest} == {2}
    refreshes = len(asked) / queries_per_refresh
    assert 2 <= refreshes <= 8  # about one per 0.2 s for the five pages together, not five


async def test_the_feed_stops_when_the_last_page_leaves(store: ChdbStore) -> None:
    source, asked = _counting_source(store)
    feed = DashboardFeed(DashboardData(source), refresh_s=0.1, log=get_logger())
    page = feed.subscribe()
    await asyncio.wait_for(page.get(), 10)
    feed.unsubscribe(page)
    await asyncio.sleep(0.3)  # the loop notices and ends
    settled = len(asked)
    await asyncio.sleep(0.5)
    assert len(asked) == settled  # no queries with nobody watching
    await feed.close()


async def test_a_store_error_is_pushed_as_an_error_event_and_the_feed_goes_on(
    store: ChdbStore,
) -> None:
    failing = [True]

    async def query(sql: str) -> bytes:
        if failing[0]:
            raise RuntimeError("store unreachable")
        return bytes(await asyncio.to_thread(store.query, sql))

    feed = DashboardFeed(DashboardData(DashboardSource(query=query)), 0.1, get_logger())
    page = feed.subscribe()
    try:
        first = await asyncio.wait_for(page.get(), 10)
        failing[0] = False
        second = await asyncio.wait_for(page.get(), 10)
        while second.startswith(b"event: error"):
            second = await asyncio.wait_for(page.get(), 10)
    finally:
        await feed.close()
    assert first.startswith(b"event: error") and b"store unreachable" in first
    assert _update(second)["farm"]["totals"]["total_shares"] == 0


async def test_the_best_share_ever_reads_only_recent_rows_between_full_reads(
    store: ChdbStore, monkeypatch: Any
) -> None:
    from stratum_proxy.store import panels
    from stratum_proxy.web.dashboard import RunningBest

    now = time.time()
    store.insert(encode_batch([rec(ts=now - 86400, share_difficulty=500.0)], "old"))
    asked: list[str] = []

    async def query(sql: str) -> bytes:
        asked.append(sql)
        return bytes(await asyncio.to_thread(store.query, sql))

    best = RunningBest(panels.best_ever_sql, lambda since: panels.best_since_sql(since))
    assert await best.read(query, now) == 500.0
    store.insert(encode_batch([rec(ts=now - 60, share_difficulty=900.0)], "late"))  # late row
    assert await best.read(query, now + 5) == 900.0
    assert "mv_hash_rate_stats" in asked[0] and "mv_hash_rate_stats" not in asked[1]
    # A replayed row older than the overlap is seen at the next full read.
    store.insert(encode_batch([rec(ts=now - 7200, share_difficulty=2000.0)], "replayed"))
    assert await best.read(query, now + 10) == 900.0
    monkeypatch.setattr(RunningBest, "_FULL_EVERY_S", 0.0)
    assert await best.read(query, now + 15) == 2000.0
