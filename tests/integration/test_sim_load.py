"""Load generator, byte relay, demo farm and the bench script, over loopback."""

from __future__ import annotations

import http.server
import importlib.machinery
import importlib.util
import json
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

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


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    """scripts/bench as a module, for its pure parts."""
    loader = importlib.machinery.SourceFileLoader("stratum_bench_script", str(BENCH))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_bench_api_load_options(bench: ModuleType) -> None:
    args = bench.parse_args(["--api-load", "--repeat", "6"])
    assert (args.api_load, args.api_interval, args.api_query, args.repeat) == (True, 1.0, [], 6)
    assert not bench.parse_args([]).api_load
    args = bench.parse_args(["--api-load", "--api-query", "SELECT 1", "--api-query", "SELECT 2"])
    assert args.api_query == ["SELECT 1", "SELECT 2"]
    for bad in (["--scenario", "idle"], ["--no-proxy"], ["--api-interval", "0"]):
        with pytest.raises(SystemExit):
            bench.parse_args(["--api-load", *bad])


def test_bench_api_load_summary_counts_by_status(bench: ModuleType) -> None:
    scrapes = [("200", 0.002), ("200", 0.004), ("500", 0.010)]
    queries = [("200", 1.5), ("400", 0.01), ("timeout", 60.0)]
    report = bench.api_load_summary(scrapes, queries, 1)
    assert report == {
        "scrapes": 3, "scrape_statuses": {"200": 2, "500": 1},
        "scrape_p50_ms": 4.0, "scrape_max_ms": 10.0,
        "queries": 3, "query_statuses": {"200": 1, "400": 1, "timeout": 1},
        "query_p50_s": 1.5, "query_max_s": 60.0, "queries_in_flight": 1,
    }  # fmt: skip
    line = bench.format_api_load(report)
    assert "3 scrapes (200: 2, 500: 1)" in line and "p50 4.0 ms, max 10.0 ms" in line
    assert "3 queries done (200: 1, 400: 1, timeout: 1)" in line
    empty = bench.api_load_summary([], [], 0)
    assert (empty["scrapes"], empty["queries"], empty["scrape_max_ms"]) == (0, 0, 0.0)
    assert "0 scrapes (none)" in bench.format_api_load(empty)


def _run_ratios(plain: float, loaded: float | None) -> dict[str, dict[str, float]]:
    run = {"proxy": {"throughput_ratio": plain, "added_p50_ms": 0.1, "added_p99_ms": 1.0}}
    if loaded is not None:
        run["proxy+api"] = {"throughput_ratio": loaded, "added_p50_ms": 0.2, "added_p99_ms": 2.0}
    return run


def test_bench_api_load_comparison_uses_the_run_medians(bench: ModuleType) -> None:
    runs = [_run_ratios(0.60, 0.57), _run_ratios(0.70, 0.63), _run_ratios(0.64, 0.64)]
    runs.append({"proxy": runs[0]["proxy"]})  # the loaded half of a run failed
    summary = bench.summarize(runs)
    assert summary["proxy+api"]["throughput_ratio"]["median"] == pytest.approx(0.63)
    comparison = bench.api_load_comparison(runs, summary)
    assert comparison["runs"] == 3
    assert (comparison["plain_median"], comparison["loaded_median"]) == pytest.approx((0.62, 0.63))
    assert comparison["loaded_over_plain"] == pytest.approx(round(0.63 / 0.62, 3))
    assert comparison["per_run"] == {"median": 0.95, "min": 0.9, "max": 1.0}
    line = bench.format_api_load_comparison(comparison)
    assert "x0.620 with the API idle, x0.630 under load; loaded/plain x1.016" in line
    only_plain = [_run_ratios(0.6, None)]
    assert "error" in bench.api_load_comparison(only_plain, bench.summarize(only_plain))


class _Api(http.server.BaseHTTPRequestHandler):
    seen: list[tuple[str, str, str | None, bytes]] = []

    def _answer(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")

    def do_GET(self) -> None:
        self.seen.append(("GET", self.path, self.headers.get("Authorization"), b""))
        self._answer(200)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append(("POST", self.path, self.headers.get("Authorization"), body))
        self._answer(400)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def api_port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_bench_api_request_never_raises(
    bench: ModuleType, api_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRATUM_PROXY_API__TOKEN", "s3cret")
    _Api.seen.clear()
    assert bench.api_request(api_port, "GET", "/metrics", None, 5)[0] == "200"
    assert bench.api_request(api_port, "POST", "/api/query", b"SELECT 1", 5)[0] == "400"
    assert _Api.seen == [
        ("GET", "/metrics", "Bearer s3cret", b""),
        ("POST", "/api/query", "Bearer s3cret", b"SELECT 1"),
    ]
    with socket.socket() as silent:  # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        assert bench.api_request(silent.getsockname()[1], "GET", "/metrics", None, 0.2)[0] == (
            "timeout"
        )
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    assert bench.api_request(port, "GET", "/metrics", None, 1)[0] == "error"
