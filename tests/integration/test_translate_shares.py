"""Translate mode end to end: SV1 test miners -> proxy -> SV2 test pool, real loopback sockets.

The SV2 pool rebuilds every header with its own code (sim.chain) and is the
oracle: a forwarded share's row must carry the pool's hash, difficulty and
verdict, and the miner must have seen that same verdict.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stratum_proxy.sim.miner import MinerConfig, TestMiner
from stratum_proxy.sim.sv2_pool import Sv2Judged, Sv2PoolConfig, Sv2TestPool


def _row_key(row: dict[str, Any]) -> tuple[str, str, str, str]:
    return (row["job_id"], row["extranonce2"], row["ntime"], row["nonce"])


def _judged_key(j: Sv2Judged, extranonce2_size: int) -> tuple[str, str, str, str]:
    en2 = bytes.fromhex(j.extranonce)[-extranonce2_size:].hex()
    return (str(j.job_id), en2, f"{j.ntime:08x}", f"{j.nonce:08x}")


async def _mine(port: int, miners: list[TestMiner]) -> None:
    async with asyncio.timeout(60):
        await asyncio.gather(*(m.run("127.0.0.1", port) for m in miners))


def assert_rows_match_pool(
    rows: list[dict[str, Any]], judged: list[Sv2Judged], extranonce2_size: int = 4
) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    """Every share the pool judged is exactly one row with the pool's numbers and verdict."""
    by_key = {_row_key(r): r for r in rows}
    assert len(by_key) == len(rows), "a share was recorded twice"
    for j in judged:
        row = by_key[_judged_key(j, extranonce2_size)]
        assert row["share_hash"] == j.hash_hex
        assert row["share_difficulty"] == pytest.approx(j.difficulty, rel=1e-12)
        assert row["pool_difficulty"] == pytest.approx(j.pool_difficulty, rel=1e-12)
        assert row["version"] == j.version
        assert row["channel_id"] == j.channel_id
        assert row["protocol"] == "sv1"
        if j.accepted:
            assert (row["status"], row["reject_reason"]) == ("accepted", "")
        else:
            assert (row["status"], row["reject_reason"]) == ("rejected", j.error_code)
    return by_key


def _miners() -> list[TestMiner]:
    return [
        TestMiner(
            MinerConfig(
                workers=("farm.a1", "farm.a2"),
                version_rolling=True,
                max_submits=10,
                bad_share_every=4,
            )
        ),
        TestMiner(MinerConfig(workers=("farm.cpu",), id_style="const", max_submits=8)),
        TestMiner(MinerConfig(workers=("farm.bm",), id_style="str", max_submits=8)),
    ]


@pytest.mark.parametrize("mode", ["per_miner", "aggregated"])
@pytest.mark.parametrize("batch", [1, 4])
async def test_shares_carry_the_pools_verdict(proxy_factory: Any, mode: str, batch: int) -> None:
    pool = Sv2TestPool(Sv2PoolConfig(batch_size=batch, segwit_coinbase=True))
    await pool.start()
    proxy = await proxy_factory([pool.url("sv2main")], **{"sv2.extranonce_mode": mode})
    miners = _miners()
    try:
        await _mine(proxy.port, miners)
    finally:
        assert await proxy.shutdown() == 0
        await pool.close()
    rows = proxy.rows()
    by_key = assert_rows_match_pool(rows, pool.judged)
    submits = [s for m in miners for s in m.submits]
    assert len(rows) == len(submits) == 26
    assert {r["upstream"] for r in rows} == {"sv2main"}
    assert {r["worker"] for r in rows} == {"farm.a1", "farm.a2", "farm.cpu", "farm.bm"}
    # Deliberately bad nonces never reach the pool: rejected here, still one row each.
    local = [r for r in rows if r["reject_reason"] == "proxy: below pool target"]
    assert len(local) == sum(1 for s in submits if not s.meant_valid) > 0
    assert len(pool.judged) == len(rows) - len(local)
    assert all(j.accepted for j in pool.judged)
    # The miner saw exactly the verdict that was recorded.
    for miner in miners:
        for s in miner.submits:
            row = by_key[(s.params[1], s.params[2], s.params[3], s.params[4])]
            assert s.accepted == (row["status"] == "accepted")
    channels = {r["channel_id"] for r in rows}
    assert len(channels) == (3 if mode == "per_miner" else 1)
    assert any(r["version_bits"] for r in rows)
