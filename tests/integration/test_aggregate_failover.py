"""Aggregate mode at the edges, over loopback with hashing test miners and the real daemon.

A full upstream, a pool that comes back (fail back), a backup whose extranonce2
is too small, duplicates and stale shares, suggest_difficulty, a silent pool.
"""

from __future__ import annotations

import asyncio
from typing import Any

from stratum_proxy.shares.math import DIFF1_TARGET
from stratum_proxy.sim import hasher
from stratum_proxy.sim.miner import MinerConfig, SubmitRecord, TestMiner
from stratum_proxy.sim.pool import TestPool
from stratum_proxy.sim.pool_config import PoolConfig

AGGREGATE = {
    "mode": "aggregate",
    "aggregate.pool_user": "farm1",
    "aggregate.min_difficulty": 1e-6,
    "aggregate.start_difficulty": 1e-6,
    "aggregate.max_difficulty": 1e-6,
}


def _url(name: str, pool: TestPool) -> str:
    return f"{name}=stratum+tcp://127.0.0.1:{pool.port}"


async def _submit_real_share(
    miner: TestMiner, job: hasher.MinerJob | None = None, *, above: float | None = None
) -> SubmitRecord:
    """Hash a job (the miner's current one by default) until a share meets the miner's
    difficulty (and, with ``above``, misses that difficulty), and submit it."""
    job = job or miner.job
    assert job is not None
    en2 = bytes(miner.extranonce2_size - 1) + b"\x07"
    t = job.template
    header = hasher.header76(t, t.header_prefix(miner.extranonce1, en2), t.version)
    target = int(DIFF1_TARGET / miner.difficulty)
    start = 0
    while True:
        nonce = hasher.search(header, target, start, 1 << 24, want_valid=True)
        assert nonce is not None
        if (
            above is None
            or hasher.search(header, int(DIFF1_TARGET / above), nonce, 1, want_valid=False) == nonce
        ):
            break
        start = nonce + 1
    return await miner.submit("farm1.rig", t.job_id, en2.hex(), f"{t.ntime:08x}", f"{nonce:08x}")


async def _run(miners: list[TestMiner], port: int, timeout: float = 60) -> None:
    async with asyncio.timeout(timeout):
        await asyncio.gather(*(m.run("127.0.0.1", port) for m in miners))


async def test_a_full_upstream_opens_a_second_connection(proxy_factory: Any) -> None:
    pool = TestPool(PoolConfig())
    await pool.start()
    proxy = await proxy_factory(
        [_url("main", pool)], **AGGREGATE, **{"aggregate.miners_per_upstream": 2}
    )
    miners = [TestMiner(MinerConfig(workers=(f"farm1.rig{i}",), max_submits=4)) for i in range(4)]
    try:
        await _run(miners, proxy.port)
        # The miners gone, the second connection closes; the pool's last one stays.
        await pool.wait_until(lambda: len(pool.sessions) == 1, timeout=10)
    finally:
        await proxy.shutdown()
        await pool.close()
    rows = proxy.rows()
    assert len(rows) == 16
    assert all(r["status"] == "accepted" and r["verdict_by"] == "pool" for r in rows)
    assert {j.connection for j in pool.judged} == {1, 2}  # four miners, two per connection


async def test_fail_back_to_the_first_pool_keeps_the_miners_connected(
    proxy_factory: Any,
) -> None:
    main, backup = TestPool(PoolConfig(seed=1)), TestPool(PoolConfig(seed=2))
    await main.start()
    await backup.start()
    proxy = await proxy_factory(
        [_url("main", main), _url("backup", backup)],
        **AGGREGATE,
        **{"aggregate.failback_check_s": 0.5},
    )
    miners = [
        TestMiner(MinerConfig(workers=(f"farm1.rig{i}",), duration=6.0, pause=0.05))
        for i in range(2)
    ]
    try:
        tasks = [asyncio.create_task(m.run("127.0.0.1", proxy.port)) for m in miners]
        await main.wait_until(lambda: len(main.judged) >= 4, timeout=20)
        await main.stop_listening()
        for session in list(main.sessions.values()):
            session.close()
        await backup.wait_until(lambda: len(backup.judged) >= 4, timeout=20)
        judged_on_main = len(main.judged)
        await main.resume_listening()
        await main.wait_until(lambda: len(main.judged) >= judged_on_main + 4, timeout=20)
        async with asyncio.timeout(30):
            await asyncio.gather(*tasks)
        stats = proxy.server.statistics()["aggregate"]["0"]
    finally:
        await proxy.shutdown()
        await main.close()
        await backup.close()
    assert all(m.reconnects == 0 for m in miners)
    assert stats["failovers"] >= 1 and stats["failbacks"] >= 1
    rows = proxy.rows()
    assert len(rows) == sum(len(m.submits) for m in miners)
    late = [r for r in rows[-6:] if r["forwarded"]]  # rows come ordered by ts
    assert late and all(r["upstream"] == "main" for r in late)  # back on main at the end


async def test_a_backup_too_small_for_the_miners_extranonce(proxy_factory: Any) -> None:
    main = TestPool(PoolConfig(seed=1, extranonce2_size=8))  # miners get 4 bytes
    backup = TestPool(PoolConfig(seed=2, extranonce2_size=5))  # room for 2 + 3 only
    await main.start()
    await backup.start()
    proxy = await proxy_factory(
        [_url("main", main), _url("backup", backup)],
        **AGGREGATE,
        **{"aggregate.failback": "stay", "aggregate.reconnects_per_s": 5},
    )
    subscriber = TestMiner(
        MinerConfig(workers=("farm1.sub",), duration=5.0, pause=0.05, extranonce_subscribe=True)
    )
    plain = TestMiner(MinerConfig(workers=("farm1.plain",), duration=5.0, pause=0.05))
    try:
        tasks = [asyncio.create_task(m.run("127.0.0.1", proxy.port)) for m in (subscriber, plain)]
        await main.wait_until(lambda: len(main.judged) >= 4, timeout=20)
        await main.close()
        await backup.wait_until(
            lambda: {j.worker for j in backup.judged} >= {"farm1.sub", "farm1.plain"}, timeout=20
        )
        async with asyncio.timeout(30):
            await asyncio.gather(*tasks)
    finally:
        await proxy.shutdown()
        await backup.close()
    assert subscriber.extranonce_changes == 1 and subscriber.reconnects == 0
    assert subscriber.extranonce2_size == 3
    assert plain.reconnects == 1  # told to reconnect to the proxy, and did
    sub_on_backup = [j for j in backup.judged if j.worker == "farm1.sub"]
    assert sub_on_backup and all(j.accepted for j in sub_on_backup)
    assert all(j.accepted for j in backup.judged if j.worker == "farm1.plain")


async def test_duplicates_and_suggested_difficulty(proxy_factory: Any) -> None:
    pool = TestPool(PoolConfig())
    await pool.start()
    proxy = await proxy_factory(
        [_url("main", pool)],
        **{**AGGREGATE, "aggregate.max_difficulty": 1e-3, "aggregate.min_difficulty": 1e-7},
    )
    miner = TestMiner(
        MinerConfig(workers=("farm1.rig",), autosubmit=False, suggest_difficulty=2e-6)
    )
    task = asyncio.create_task(miner.run("127.0.0.1", proxy.port))
    try:
        await miner.wait_ready()
        await miner._wait_for(lambda: miner.job is not None, 10)
        pool.new_job()  # a new difficulty goes out just before the next job
        await miner._wait_for(lambda: miner.difficulty == 2e-6, 10)  # honoured, within bounds
        await miner._wait_for(lambda: miner.job is not None and miner.job.difficulty == 2e-6, 10)
        record = await _submit_real_share(miner)
        await miner.wait_answer(record)
        again = await miner.submit(*record.params, meant_valid=True)
        await miner.wait_answer(again)
        await miner.stop()
        await task
    finally:
        await proxy.shutdown()
        await pool.close()
    assert record.accepted is True
    assert again.answer is not None and again.answer["error"][0] == 22
    rows = proxy.rows()
    assert [r["reject_reason"] for r in rows] == ["", "proxy: duplicate share"]
    assert all(r["miner_difficulty"] == 2e-6 for r in rows)


async def test_a_stalled_pool_is_left_after_work_timeout(proxy_factory: Any) -> None:
    main, backup = TestPool(PoolConfig(seed=1)), TestPool(PoolConfig(seed=2))
    await main.start()
    await backup.start()
    proxy = await proxy_factory(
        [_url("main", main), _url("backup", backup)],
        **AGGREGATE,
        **{
            "aggregate.failback": "stay",
            "aggregate.job_keepalive_s": 0.5,
            "aggregate.work_timeout_s": 1.5,
            "limits.submit_timeout_s": 1.0,
        },
    )
    miner = TestMiner(
        MinerConfig(workers=("farm1.rig",), duration=5.0, pause=0.05, answer_timeout=2.0)
    )
    try:
        task = asyncio.create_task(miner.run("127.0.0.1", proxy.port))
        await main.wait_until(lambda: len(main.judged) >= 3, timeout=20)
        await main.stop_listening()  # a retry of main must fail: the backup is next
        main.stall()  # the connection stays open, nothing comes back any more
        await backup.wait_until(lambda: len(backup.judged) >= 3, timeout=20)
        async with asyncio.timeout(30):
            await task
    finally:
        await proxy.shutdown()
        await main.close()
        await backup.close()
    assert miner.reconnects == 0
    rows = proxy.rows()
    assert len(rows) == len(miner.submits)
    # Shares sent into the stall got no verdict: no_response, never "accepted".
    stalled = [r for r in rows if r["upstream"] == "main" and r["status"] == "no_response"]
    assert all(r["verdict_by"] == "" for r in stalled)
    accepted_main = {(j.worker, j.nonce) for j in main.judged if j.accepted}
    assert all(
        (r["worker"], r["nonce"]) in accepted_main
        for r in rows
        if r["upstream"] == "main" and r["status"] == "accepted"
    )
    assert any(r["upstream"] == "backup" and r["status"] == "accepted" for r in rows)


async def test_a_pool_that_allows_one_authorization_per_connection(proxy_factory: Any) -> None:
    pool = TestPool(PoolConfig(single_authorization=True))
    await pool.start()
    proxy = await proxy_factory([_url("main", pool)], **AGGREGATE)
    miners = [TestMiner(MinerConfig(workers=(f"farm1.rig{i}",), max_submits=4)) for i in range(2)]
    try:
        await _run(miners, proxy.port)
    finally:
        await proxy.shutdown()
        await pool.close()
    # The miners' own names were refused; their shares went under the pool user.
    assert {j.worker for j in pool.judged} == {"farm1"}
    assert all(j.accepted for j in pool.judged)
    rows = proxy.rows()
    assert len(rows) == 8 and all(r["status"] == "accepted" for r in rows)
    assert {r["worker"] for r in rows} == {"farm1.rig0", "farm1.rig1"}  # rows keep theirs


async def test_a_pool_changing_the_extranonce_moves_miners_without_dropping_them(
    proxy_factory: Any,
) -> None:
    pool = TestPool(PoolConfig(extranonce2_size=8))
    await pool.start()
    proxy = await proxy_factory([_url("main", pool)], **AGGREGATE)
    miner = TestMiner(MinerConfig(workers=("farm1.rig",), duration=4.0, pause=0.05))
    try:
        task = asyncio.create_task(miner.run("127.0.0.1", proxy.port))
        await pool.wait_until(lambda: len(pool.judged) >= 3, timeout=20)
        before = len(pool.judged)
        pool.set_extranonce(8)
        await pool.wait_until(lambda: len(pool.judged) >= before + 3, timeout=20)
        async with asyncio.timeout(30):
            await task
    finally:
        await proxy.shutdown()
        await pool.close()
    assert miner.reconnects == 0
    assert len({j.connection for j in pool.judged}) == 2  # a fresh connection, same pool
    rows = proxy.rows()
    assert len(rows) == len(miner.submits)
    assert all(r["status"] in ("accepted", "no_response") for r in rows if r["forwarded"])


async def _connected(proxy: Any, **options: Any) -> tuple[TestMiner, asyncio.Task[None]]:
    miner = TestMiner(MinerConfig(workers=("farm1.rig",), autosubmit=False, **options))
    task = asyncio.create_task(miner.run("127.0.0.1", proxy.port))
    await miner.wait_ready()
    await miner._wait_for(lambda: miner.job is not None, 10)
    return miner, task


async def test_stale_work_after_a_new_block_is_refused_or_judged_honestly(
    proxy_factory: Any,
) -> None:
    pool = TestPool(PoolConfig(difficulty=1e-5))  # the pool wants 10x the miner's difficulty
    await pool.start()
    proxy = await proxy_factory([_url("main", pool)], **AGGREGATE)
    miner, task = await _connected(proxy)
    try:
        old_job = miner.job
        pool.new_block()
        await miner._wait_for(lambda: miner.job is not old_job, 10)
        # Below the pool's target on the old block: the proxy refuses it as stale.
        local = await _submit_real_share(miner, old_job, above=1e-5)
        await miner.wait_answer(local)
        # On the new job: real work at the miner's difficulty, accepted by the proxy.
        fresh = await _submit_real_share(miner, above=1e-5)
        await miner.wait_answer(fresh)
        await miner.stop()
        await task
    finally:
        await proxy.shutdown()
        await pool.close()
    assert local.answer is not None and local.answer["error"][0] == 21
    assert fresh.accepted is True
    rows = proxy.rows()
    assert [(r["status"], r["reject_reason"], r["verdict_by"]) for r in rows] == [
        ("rejected", "proxy: stale job", "proxy"),
        ("accepted", "", "proxy"),
    ]
    assert pool.judged == []  # neither reached the pool: neither could be credited


async def test_a_silent_pools_job_is_resent_with_a_later_ntime(proxy_factory: Any) -> None:
    pool = TestPool(PoolConfig())  # sends no new job by itself
    await pool.start()
    proxy = await proxy_factory(
        [_url("main", pool)], **{**AGGREGATE, "aggregate.job_keepalive_s": 0.5}
    )
    miner, task = await _connected(proxy)
    try:
        first = miner.job
        assert first is not None
        await miner._wait_for(lambda: miner.job is not first, 5)
        keepalive = miner.job
        assert keepalive is not None
        assert keepalive.template.ntime > first.template.ntime
        record = await _submit_real_share(miner, keepalive)
        await miner.wait_answer(record)
        await miner.stop()
        await task
    finally:
        await proxy.shutdown()
        await pool.close()
    assert record.accepted is True
    (judged,) = pool.judged
    assert judged.accepted and judged.ntime == f"{keepalive.template.ntime:08x}"


async def test_vardiff_gives_a_fast_miner_a_higher_difficulty(proxy_factory: Any) -> None:
    pool = TestPool(PoolConfig(difficulty=1e-8))
    await pool.start()
    proxy = await proxy_factory(
        [_url("main", pool)],
        **{
            **AGGREGATE,
            "aggregate.min_difficulty": 1e-8,
            "aggregate.start_difficulty": 1e-6,
            "aggregate.max_difficulty": 1e-3,
            "aggregate.shares_per_minute": 120,
            "aggregate.retarget_s": 1.0,
            "aggregate.job_keepalive_s": 0.3,  # new difficulties go out with the next job
        },
    )
    fast = TestMiner(MinerConfig(workers=("farm1.fast",), duration=6.0))
    slow = TestMiner(MinerConfig(workers=("farm1.slow",), duration=6.0, pause=0.5, chunk=256))
    try:
        await _run([fast, slow], proxy.port)
    finally:
        await proxy.shutdown()
        await pool.close()
    rows = proxy.rows()
    last = {
        w: [r["miner_difficulty"] for r in rows if r["worker"] == w][-1]
        for w in ("farm1.fast", "farm1.slow")
    }
    assert last["farm1.fast"] > last["farm1.slow"]
    assert all(1e-8 <= r["miner_difficulty"] <= 1e-3 for r in rows)
    assert any(r["miner_difficulty"] != 1e-6 for r in rows)  # it did move
