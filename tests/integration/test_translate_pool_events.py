"""Translate mode: what the SV2 pool may do to a running connection.

Reconnect (to another host, same authority key), ChannelEndpointChanged,
CloseChannel, SetTarget, and pools that speak the older OpenExtendedMiningChannel
.Success shape or address channels one by one instead of through a group.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from stratum_proxy.sim.miner import MinerConfig, TestMiner
from stratum_proxy.sim.sv2_pool import Sv2PoolConfig, Sv2TestPool


async def _start_mining(miner: TestMiner, port: int, answered: int) -> asyncio.Task[None]:
    task = asyncio.create_task(miner.run("127.0.0.1", port))
    await miner.wait_submits(answered, timeout=20)
    return task


async def _stop(miner: TestMiner, task: asyncio.Task[None]) -> None:
    await miner.stop()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(task, 10)


async def test_reconnect_moves_miners_to_the_new_host(proxy_factory: Any) -> None:
    old, new = Sv2TestPool(), Sv2TestPool()  # same authority key, as Reconnect requires
    await old.start()
    await new.start()
    proxy = await proxy_factory([old.url("pool")])
    miner = TestMiner(MinerConfig(pause=0.02))
    try:
        task = await _start_mining(miner, proxy.port, 2)
        old.send_reconnect(new.host, new.port)
        await new.wait_judged(3, timeout=20)
        await _stop(miner, task)
    finally:
        assert await proxy.shutdown() == 0
        await old.close()
        await new.close()
    assert miner.reconnects >= 1  # the miner followed client.reconnect back to the proxy
    rows = proxy.rows()
    assert len(rows) == len(miner.submits)
    assert {r["upstream"] for r in rows} == {"pool"}  # still the configured pool's name
    assert len(old.judged) + len(new.judged) == len(rows)
    assert all(r["status"] == "accepted" for r in rows)


async def test_endpoint_change_resolves_in_flight_shares_at_once(proxy_factory: Any) -> None:
    pool = Sv2TestPool(Sv2PoolConfig(answer_shares=False))
    await pool.start()
    proxy = await proxy_factory([pool.url("p")], **{"limits.submit_timeout_s": 60.0})
    miner = TestMiner(MinerConfig(max_submits=2, answer_timeout=10))
    try:
        task = asyncio.create_task(miner.run("127.0.0.1", proxy.port))
        await pool.wait_judged(2)
        pool.endpoint_changed()
        async with asyncio.timeout(5):
            await task
    finally:
        assert await proxy.shutdown() == 0
        await pool.close()
    assert [s.answer and s.answer["error"][0] for s in miner.submits] == [20, 20]
    rows = proxy.rows()
    assert [(r["status"], r["reject_reason"]) for r in rows] == [
        ("no_response", "pool changed the channel's endpoint")
    ] * 2


async def test_pool_closing_the_channel_closes_its_miner(proxy_factory: Any) -> None:
    pool = Sv2TestPool()
    await pool.start()
    proxy = await proxy_factory([pool.url("p")])
    miner = TestMiner(MinerConfig(pause=0.02))
    try:
        task = await _start_mining(miner, proxy.port, 2)
        pool.close_channels("maintenance")
        async with asyncio.timeout(5):
            await task  # the proxy closed the miner's connection
        sent = len(miner.submits)
    finally:
        assert await proxy.shutdown() == 0
        await pool.close()
    assert len(proxy.rows()) == sent


@pytest.mark.parametrize("mode", ["per_miner", "aggregated"])
async def test_set_target_reaches_miners_and_rows(proxy_factory: Any, mode: str) -> None:
    pool = Sv2TestPool(Sv2PoolConfig(difficulty=1e-6))
    await pool.start()
    proxy = await proxy_factory([pool.url("p")], **{"sv2.extranonce_mode": mode})
    miner = TestMiner(MinerConfig(pause=0.01, wait_answers=True))
    try:
        task = await _start_mining(miner, proxy.port, 2)
        pool.set_difficulty(4e-6)
        async with asyncio.timeout(5):
            while miner.difficulty != pytest.approx(4e-6):
                await asyncio.sleep(0.01)
        await miner.wait_submits(len(miner.submits) + 3)
        await _stop(miner, task)
    finally:
        assert await proxy.shutdown() == 0
        await pool.close()
    rows = proxy.rows()
    assert {r["status"] for r in rows} == {"accepted"}
    assert rows[0]["pool_difficulty"] == pytest.approx(1e-6)
    assert rows[-1]["pool_difficulty"] == pytest.approx(4e-6)
    assert all(r["share_difficulty"] >= r["pool_difficulty"] for r in rows)


@pytest.mark.parametrize(
    "config",
    [Sv2PoolConfig(old_open_success=True, group_channels=False), Sv2PoolConfig(batch_size=5)],
    ids=["old_shape_no_group", "group_batched"],
)
async def test_pool_dialects(proxy_factory: Any, config: Sv2PoolConfig) -> None:
    pool = Sv2TestPool(config)
    await pool.start()
    proxy = await proxy_factory([pool.url("p")], **{"sv2.extranonce_mode": "aggregated"})
    miners = [TestMiner(MinerConfig(max_submits=4)) for _ in range(3)]
    try:
        async with asyncio.timeout(30):
            await asyncio.gather(*(m.run("127.0.0.1", proxy.port) for m in miners))
    finally:
        assert await proxy.shutdown() == 0
        await pool.close()
    rows = proxy.rows()
    assert len(rows) == len(pool.judged) == 12
    assert {r["status"] for r in rows} == {"accepted"}
    assert len({r["extranonce1"] for r in rows}) == 3  # one extranonce slot per miner


async def test_reconnect_miner_sends_the_miner_back_to_the_proxy(proxy_factory: Any) -> None:
    pool = Sv2TestPool()
    await pool.start()
    proxy = await proxy_factory([pool.url("p")])
    miner = TestMiner(MinerConfig(pause=0.02))
    try:
        task = await _start_mining(miner, proxy.port, 2)
        (relay,) = proxy.server.relays
        assert relay.upstream is not None
        relay.upstream.reconnect_miner(relay)
        async with asyncio.timeout(10):
            while miner.reconnects < 1:
                await asyncio.sleep(0.01)
        await miner.wait_submits(len(miner.submits) + 2, timeout=20)  # mining again
        await _stop(miner, task)
    finally:
        assert await proxy.shutdown() == 0
        await pool.close()
    rows = proxy.rows()
    assert len(rows) == len(miner.submits) == len(pool.judged)
    assert {r["status"] for r in rows} == {"accepted"}
