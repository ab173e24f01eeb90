"""The test pool's misbehaviour knobs, and how the test miner copes with them."""

from __future__ import annotations

import asyncio

import pytest

from stratum_proxy.sim.miner import MinerConfig, TestMiner
from stratum_proxy.sim.pool import TestPool
from stratum_proxy.sim.pool_config import PoolConfig


async def run_against(config: PoolConfig, **options: object) -> tuple[TestPool, TestMiner]:
    pool = TestPool(config)
    await pool.start()
    miner = TestMiner(MinerConfig(**options))  # type: ignore[arg-type]
    try:
        await asyncio.wait_for(miner.run(pool.host, pool.port), 20)
    finally:
        await pool.close()
    return pool, miner


async def test_dropped_answers_leave_submits_unanswered() -> None:
    pool, miner = await run_against(PoolConfig(drop_every=2), max_submits=4, answer_timeout=0.3)
    assert [r.accepted for r in miner.submits] == [True, None, True, None]
    assert [s.answered for s in pool.judged] == [True, False, True, False]


async def test_held_answers_come_back_in_reverse_order() -> None:
    _, miner = await run_against(PoolConfig(hold_answers=2), max_submits=4)
    first, second, third, fourth = miner.submits
    assert all(r.accepted for r in miner.submits)
    assert first.answered_at and second.answered_at and third.answered_at and fourth.answered_at
    assert second.answered_at < first.answered_at
    assert fourth.answered_at < third.answered_at


async def test_answer_delay_shows_in_the_round_trip() -> None:
    _, miner = await run_against(PoolConfig(answer_delay=0.15), max_submits=2)
    # Event-loop timers may fire up to one clock tick (~1 ms) early.
    assert all(r.rtt is not None and r.rtt >= 0.15 - 0.005 for r in miner.submits)


async def test_garbage_lines_are_counted_and_skipped() -> None:
    _, miner = await run_against(PoolConfig(garbage_every=1), max_submits=3)
    assert all(r.accepted for r in miner.submits)
    assert miner.garbage_lines == 3


async def test_close_after_n_submits_ends_the_session_unanswered() -> None:
    pool, miner = await run_against(PoolConfig(close_after_submits=3), max_submits=10)
    assert len(pool.judged) == 2
    answered = [r for r in miner.submits if r.answer is not None]
    assert len(answered) == 2 and miner.submits[2].answer is None


async def test_client_reconnect_is_followed() -> None:
    pool = TestPool(PoolConfig())
    await pool.start()
    miner = TestMiner(MinerConfig(max_submits=40, pause=0.01))
    task = asyncio.create_task(miner.run(pool.host, pool.port))
    try:
        await miner.wait_submits(3)
        pool.send_reconnect()
        await asyncio.wait_for(task, 20)
    finally:
        await pool.close()
    assert miner.reconnects == 1
    assert {s.connection for s in pool.judged} == {1, 2}
    assert len({s.extranonce1 for s in pool.judged}) == 2  # unique per connection


async def test_stop_listening_refuses_then_resume_accepts() -> None:
    pool = TestPool(PoolConfig())
    await pool.start()
    try:
        await pool.stop_listening()
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(pool.host, pool.port)
        await pool.resume_listening()
        miner = TestMiner(MinerConfig(max_submits=2))
        await asyncio.wait_for(miner.run(pool.host, pool.port), 10)
    finally:
        await pool.close()
    assert [r.accepted for r in miner.submits] == [True, True]


async def test_miner_survives_a_huge_line_and_garbage() -> None:
    pool = TestPool(PoolConfig())
    await pool.start()
    miner = TestMiner(MinerConfig(max_submits=3, pause=0.05))
    task = asyncio.create_task(miner.run(pool.host, pool.port))
    try:
        await miner.wait_ready()
        pool.send_huge_line()
        pool.send_garbage()
        await asyncio.wait_for(task, 10)
    finally:
        await pool.close()
    assert miner.garbage_lines == 1
    assert [r.accepted for r in miner.submits] == [True, True, True]


async def test_pool_skips_bad_json_and_closes_on_an_endless_line() -> None:
    pool = TestPool(PoolConfig(max_line_bytes=4096))
    await pool.start()
    try:
        reader, writer = await asyncio.open_connection(pool.host, pool.port)
        writer.write(b"not json\n[1,2]\n" + b'{"id":7,"method":"mining.subscribe","params":[]}\n')
        answer = await asyncio.wait_for(reader.readline(), 5)
        assert answer.startswith(b'{"id":7,"result":[[["mining.set_difficulty"')
        assert pool.sessions[1].bad_lines == 2
        writer.write(b"x" * 10_000)
        rest = await asyncio.wait_for(reader.read(), 5)  # EOF: the pool hung up
        assert b"mining.notify" in rest
        writer.close()
    finally:
        await pool.close()


@pytest.mark.parametrize(("style", "expected"), [("const", {4}), ("str", None)])
async def test_submit_id_styles(style: str, expected: set[object] | None) -> None:
    _, miner = await run_against(PoolConfig(), max_submits=4, id_style=style)
    ids = [r.id for r in miner.submits]
    if expected is not None:
        assert set(ids) == expected
    else:
        assert all(isinstance(i, str) for i in ids) and len(set(ids)) == 4
    assert all(r.accepted and r.answer and r.answer["id"] == r.id for r in miner.submits)


async def test_set_difficulty_for_one_connection_only() -> None:
    pool = TestPool(PoolConfig())
    await pool.start()
    miners = [TestMiner(MinerConfig(autosubmit=False)) for _ in range(2)]
    tasks = [asyncio.create_task(m.run(pool.host, pool.port)) for m in miners]
    try:
        for miner in miners:
            await miner.wait_ready()
        pool.set_difficulty(2e-6, connection=1)
        await asyncio.sleep(0.05)
        difficulties = [m.job.difficulty if m.job else 0.0 for m in miners]
    finally:
        for miner in miners:
            await miner.stop()
        await asyncio.gather(*tasks)
        await pool.close()
    assert sorted(difficulties) == [1e-6, 2e-6]


async def test_a_pool_that_never_answers_ends_the_session_with_a_reason() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # reads everything, answers nothing
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    miner = TestMiner(MinerConfig(answer_timeout=0.2))
    try:
        await asyncio.wait_for(miner.run("127.0.0.1", port), 5)
    finally:
        server.close()
    assert miner.submits == []
    assert miner.errors == ["TimeoutError('no answer to mining.subscribe in 0.2s')"]
