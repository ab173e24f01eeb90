"""TestMiner <-> TestPool over loopback: real hashing, real verdicts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from stratum_proxy.shares import Job, compute_share
from stratum_proxy.sim.chain import share_target
from stratum_proxy.sim.miner import MinerConfig, SubmitRecord, TestMiner
from stratum_proxy.sim.pool import TestPool
from stratum_proxy.sim.pool_config import ErrorShape, JudgedShare, PoolConfig

# Network difficulty ~2.9e-6: about a third of the 1e-6 shares are blocks, so 30
# shares hold both kinds except with odds of ~1e-5.
MIXED_NBITS = 0x1F055555


async def started(config: PoolConfig) -> TestPool:
    pool = TestPool(config)
    await pool.start()
    return pool


@pytest.fixture
async def pool() -> AsyncIterator[TestPool]:
    pool = await started(PoolConfig(nbits=MIXED_NBITS))
    yield pool
    await pool.close()


async def mine(pool: TestPool, **options: object) -> TestMiner:
    miner = TestMiner(MinerConfig(**options))  # type: ignore[arg-type]
    await asyncio.wait_for(miner.run(pool.host, pool.port), 20)
    return miner


def proxy_math(pool: TestPool, share: JudgedShare) -> tuple[str, float, bool]:
    """The proxy's own share math (stratum_proxy.shares) on the pool's job."""
    t = pool.templates[share.job_id]
    job = Job(
        job_id=t.job_id, prevhash=t.prevhash, coinb1=t.coinb1, coinb2=t.coinb2,
        merkle_branch=t.branch, version=t.version, nbits=t.nbits, ntime=t.ntime,
        clean_jobs=t.clean, extranonce1=bytes.fromhex(share.extranonce1),
        pool_difficulty=share.pool_difficulty,
    )  # fmt: skip
    result = compute_share(
        job, bytes.fromhex(share.extranonce2), int(share.ntime, 16), int(share.nonce, 16),
        share.version,
    )  # fmt: skip
    return result.hash_hex, result.difficulty, result.is_block


async def test_hashed_shares_are_accepted_and_match_the_proxy_math(pool: TestPool) -> None:
    miner = await mine(pool, max_submits=30, workers=("farm.a", "farm.b"))
    assert len(miner.submits) == 30
    assert all(record.accepted for record in miner.submits)
    assert len(pool.judged) == 30
    assert {share.worker for share in pool.judged} == {"farm.a", "farm.b"}
    for share in pool.judged:
        assert share.accepted and share.code == 0
        assert share.difficulty >= share.pool_difficulty == 1e-6
        assert proxy_math(pool, share) == (share.hash_hex, share.difficulty, share.is_block)
    assert 0 < sum(share.is_block for share in pool.judged) < 30


def reject_text(shape: ErrorShape, record: SubmitRecord) -> tuple[object, str]:
    """(code, message) read back from an answer in the given shape."""
    answer = record.answer
    assert answer is not None
    if shape is ErrorShape.LIST:
        assert answer["result"] is None
        return answer["error"][0], answer["error"][1]
    if shape is ErrorShape.CKPOOL:
        assert answer["result"] is False and answer["error"] is None
        return None, answer["reject-reason"]
    if shape is ErrorShape.STRING:
        assert answer["result"] is False
        return None, answer["error"]
    assert answer["jsonrpc"] == "2.0"
    return answer["error"]["code"], answer["error"]["message"]


@pytest.mark.parametrize("shape", list(ErrorShape))
async def test_low_difficulty_shares_are_rejected_in_each_error_shape(shape: ErrorShape) -> None:
    pool = await started(PoolConfig(error_shape=shape))
    try:
        miner = await mine(pool, max_submits=6, bad_share_every=2)
    finally:
        await pool.close()
    bad = [r for r in miner.submits if not r.meant_valid]
    good = [r for r in miner.submits if r.meant_valid]
    assert len(bad) == 3 and len(good) == 3
    assert all(r.accepted for r in good)
    for record in bad:
        assert record.accepted is False
        code, message = reject_text(shape, record)
        assert message == "Low difficulty share"
        assert code in (None, 23)
    low = [s for s in pool.judged if not s.accepted]
    assert len(low) == 3
    assert all(s.code == 23 and s.difficulty < s.pool_difficulty for s in low)


async def test_version_rolling_uses_the_granted_mask(pool: TestPool) -> None:
    miner = await mine(
        pool, max_submits=8, version_rolling=True, requested_mask=0xFFFFFFFF, nonce_range=4096
    )
    assert miner.version_mask == 0x1FFFE000  # the pool grants the intersection
    assert all(r.accepted for r in miner.submits)
    versions = set()
    for share in pool.judged:
        bits = int(share.version_bits or "", 16)
        assert bits & ~0x1FFFE000 == 0
        assert share.version == (0x20000000 & ~0x1FFFE000) | bits
        versions.add(share.version)
    assert len(versions) > 1  # rolled across work units


async def test_without_a_mask_the_miner_does_not_roll() -> None:
    pool = await started(PoolConfig(version_mask=0))
    try:
        miner = await mine(pool, max_submits=3, version_rolling=True)
    finally:
        await pool.close()
    assert miner.version_mask == 0
    assert all(len(r.params) == 5 and r.accepted for r in miner.submits)


async def connected(pool: TestPool, **options: object) -> tuple[TestMiner, asyncio.Task[None]]:
    """A miner that is connected and authorized but submits only what the test asks."""
    miner = TestMiner(MinerConfig(autosubmit=False, **options))  # type: ignore[arg-type]
    task = asyncio.create_task(miner.run(pool.host, pool.port))
    await miner.wait_ready()
    return miner, task


async def stop(miner: TestMiner, task: asyncio.Task[None]) -> None:
    await miner.stop()
    await asyncio.wait_for(task, 5)


def find_nonce(
    pool: TestPool, miner: TestMiner, job_id: str, en2: str, *, low: float, high: float
) -> int:
    """A nonce whose share difficulty lies in [low, high) — found with the proxy's math."""
    t = pool.templates[job_id]
    job = Job(
        job_id=job_id, prevhash=t.prevhash, coinb1=t.coinb1, coinb2=t.coinb2,
        merkle_branch=t.branch, version=t.version, nbits=t.nbits, ntime=t.ntime,
        clean_jobs=t.clean, extranonce1=miner.extranonce1, pool_difficulty=low,
    )  # fmt: skip
    for nonce in range(1 << 22):
        result = compute_share(job, bytes.fromhex(en2), t.ntime, nonce, t.version)
        if result.meets(share_target(low)) and not result.meets(share_target(high)):
            return nonce
    raise AssertionError("no nonce found")


async def submit_found(
    pool: TestPool,
    miner: TestMiner,
    job_id: str,
    *,
    low: float = 1e-6,
    high: float = 1.0,
    worker: str = "sim.worker1",
    en2: str = "0000000000000001",
) -> SubmitRecord:
    nonce = find_nonce(pool, miner, job_id, en2, low=low, high=high)
    ntime = f"{pool.templates[job_id].ntime:08x}"
    record = await miner.submit(worker, job_id, en2, ntime, f"{nonce:08x}")
    await miner.wait_answer(record)
    return record


async def test_duplicate_share_is_rejected(pool: TestPool) -> None:
    miner, task = await connected(pool)
    try:
        job_id = miner.job.template.job_id if miner.job else ""
        first = await submit_found(pool, miner, job_id)
        again = await miner.submit(*first.params)
        await miner.wait_answer(again)
    finally:
        await stop(miner, task)
    assert first.accepted is True
    assert again.accepted is False
    assert again.answer and again.answer["error"][:2] == [22, "Duplicate share"]
    assert [s.code for s in pool.judged] == [0, 22]


async def test_unknown_and_stale_jobs_are_rejected(pool: TestPool) -> None:
    miner, task = await connected(pool)
    try:
        old_job = miner.job.template.job_id if miner.job else ""
        unknown = await miner.submit("sim.worker1", "feed", "00" * 8, "6700000", "00000000")
        await miner.wait_answer(unknown)
        pool.new_block()
        await asyncio.sleep(0.05)
        stale = await submit_found(pool, miner, old_job)
    finally:
        await stop(miner, task)
    assert unknown.answer and unknown.answer["error"][:2] == [21, "Job not found"]
    assert stale.answer and stale.answer["error"][:2] == [21, "Stale job"]


async def test_unauthorized_workers_are_refused() -> None:
    pool = await started(PoolConfig(deny_workers=frozenset({"bad.worker"})))
    miner, task = await connected(pool, workers=("good.worker", "bad.worker"))
    try:
        job_id = miner.job.template.job_id if miner.job else ""
        refused = await submit_found(pool, miner, job_id, worker="bad.worker")
        stranger = await submit_found(
            pool, miner, job_id, worker="never.authorized", en2="00" * 7 + "02"
        )
        fine = await submit_found(pool, miner, job_id, worker="good.worker", en2="00" * 7 + "03")
    finally:
        await stop(miner, task)
        await pool.close()
    for record in (refused, stranger):
        assert record.answer and record.answer["error"][:2] == [24, "Unauthorized worker"]
    assert fine.accepted is True


async def test_set_difficulty_applies_to_jobs_notified_after_it(pool: TestPool) -> None:
    miner, task = await connected(pool)
    try:
        old_job = miner.job.template.job_id if miner.job else ""
        pool.set_difficulty(1e-3)
        await miner._wait_for(
            lambda: miner.job is not None and miner.job.template.job_id != old_job, 5
        )
        new_job = miner.job.template.job_id if miner.job else ""
        # Shares between the two difficulties: good on the old job, too low on the new one.
        on_old = await submit_found(pool, miner, old_job, low=1e-6, high=1e-3)
        on_new = await submit_found(pool, miner, new_job, low=1e-6, high=1e-3, en2="00" * 7 + "02")
    finally:
        await stop(miner, task)
    assert miner.jobs[new_job].difficulty == 1e-3
    assert on_old.accepted is True
    assert on_new.answer and on_new.answer["error"][:2] == [23, "Low difficulty share"]
    old_share, new_share = pool.judged
    assert (old_share.pool_difficulty, new_share.pool_difficulty) == (1e-6, 1e-3)
