"""The test pool's knobs for pool-side failures, over loopback with the test miner.

Dropping connections, stalling, changing the extranonce of live connections and
allowing one authorization per connection: the aggregate-mode edge tests build
on these, so each must do exactly what it says.
"""

from __future__ import annotations

import asyncio
import contextlib

import orjson
import pytest

from stratum_proxy.shares.math import DIFF1_TARGET
from stratum_proxy.sim import hasher
from stratum_proxy.sim.miner import MinerConfig, SubmitRecord, TestMiner
from stratum_proxy.sim.pool import TestPool
from stratum_proxy.sim.pool_config import PoolConfig


async def _started(config: PoolConfig | None = None) -> TestPool:
    pool = TestPool(config or PoolConfig())
    await pool.start()
    return pool


async def _connected(pool: TestPool, **options: object) -> tuple[TestMiner, asyncio.Task[None]]:
    """A miner that handshakes and then only submits what the test builds."""
    miner = TestMiner(MinerConfig(autosubmit=False, answer_timeout=0.5, **options))  # type: ignore[arg-type]
    task = asyncio.create_task(miner.run(pool.host, pool.port))
    await miner.wait_ready()
    return miner, task


async def _stop(miner: TestMiner, task: asyncio.Task[None]) -> None:
    await miner.stop()
    await asyncio.wait_for(task, 10)


def _nonce(job: hasher.MinerJob, extranonce1: bytes, extranonce2: bytes) -> int:
    t = job.template
    header = hasher.header76(t, t.header_prefix(extranonce1, extranonce2), t.version)
    nonce = hasher.search(header, int(DIFF1_TARGET / job.difficulty), 0, 1 << 24)
    assert nonce is not None
    return nonce


async def _share(
    miner: TestMiner,
    worker: str = "sim.worker1",
    *,
    job: hasher.MinerJob | None = None,
    extranonce1: bytes | None = None,
    extranonce2_size: int | None = None,
    tag: int = 1,
) -> SubmitRecord:
    """A real share (by default on the miner's current job and extranonce), answered."""
    job = job or miner.job
    assert job is not None
    en1 = miner.extranonce1 if extranonce1 is None else extranonce1
    size = miner.extranonce2_size if extranonce2_size is None else extranonce2_size
    en2 = tag.to_bytes(size, "big")
    nonce = _nonce(job, en1, en2)
    t = job.template
    record = await miner.submit(worker, t.job_id, en2.hex(), f"{t.ntime:08x}", f"{nonce:08x}")
    await miner.wait_answer(record)
    return record


async def test_a_stalled_pool_keeps_the_connection_but_sends_nothing() -> None:
    pool = await _started()
    miner, task = await _connected(pool)
    try:
        before = await _share(miner, tag=1)
        pool.stall()
        job = miner.job
        pool.new_job(clean=True)
        pool.set_difficulty(2e-6)
        unanswered = await _share(miner, tag=2)  # waits answer_timeout, in vain
        assert miner.job is job and miner.difficulty == 1e-6  # no job, no difficulty
        # A connection opened now is accepted, and its subscribe is never answered.
        reader, writer = await asyncio.open_connection(pool.host, pool.port)
        writer.write(b'{"id":1,"method":"mining.subscribe","params":[]}\n')
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.readline(), 0.3)
        assert len(pool.sessions) == 2 and not miner.errors
        writer.close()
        pool.unstall()
        # The stalled set_difficulty never arrived: the pool says it again, with a job.
        pool.set_difficulty(1e-6)
        await miner.wait_until(lambda: miner.job is not job, 5)
        after = await _share(miner, tag=3)
    finally:
        await _stop(miner, task)
        await pool.close()
    assert before.accepted is True and after.accepted is True
    assert unanswered.answer is None
    # The verdict log still holds the stalled submit, marked as never answered.
    assert [(j.accepted, j.answered) for j in pool.judged] == [
        (True, True),
        (True, False),
        (True, True),
    ]


async def test_stalling_one_connection_leaves_the_others_alone() -> None:
    pool = await _started()
    (quiet, quiet_task), (busy, busy_task) = [await _connected(pool) for _ in range(2)]
    try:
        pool.stall(connection=1)
        stalled_job = quiet.job
        pool.new_job(clean=True)
        await busy.wait_until(lambda: busy.job is not None and busy.job.template.clean, 5)
        fine = await _share(busy)
        lost = await _share(quiet)
        # New connections are not stalled: only the pool-wide stall does that.
        late, late_task = await _connected(pool)
        await _stop(late, late_task)
    finally:
        await _stop(quiet, quiet_task)
        await _stop(busy, busy_task)
        await pool.close()
    assert quiet.job is stalled_job
    assert fine.accepted is True and lost.answer is None


async def test_set_extranonce_changes_a_live_connection() -> None:
    pool = await _started(PoolConfig(extranonce2_size=8))
    (follower, follower_task), (other, other_task) = [
        await _connected(pool, extranonce_subscribe=True) for _ in range(2)
    ]
    try:
        old_job, old_en1 = follower.job, follower.extranonce1
        other_en1 = other.extranonce1
        pool.set_extranonce(3, connection=1)
        await follower.wait_until(lambda: follower.job is not old_job, 5)
        assert follower.extranonce_changes == 1 and follower.extranonce2_size == 3
        assert follower.extranonce1 == bytes(b ^ 0xFF for b in old_en1)
        assert follower.job is not None and follower.job.template.clean
        fresh = await _share(follower, tag=1)
        # Built with the old extranonce on a job that is not stale: the pool now
        # counts 3 bytes of extranonce2, so it is refused for its length.
        old_size = await _share(
            follower, job=old_job, extranonce1=old_en1, extranonce2_size=8, tag=2
        )
        untouched = await _share(other, tag=3)  # connection 2 was not told anything
    finally:
        await _stop(follower, follower_task)
        await _stop(other, other_task)
        await pool.close()
    assert fresh.accepted is True and untouched.accepted is True
    assert old_size.answer is not None
    assert old_size.answer["error"][:2] == [20, "Invalid extranonce2 length"]
    assert other.extranonce_changes == 0 and other.extranonce1 == other_en1
    by_connection = {j.connection: j for j in pool.judged if j.accepted}
    assert by_connection[1].extranonce1 == follower.extranonce1.hex()
    assert len(by_connection[1].extranonce2) == 6
    assert by_connection[2].extranonce1 == other_en1.hex()


async def test_only_the_first_authorization_of_a_connection_succeeds() -> None:
    pool = await _started(PoolConfig(single_authorization=True))
    try:
        reader, writer = await asyncio.open_connection(pool.host, pool.port)
        lines = [
            {"id": 1, "method": "mining.subscribe", "params": []},
            {"id": 2, "method": "mining.authorize", "params": ["farm", "x"]},
            {"id": 3, "method": "mining.authorize", "params": ["farm.rig1", "x"]},
            {"id": 4, "method": "mining.authorize", "params": ["farm", "x"]},
        ]
        writer.write(b"".join(orjson.dumps(line) + b"\n" for line in lines))
        answers: dict[object, object] = {}
        async with asyncio.timeout(5):
            while len(answers) < 3:
                message = orjson.loads(await reader.readline())
                if message.get("id") in (2, 3, 4):
                    answers[message["id"]] = message["error"] or message["result"]
        writer.close()
        # A second connection starts over: its first authorization is its own.
        miner, task = await _connected(pool, workers=("farm.rig1", "farm.rig2"))
        first = await _share(miner, "farm.rig1", tag=1)
        second = await _share(miner, "farm.rig2", tag=2)
        await _stop(miner, task)
    finally:
        await pool.close()
    assert answers[2] is True
    assert answers[3] == [24, "Unauthorized worker", None]
    assert answers[4] == [24, "Unauthorized worker", None]
    assert first.accepted is True
    assert second.answer is not None and second.answer["error"][:2] == [24, "Unauthorized worker"]


@pytest.mark.parametrize("abort", [False, True])
async def test_drop_connections_keeps_listening(abort: bool) -> None:
    pool = await _started()
    connected = [await _connected(pool) for _ in range(2)]
    try:
        assert pool.drop_connections(abort=abort) == 2
        async with asyncio.timeout(5):
            await asyncio.gather(*(task for _, task in connected))
        assert all(miner.errors for miner, _ in connected)  # each session ended with a reason
        await pool.wait_until(lambda: not pool.sessions, 5)
        again, again_task = await _connected(pool)  # still listening
        record = await _share(again)
        await _stop(again, again_task)
    finally:
        for _, task in connected:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await pool.close()
    assert record.accepted is True
