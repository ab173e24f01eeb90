"""Load generator, byte relay, demo farm and the bench script, over loopback."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stratum_proxy.sim.demo import FarmConfig, run_demo
from stratum_proxy.sim.loadgen import IdleFarm, LoadConfig, run_load
from stratum_proxy.sim.miner import MinerConfig, TestMiner
from stratum_proxy.sim.pool import TestPool
from stratum_proxy.sim.pool_config import PoolConfig
from stratum_proxy.sim.relay import ByteRelay

BENCH = Path(__file__).resolve().parents[2] / "scripts" / "bench"


@pytest.fixture
async def load_pool() -> AsyncIterator[TestPool]:
    pool = TestPool(PoolConfig(accept_any=True, record_judged=False))
    await pool.start()
    yield pool
    await pool.close()


async def test_closed_loop_measures_every_answer(load_pool: TestPool) -> None:
    config = LoadConfig(
        host=load_pool.host, port=load_pool.port, connections=5, seconds=0.3, warmup=0.1
    )
    summary = (await run_load(config)).summary()
    assert summary["connections"] == 5 and summary["failed"] == 0
    assert summary["answered"] > 50 and summary["rejected"] == 0
    # Closed loop: at most one submit in flight per connection when the window ends.
    assert 0 <= int(summary["sent"]) - int(summary["answered"]) <= 5
    assert 0 < summary["p50_ms"] <= summary["p99_ms"] <= summary["max_ms"]
    assert load_pool.verdicts["accepted"] >= summary["answered"]


async def test_open_loop_keeps_the_requested_rate(load_pool: TestPool) -> None:
    config = LoadConfig(
        host=load_pool.host, port=load_pool.port, mode="open", connections=4,
        rate=1000, seconds=0.5, warmup=0.1,
    )  # fmt: skip
    result = await run_load(config)
    assert 400 <= result.sent <= 600
    assert result.answered >= result.sent - 20
    assert len(result.rtt_ns) == result.answered


async def test_rejections_are_counted_by_a_judging_pool() -> None:
    pool = TestPool(PoolConfig(difficulty=1.0))  # no unhashed nonce meets difficulty 1
    await pool.start()
    try:
        config = LoadConfig(host=pool.host, port=pool.port, connections=2, seconds=0.2, warmup=0)
        result = await run_load(config)
    finally:
        await pool.close()
    assert result.answered > 0 and result.rejected == result.answered
    assert set(pool.verdicts) == {"Low difficulty share"}


async def test_idle_connections_stay_open_until_closed(load_pool: TestPool) -> None:
    farm = await IdleFarm.open(load_pool.host, load_pool.port, 60)
    try:
        assert (len(farm.conns), farm.failed) == (60, 0)
        assert len(load_pool.sessions) == 60
        assert all(session.workers for session in load_pool.sessions.values())
    finally:
        await farm.close()
    await load_pool.wait_until(lambda: not load_pool.sessions, timeout=5)


async def test_miner_through_the_byte_relay() -> None:
    pool = TestPool(PoolConfig())
    await pool.start()
    relay = ByteRelay(pool.host, pool.port)
    await relay.start()
    try:
        miner = TestMiner(MinerConfig(max_submits=5, version_rolling=True))
        await miner.run(relay.host, relay.port)
    finally:
        await relay.close()
        await pool.close()
    assert [r.accepted for r in miner.submits] == [True] * 5
    assert [s.nonce for s in pool.judged] == [r.params[4] for r in miner.submits]


async def test_run_demo_through_a_started_middle() -> None:
    started: list[ByteRelay] = []

    async def start_relay(host: str, port: int) -> tuple[str, int]:
        relay = ByteRelay(host, port)
        await relay.start()
        started.append(relay)
        return relay.host, relay.port

    frames: list[str] = []
    config = FarmConfig(miners=2, workers_per_miner=2, block_interval=0.2)
    try:
        rows = await run_demo(
            start_proxy=start_relay, config=config, seconds=0.6, refresh=0.3, out=frames.append
        )
    finally:
        for relay in started:
            await relay.close()
    assert len(frames) == 2
    assert f":{started[0].port}," in frames[0]
    workers = sorted(r.worker for r in rows)
    assert workers == ["demo.rig1w1", "demo.rig1w2", "demo.rig2w1", "demo.rig2w2"]
    assert all(r.accepted > 0 and r.hashrate > 0 for r in rows)


def test_bench_script_direct_and_relay() -> None:
    command = [
        sys.executable, str(BENCH), "--scenario", "closed", "--miners", "4", "--seconds", "0.5",
        "--warmup", "0.1", "--relay", "--no-proxy", "--json-only",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    results = report["results"]
    assert set(results) == {"direct", "relay"}
    for figures in results.values():
        assert figures["connections"] == 4 and figures["shares_per_s"] > 0
        # CPU time of the serving process over the window, per answered share
        assert 0 < figures["cpu_us_per_share"] < 100_000
    assert report["ratios"]["relay"]["throughput_ratio"] > 0


def test_bench_repeat_prints_each_run_then_medians() -> None:
    command = [
        sys.executable, str(BENCH), "--scenario", "closed", "--miners", "4", "--seconds", "0.3",
        "--warmup", "0.1", "--relay", "--no-proxy", "--json-only", "--repeat", "2",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    *runs, last = [json.loads(line) for line in done.stdout.strip().splitlines()]
    assert len(runs) == 2 and all("results" in run for run in runs)
    assert last["repeat"] == 2
    ratios = sorted(run["ratios"]["relay"]["throughput_ratio"] for run in runs)
    figures = last["summary"]["relay"]["throughput_ratio"]
    assert (figures["min"], figures["max"]) == (ratios[0], ratios[1])
    assert figures["median"] == pytest.approx(sum(ratios) / 2)
