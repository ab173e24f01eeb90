"""Translate mode: handshake and transport faults close the SV2 connection cleanly.

A wrong authority key, a tampered act 2, an expired certificate, a corrupted
encrypted frame and a refused SetupConnection each end that pool connection
with an error that says what is wrong; nothing is recorded that the miner did
not submit, the proxy keeps running, and miners fail over to the next SV2 pool.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stratum_proxy.sim.miner import MinerConfig, TestMiner
from stratum_proxy.sim.sv2_pool import Sv2PoolConfig, Sv2TestPool

FAULTS = {
    "wrong_key": (Sv2PoolConfig(sign_with=bytes(range(2, 34))), "not signed by the configured"),
    "tampered_act2": (Sv2PoolConfig(tamper_act2=True), "failed authentication"),
    "expired_cert": (Sv2PoolConfig(cert_age_s=3600 + 60), "pool certificate expired"),
    # Frame 4 is the first SetNewPrevHash: the channel is open, no job yet.
    "corrupt_frame": (Sv2PoolConfig(corrupt_frame=4), "failed authentication at nonce"),
    # SetupConnection.Error: the core's SetupRefused event ends the connection.
    "setup_refused": (
        Sv2PoolConfig(refuse_setup="unsupported-feature-flags"),
        "pool refused the connection setup",
    ),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_fault_closes_that_pool_and_miners_fail_over(proxy_factory: Any, fault: str) -> None:
    config, error = FAULTS[fault]
    bad, good = Sv2TestPool(config), Sv2TestPool()
    await bad.start()
    await good.start()
    proxy = await proxy_factory([bad.url("bad"), good.url("good")])
    miners = [TestMiner(MinerConfig(max_submits=2)) for _ in range(2)]
    try:
        async with asyncio.timeout(30):
            for miner in miners:  # one after the other: the first may meet the fault
                await miner.run("127.0.0.1", proxy.port)
        stats = proxy.server.selector.statistics()
    finally:
        assert await proxy.shutdown() == 0
        await bad.close()
        await good.close()
    assert error in stats["bad"]["last_error"]
    assert not bad.judged
    rows = proxy.rows()
    submitted = sum(len(m.submits) for m in miners)
    assert len(rows) == submitted >= 2
    assert {r["upstream"] for r in rows} == {"good"}
    assert {r["status"] for r in rows} == {"accepted"}


@pytest.mark.parametrize("fault", sorted(FAULTS))
async def test_fault_with_no_other_pool_closes_the_miner(proxy_factory: Any, fault: str) -> None:
    config, error = FAULTS[fault]
    bad = Sv2TestPool(config)
    await bad.start()
    proxy = await proxy_factory([bad.url("bad")])
    miner = TestMiner(MinerConfig(max_submits=2))
    try:
        async with asyncio.timeout(20):
            await miner.run("127.0.0.1", proxy.port)
        assert not miner.submits
        assert error in proxy.server.selector.statistics()["bad"]["last_error"]
        assert proxy.server.relays == set()
    finally:
        assert await proxy.shutdown() == 0
        await bad.close()
    assert proxy.rows() == []
