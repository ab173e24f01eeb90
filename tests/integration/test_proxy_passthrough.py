"""Passthrough end to end over real loopback sockets.

Test miners hash for real; the test pool rebuilds every header with its own
code and is the oracle: every submit must be exactly one row carrying the
pool's difficulty computation and the pool's verdict.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from stratum_proxy.sim.miner import MinerConfig, TestMiner
from stratum_proxy.sim.pool import TestPool
from stratum_proxy.sim.pool_config import ErrorShape, JudgedShare, PoolConfig


def _key(worker: str, job_id: str, en2: str, ntime: str, nonce: str) -> tuple[str, ...]:
    return (worker, job_id, en2, ntime, nonce)


def _judged_key(j: JudgedShare) -> tuple[str, ...]:
    return _key(j.worker, j.job_id, j.extranonce2, j.ntime, j.nonce)


def _row_key(r: dict[str, Any]) -> tuple[str, ...]:
    return _key(r["worker"], r["job_id"], r["extranonce2"], r["ntime"], r["nonce"])


async def _mine(port: int, miners: list[TestMiner]) -> None:
    async with asyncio.timeout(60):
        await asyncio.gather(*(m.run("127.0.0.1", port) for m in miners))


def _assert_rows_match_pool(rows: list[dict[str, Any]], judged: list[JudgedShare]) -> None:
    by_key = {_row_key(r): r for r in rows}
    assert len(by_key) == len(rows), "a share was recorded twice"
    assert len(rows) == len(judged)
    for j in judged:
        row = by_key[_judged_key(j)]
        assert row["share_hash"] == j.hash_hex
        assert row["share_difficulty"] == pytest.approx(j.difficulty, rel=1e-12)
        assert row["pool_difficulty"] == pytest.approx(j.pool_difficulty, rel=1e-12)
        assert row["version"] == j.version
        assert row["is_block"] == j.is_block
        if j.accepted:
            assert (row["status"], row["reject_reason"]) == ("accepted", "")
        else:
            assert row["status"] == "rejected"
            assert j.reason in row["reject_reason"]


@pytest.mark.parametrize("shape", list(ErrorShape))
async def test_every_submit_is_one_row_with_the_pools_verdict(
    proxy_factory: Any, shape: ErrorShape
) -> None:
    pool = TestPool(PoolConfig(error_shape=shape))
    await pool.start()
    proxy = await proxy_factory([f"main=stratum+tcp://127.0.0.1:{pool.port}"])
    miners = [
        # BIP310 version rolling, two workers on one connection.
        TestMiner(
            MinerConfig(
                workers=("farm.a1", "farm.a2"),
                version_rolling=True,
                max_submits=12,
                bad_share_every=4,
            )
        ),
        # cpuminer: every submit has id 4.
        TestMiner(
            MinerConfig(workers=("farm.cpu",), id_style="const", max_submits=10, bad_share_every=3)
        ),
        # bmminer-style string ids.
        TestMiner(MinerConfig(workers=("farm.bm",), id_style="str", max_submits=10)),
    ]
    try:
        await _mine(proxy.port, miners)
    finally:
        assert await proxy.shutdown() == 0
        await pool.close()
    rows = proxy.rows()
    _assert_rows_match_pool(rows, pool.judged)
    assert sum(len(m.submits) for m in miners) == len(rows) == 32
    assert {r["upstream"] for r in rows} == {"main"}
    assert {r["worker"] for r in rows} == {"farm.a1", "farm.a2", "farm.cpu", "farm.bm"}
    assert any(r["status"] == "rejected" for r in rows)
    assert any(r["version_bits"] not in ("", "00000000") for r in rows)
    # The miner saw the pool's verdict, which is the verdict recorded.
    seen = {_key(s.worker, *s.params[1:5]): s.accepted for m in miners for s in m.submits}
    for row in rows:
        assert seen[_row_key(row)] == (row["status"] == "accepted")
        assert row["response_ms"] > 0


async def test_difficulty_follows_the_job_it_was_notified_with(proxy_factory: Any) -> None:
    pool = TestPool(PoolConfig(difficulty=1e-6))
    await pool.start()
    proxy = await proxy_factory([f"stratum+tcp://127.0.0.1:{pool.port}"])
    miner = TestMiner(MinerConfig(max_submits=40))
    try:
        task = asyncio.create_task(miner.run("127.0.0.1", proxy.port))
        await miner.wait_submits(10, timeout=30)
        pool.set_difficulty(2e-6)  # applies to the job notified after it
        await miner.wait_submits(25, timeout=30)
        pool.set_difficulty(5e-7, notify=False)  # no new job yet: old difficulty stays
        await asyncio.wait_for(task, 60)
    finally:
        await proxy.shutdown()
        await pool.close()
    rows = proxy.rows()
    _assert_rows_match_pool(rows, pool.judged)
    assert {r["pool_difficulty"] for r in rows} >= {1e-6, 2e-6}


async def test_unanswered_submits_become_no_response(proxy_factory: Any) -> None:
    pool = TestPool(PoolConfig(drop_every=3))
    await pool.start()
    proxy = await proxy_factory(
        [f"stratum+tcp://127.0.0.1:{pool.port}"], **{"limits.submit_timeout_s": 0.5}
    )
    miner = TestMiner(MinerConfig(max_submits=9, answer_timeout=1.5))
    try:
        await _mine(proxy.port, [miner])
        await asyncio.sleep(1.2)  # past the submit timeout
    finally:
        await proxy.shutdown()
        await pool.close()
    rows = proxy.rows()
    assert len(rows) == 9
    dropped = {_judged_key(j) for j in pool.judged if not j.answered}
    assert len(dropped) == 3
    for row in rows:
        expected = "no_response" if _row_key(row) in dropped else "accepted"
        assert row["status"] == expected
        if expected == "no_response":
            assert row["response_ms"] == 0
            assert row["share_difficulty"] > 0  # the share itself was still judged


async def test_pool_closing_mid_submit(proxy_factory: Any) -> None:
    pool = TestPool(PoolConfig(close_after_submits=3))
    await pool.start()
    proxy = await proxy_factory([f"stratum+tcp://127.0.0.1:{pool.port}"])
    miner = TestMiner(MinerConfig(max_submits=3, follow_reconnect=False, answer_timeout=1.0))
    try:
        with contextlib.suppress(ConnectionError, TimeoutError):
            await _mine(proxy.port, [miner])
    finally:
        await proxy.shutdown()
        await pool.close()
    rows = proxy.rows()
    assert [r["status"] for r in rows] == ["accepted", "accepted", "no_response"]
    assert "closed" in rows[-1]["reject_reason"]


async def test_failover_to_the_next_pool(proxy_factory: Any) -> None:
    dead = TestPool()
    await dead.start()
    dead_port = dead.port
    await dead.close()  # nothing listens there any more
    live = TestPool()
    await live.start()
    proxy = await proxy_factory(
        [
            f"first=stratum+tcp://127.0.0.1:{dead_port}",
            f"second=stratum+tcp://127.0.0.1:{live.port}",
        ]
    )
    miners = [TestMiner(MinerConfig(workers=(f"w{i}",), max_submits=3)) for i in range(3)]
    try:
        await _mine(proxy.port, miners)
        stats = proxy.server.selector.statistics()
    finally:
        await proxy.shutdown()
        await live.close()
    rows = proxy.rows()
    assert len(rows) == 9
    assert {r["upstream"] for r in rows} == {"second"}
    assert stats["first"]["up"] is False and stats["second"]["up"] is True


async def test_pool_garbage_is_forwarded_and_skipped(proxy_factory: Any) -> None:
    pool = TestPool(PoolConfig(garbage_every=2))
    await pool.start()
    proxy = await proxy_factory([f"stratum+tcp://127.0.0.1:{pool.port}"])
    miner = TestMiner(MinerConfig(max_submits=6))
    try:
        await _mine(proxy.port, [miner])
        skipped = proxy.server.counters["lines_skipped"]
    finally:
        await proxy.shutdown()
        await pool.close()
    assert miner.garbage_lines >= 2  # the miner saw exactly what the pool sent
    assert skipped >= 2
    rows = proxy.rows()
    assert len(rows) == 6 and all(r["status"] == "accepted" for r in rows)


async def test_disconnects_are_counted_by_the_side_that_closed(proxy_factory: Any) -> None:
    pool = TestPool(PoolConfig(close_after_submits=3))
    await pool.start()
    proxy = await proxy_factory([f"main=stratum+tcp://127.0.0.1:{pool.port}"])
    try:
        await _mine(proxy.port, [TestMiner(MinerConfig(workers=("a",), max_submits=2))])
        # The pool closes this one after its third submit.
        await _mine(
            proxy.port,
            [TestMiner(MinerConfig(workers=("b",), max_submits=5, follow_reconnect=False))],
        )
        async with asyncio.timeout(10):
            while len(proxy.server.relays):
                await asyncio.sleep(0.05)
        stats = proxy.server.statistics()
        assert stats.get("disconnects_by_miner") == 1, stats
        assert stats.get("disconnects_by_pool") == 1, stats
    finally:
        assert await proxy.shutdown() == 0
        await pool.close()


async def test_a_clean_stop_keeps_relaying_through_the_grace_and_loses_nothing(
    proxy_factory: Any,
) -> None:
    """Miners flooding through a stop: submits still reach the pool during the grace,
    every one the proxy read is a row, and the pool's verdicts are the recorded ones."""
    import time

    pool = TestPool(PoolConfig(answer_delay=0.01))
    await pool.start()
    proxy = await proxy_factory(
        [f"main=stratum+tcp://127.0.0.1:{pool.port}"], **{"limits.shutdown_grace_s": 1.0}
    )
    miners = [
        TestMiner(MinerConfig(workers=(f"f{i}",), follow_reconnect=False, answer_timeout=1))
        for i in range(3)
    ]
    tasks = [asyncio.create_task(m.run("127.0.0.1", proxy.port)) for m in miners]
    try:
        for m in miners:
            await m.wait_submits(5, timeout=20)
        stop_at = time.time()
        assert await proxy.shutdown() == 0
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await pool.close()
    rows = proxy.rows()
    by_key = {_row_key(r): r for r in rows}
    assert len(by_key) == len(rows), "a share was recorded twice"
    # The pair kept relaying after the stop began: shares sent then were judged.
    after = [s for m in miners for s in m.submits if s.sent_at > stop_at + 0.2 and s.answer]
    assert after, "no submit reached the pool during the shutdown grace"
    # Every share the pool judged is a row with the pool's verdict.
    for j in pool.judged:
        row = by_key[_judged_key(j)]
        if row["status"] != "no_response":
            assert (row["status"] == "accepted") == j.accepted
        else:  # judged after the grace: the pool's answer came too late to be heard
            assert row["reject_reason"].startswith("proxy stopping"), row
    # Every answered submit is a row; unanswered ones that are rows say why.
    for m in miners:
        for s in m.submits:
            key = _key(s.worker, *s.params[1:5])
            if s.answer is not None:
                assert key in by_key, s
    for row in rows:
        if row["status"] == "no_response":
            assert row["reject_reason"].startswith("proxy stopping"), row


async def _flood(port: int, count: int) -> tuple[int, dict[int, Any]]:
    """A hostile miner: subscribe, authorize, then ``count`` submits in one burst."""
    import orjson

    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b'{"id":1,"method":"mining.subscribe","params":[]}\n')
    writer.write(b'{"id":2,"method":"mining.authorize","params":["flood","x"]}\n')
    job_id = None
    while job_id is None:
        msg = orjson.loads(await reader.readline())
        if msg.get("method") == "mining.notify":
            job_id = msg["params"][0]
    burst = b"".join(
        orjson.dumps(
            {
                "id": 100 + i,
                "method": "mining.submit",
                "params": ["flood", job_id, f"{i:016x}", "6b13413b", f"{i:08x}"],
            }
        )
        + b"\n"
        for i in range(count)
    )
    writer.write(burst)
    answers: dict[int, Any] = {}
    async with asyncio.timeout(120):
        while len(answers) < count:
            msg = orjson.loads(await reader.readline())
            if isinstance(msg.get("id"), int) and msg["id"] >= 100:
                answers[msg["id"]] = msg
    writer.close()
    return count, answers


async def test_a_flooding_miner_is_slowed_and_every_verdict_lands_on_its_share(
    proxy_factory: Any,
) -> None:
    """20 000 pipelined submits from one connection beside an honest miner: the flood
    waits in its own socket (the proxy stops reading it), nothing is evicted, and
    every row carries the pool's verdict for that share."""
    pool = TestPool(PoolConfig(accept_any=True))
    await pool.start()
    proxy = await proxy_factory([f"main=stratum+tcp://127.0.0.1:{pool.port}"])
    honest = TestMiner(MinerConfig(workers=("honest",), max_submits=20))
    try:
        flood = asyncio.create_task(_flood(proxy.port, 20_000))
        await _mine(proxy.port, [honest])
        count, answers = await flood
        relays_stats = proxy.server.statistics()
    finally:
        assert await proxy.shutdown() == 0
        await pool.close()
    assert len(answers) == count
    assert relays_stats.get("miner_backlog_pauses", 0) > 0  # the flood was slowed
    assert relays_stats.get("evicted_requests", 0) == 0
    rows = proxy.rows()
    flood_rows = [r for r in rows if r["worker"] == "flood"]
    assert len(flood_rows) == count
    assert all(r["status"] == "accepted" for r in flood_rows)  # what the pool said
    assert [r["status"] for r in rows if r["worker"] == "honest"] == ["accepted"] * 20


async def test_idle_sockets_open_nothing_and_new_pool_connections_are_paced(
    proxy_factory: Any,
) -> None:
    """A storm of 200 sockets toward the proxy: no pool connection until a miner
    speaks, then at most the burst at once and the rest at the configured rate."""
    import time

    pool = TestPool(PoolConfig())
    await pool.start()
    proxy = await proxy_factory(
        [f"main=stratum+tcp://127.0.0.1:{pool.port}"],
        **{"limits.pool_connects_per_s": 50.0, "limits.pool_connect_burst": 10},
    )
    socks = []
    try:
        for _ in range(200):
            socks.append(await asyncio.open_connection("127.0.0.1", proxy.port))
        await asyncio.sleep(0.3)
        assert len(pool.sessions) == 0  # idle sockets: nothing upstream
        started = time.monotonic()
        for _, writer in socks[:60]:
            writer.write(b'{"id":1,"method":"mining.subscribe","params":[]}\n')
        await asyncio.sleep(0.2)
        # 10 at once, then 50/s: about 20 by now, never all 60.
        assert len(pool.sessions) <= 10 + 50 * (time.monotonic() - started) + 5
        await pool.wait_connections(60, timeout=10)
        assert time.monotonic() - started >= (60 - 10) / 50.0 * 0.9
        assert proxy.server.statistics().get("pool_connects_paced", 0) >= 40
    finally:
        for _, writer in socks:
            writer.close()
        assert await proxy.shutdown() == 0
        await pool.close()
