"""The SV2 test miner against the SV2 test pool over loopback: real hashes, real verdicts."""

from __future__ import annotations

import asyncio

import pytest

from stratum_proxy.sim.sv2_miner import ACCEPTED, Sv2MinerConfig, Sv2TestMiner
from stratum_proxy.sim.sv2_pool import Sv2TestPool
from stratum_proxy.sim.sv2_pool_config import Sv2PoolConfig
from stratum_proxy.sv2.crypto import xonly_pubkey


def _key(pool: Sv2TestPool) -> bytes:
    return xonly_pubkey(pool.config.authority_secret)


@pytest.mark.parametrize("channel", ["standard", "extended"])
async def test_shares_hashed_by_the_miner_are_judged_by_the_pool(channel: str) -> None:
    pool = Sv2TestPool(Sv2PoolConfig())
    await pool.start()
    miner = Sv2TestMiner(
        Sv2MinerConfig(
            authority_key=_key(pool),
            channel=channel,  # type: ignore[arg-type]
            user_identity=f"farm.{channel}",
            max_submits=12,
            bad_share_every=4,
            update_after=3,
        )
    )
    task = asyncio.create_task(miner.run(pool.host, pool.port))
    try:
        async with asyncio.timeout(60):
            while len(miner.submits) < 5:  # UpdateChannel went out after the third
                await asyncio.sleep(0.01)
            (conn,) = pool.state.connections.values()
            await pool.wait_for(lambda: conn.updates == 1)
            await task
    finally:
        await pool.close()
    assert miner.errors == [] and miner.setup_error == "" and miner.open_error == ""
    assert len(miner.submits) == 12
    for submit in miner.submits:
        expected = ACCEPTED if submit.meant_valid else "difficulty-too-low"
        assert submit.verdict == expected, submit
    judged = {j.sequence_number: j for j in pool.judged}
    for submit in miner.submits:  # the pool hashed the same header as the miner
        assert judged[submit.sequence_number].hash_hex == submit.hash_int.to_bytes(32, "big").hex()
        assert judged[submit.sequence_number].user_identity == f"farm.{channel}"
    assert miner.updates_sent == 1


async def test_a_new_block_mid_stream_moves_the_miner_to_the_new_job() -> None:
    pool = Sv2TestPool(Sv2PoolConfig())
    await pool.start()
    miner = Sv2TestMiner(Sv2MinerConfig(authority_key=_key(pool), max_submits=40))
    task = asyncio.create_task(miner.run(pool.host, pool.port))
    try:
        async with asyncio.timeout(60):
            while len(miner.submits) < 5:
                await asyncio.sleep(0.01)
            first_job = miner.submits[0].job_id
            pool.new_block()
            await task
    finally:
        await pool.close()
    jobs = [s.job_id for s in miner.submits]
    assert jobs[0] == first_job and jobs[-1] != first_job  # it moved on
    stale = [s for s in miner.submits if s.verdict == "stale-share"]
    assert len(stale) <= 2  # at most the shares in flight when the block changed
    assert all(s.verdict == ACCEPTED for s in miner.submits if s.job_id != first_job)


async def test_a_wrong_authority_key_ends_in_the_handshake() -> None:
    pool = Sv2TestPool(Sv2PoolConfig())
    await pool.start()
    miner = Sv2TestMiner(Sv2MinerConfig(authority_key=bytes(range(32, 64)), max_submits=1))
    try:
        async with asyncio.timeout(20):
            await miner.run(pool.host, pool.port)
    finally:
        await pool.close()
    assert miner.submits == []
    (error,) = miner.errors
    assert (
        error.startswith("Sv2HandshakeError") and "not signed by the configured authority" in error
    )
