"""Translate mode: every SubmitShares.Error code, a new prev_hash mid-stream, lost verdicts.

SV1 test miners -> proxy (translate mode, embedded store) -> SV2 test pool,
over real loopback sockets.  The miner must see the pool's real verdict and
the row must say the same.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from stratum_proxy.sim import hasher
from stratum_proxy.sim.chain import share_target
from stratum_proxy.sim.miner import MinerConfig, TestMiner
from stratum_proxy.sim.sv2_pool import ERROR_CODES, Sv2PoolConfig, Sv2TestPool
from stratum_proxy.translate.jobs import sv1_error_code


async def _run_until(miner: TestMiner, port: int, answered: int) -> asyncio.Task[None]:
    task = asyncio.create_task(miner.run("127.0.0.1", port))
    await miner.wait_submits(answered, timeout=20)
    return task


async def _finish(miner: TestMiner, task: asyncio.Task[None]) -> None:
    await miner.stop()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(task, 10)


def _valid_nonce(miner: TestMiner, job: hasher.MinerJob, en2: bytes) -> int:
    t = job.template
    header = hasher.header76(t, t.header_prefix(miner.extranonce1, en2), t.version)
    nonce = hasher.search(header, share_target(job.difficulty), 0, 1 << 24)
    assert nonce is not None
    return nonce


async def test_each_pool_error_code_reaches_miner_and_row(proxy_factory: Any) -> None:
    pool = Sv2TestPool(Sv2PoolConfig(batch_size=3))
    await pool.start()
    pool.force_errors(*ERROR_CODES)
    proxy = await proxy_factory([pool.url("p")])
    total = len(ERROR_CODES) + 3
    miner = TestMiner(MinerConfig(max_submits=total, wait_answers=True))
    try:
        async with asyncio.timeout(60):
            await miner.run("127.0.0.1", proxy.port)
    finally:
        assert await proxy.shutdown() == 0
        await pool.close()
    rows = proxy.rows()
    assert len(rows) == len(pool.judged) == total
    codes = [j.error_code for j in pool.judged]
    assert codes == [*ERROR_CODES, "", "", ""]
    by_nonce = {r["nonce"]: r for r in rows}
    for submit, judged in zip(miner.submits, pool.judged, strict=True):
        row = by_nonce[submit.params[4]]
        assert row["share_hash"] == judged.hash_hex
        assert submit.answer is not None
        if judged.accepted:
            assert submit.accepted and row["status"] == "accepted"
            continue
        assert (row["status"], row["reject_reason"]) == ("rejected", judged.error_code)
        assert submit.answer["error"][:2] == [sv1_error_code(judged.error_code), judged.error_code]


async def test_new_prev_hash_cleans_jobs_and_old_shares_are_stale(proxy_factory: Any) -> None:
    pool = Sv2TestPool()
    await pool.start()
    proxy = await proxy_factory([pool.url("p")], **{"sv2.extranonce_mode": "aggregated"})
    miner = TestMiner(MinerConfig(pause=0.02))
    try:
        task = await _run_until(miner, proxy.port, 3)
        old_job = miner.job
        assert old_job is not None
        pool.new_block()
        async with asyncio.timeout(5):
            while miner.job is old_job:
                await asyncio.sleep(0.01)
        assert miner.job is not None and miner.job.template.clean
        assert miner.job.template.prevhash != old_job.template.prevhash
        en2 = bytes(miner.extranonce2_size)
        nonce = _valid_nonce(miner, old_job, en2)
        t = old_job.template
        stale = await miner.submit("late", t.job_id, en2.hex(), f"{t.ntime:08x}", f"{nonce:08x}")
        await miner.wait_answer(stale)
        await miner.wait_submits(len(miner.submits) + 2)
        await _finish(miner, task)
    finally:
        assert await proxy.shutdown() == 0
        await pool.close()
    assert stale.answer is not None and stale.answer["error"][:2] == [21, "stale-share"]
    rows = proxy.rows()
    assert len(rows) == len(miner.submits)
    late = [r for r in rows if r["worker"] == "late"]
    assert [(r["status"], r["reject_reason"]) for r in late] == [("rejected", "stale-share")]
    assert late[0]["share_difficulty"] > 0  # the old job was still known: hash computed
    after = [r for r in rows if r["job_id"] == miner.job.template.job_id]
    assert after and all(r["status"] == "accepted" for r in after)


async def test_lost_verdicts_become_no_response_and_miners_fail_over(proxy_factory: Any) -> None:
    silent = Sv2TestPool(Sv2PoolConfig(answer_shares=False))
    backup = Sv2TestPool()
    await silent.start()
    await backup.start()
    proxy = await proxy_factory(
        [silent.url("a"), backup.url("b")], **{"limits.submit_timeout_s": 30.0}
    )
    first = TestMiner(MinerConfig(max_submits=3, answer_timeout=10))
    second = TestMiner(MinerConfig(max_submits=3))
    try:
        task = asyncio.create_task(first.run("127.0.0.1", proxy.port))
        await silent.wait_judged(3)
        await silent.close()  # the pool goes away with three shares unanswered
        async with asyncio.timeout(10):
            await task
        async with asyncio.timeout(30):
            await second.run("127.0.0.1", proxy.port)
    finally:
        assert await proxy.shutdown() == 0
        await backup.close()
    assert [s.answer and s.answer["error"][:2] for s in first.submits] == [
        [20, "no response from pool"]
    ] * 3
    assert all(s.accepted for s in second.submits)
    rows = proxy.rows()
    lost = [r for r in rows if r["upstream"] == "a"]
    assert len(lost) == 3
    assert {r["status"] for r in lost} == {"no_response"}
    assert all(r["reject_reason"].startswith("pool closed the connection") for r in lost)
    assert all(r["share_difficulty"] > 0 for r in lost)
    moved = [r for r in rows if r["upstream"] == "b"]
    assert len(moved) == 3 and {r["status"] for r in moved} == {"accepted"}
    assert not proxy.server.selector.is_up(proxy.server.selector.pools[0])


async def test_unanswered_submit_is_answered_at_its_deadline(proxy_factory: Any) -> None:
    """The submit timeout is a timer armed for that submit, not a periodic sweep."""
    timeout = 0.4
    pool = Sv2TestPool(Sv2PoolConfig(answer_shares=False))
    await pool.start()
    proxy = await proxy_factory([pool.url("p")], **{"limits.submit_timeout_s": timeout})
    miner = TestMiner(MinerConfig(max_submits=3, wait_answers=True, answer_timeout=5))
    try:
        async with asyncio.timeout(20):
            await miner.run("127.0.0.1", proxy.port)
    finally:
        assert await proxy.shutdown() == 0
        await pool.close()
    assert len(pool.judged) == 3  # the pool got every submit and said nothing
    for submit in miner.submits:
        assert submit.answer is not None
        assert submit.answer["error"][:2] == [20, "no response from pool"]
        # A sweep every 0.25 s would answer up to 0.25 s late.
        assert submit.rtt is not None and timeout <= submit.rtt < timeout + 0.15
    rows = proxy.rows()
    assert [(r["status"], r["reject_reason"]) for r in rows] == [
        ("no_response", f"no answer from the pool within {timeout:g} s")
    ] * 3
