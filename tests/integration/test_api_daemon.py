"""The API beside real mining: a heavy query never holds up recording, and never a stop.

Test miners hash for real through the daemon to the test pool; the query runs
through the daemon's own HTTP API, on the real embedded engine.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from helpers.daemon_process import free_port, wait_port

from stratum_proxy.sim.miner import MinerConfig, TestMiner
from stratum_proxy.sim.pool import TestPool
from stratum_proxy.sim.pool_config import PoolConfig

# Seconds of pure CPU per billion rows, far more than any limit below.
HEAVY = "SELECT count() FROM numbers(100000000000) WHERE sipHash64(number) % 7 = 0"


async def _pipeline(session: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    async with session.get(f"{base}/api/stats") as response:
        assert response.status == 200
        return dict((await response.json())["pipeline"])


async def _wait_store_open(session: aiohttp.ClientSession, base: str) -> None:
    async with asyncio.timeout(30):
        while not (await _pipeline(session, base))["store_up"]:
            await asyncio.sleep(0.1)


async def test_heavy_query_while_mining_rows_keep_being_written(proxy_factory: Any) -> None:
    pool = TestPool(PoolConfig())
    await pool.start()
    proxy = await proxy_factory(
        [f"stratum+tcp://127.0.0.1:{pool.port}"],
        **{"api.query_timeout_s": 3.0},
    )
    assert proxy.api is not None
    base = f"http://127.0.0.1:{proxy.api[1]}"
    miners = [TestMiner(MinerConfig(workers=(f"w{i}",), duration=6.0)) for i in range(2)]
    tasks = [asyncio.create_task(m.run("127.0.0.1", proxy.port)) for m in miners]
    samples: list[tuple[float, int]] = []
    try:
        async with asyncio.timeout(60), aiohttp.ClientSession() as session:
            await _wait_store_open(session, base)
            await miners[0].wait_submits(3, timeout=20)

            async def heavy() -> tuple[int, str]:
                async with session.post(f"{base}/api/query", data=HEAVY) as response:
                    return response.status, await response.text()

            query = asyncio.create_task(heavy())
            started = time.monotonic()
            while not query.done():
                written = (await _pipeline(session, base))["rows_written"]
                samples.append((time.monotonic() - started, written))
                await asyncio.sleep(0.25)
            status, body = await query
            elapsed = time.monotonic() - started
            # The engine cancelled it at its limit; the API said so.
            assert status == 504, body
            assert "TIMEOUT_EXCEEDED" in body or "did not finish" in body
            assert elapsed < 3.0 + 6.0
            # A light query right after works: the slot was freed.
            async with session.post(f"{base}/api/query", data="SELECT 1") as response:
                assert response.status == 200 and await response.read() == b"1\n"
        await asyncio.gather(*tasks)
    finally:
        assert await proxy.shutdown() == 0
        await pool.close()
    # Recording went on while the query ran: rows written grew during it.
    during = [n for t, n in samples if t > 0.5]
    assert len(during) >= 3 and during[-1] > during[0], samples
    rows = proxy.rows()
    assert len(rows) == sum(len(m.submits) for m in miners) == len(pool.judged)
    assert all(r["status"] == "accepted" for r in rows)


@pytest.mark.slow
async def test_sigterm_during_a_long_query_exits_cleanly_in_time(tmp_path: Path) -> None:
    """A query running far longer than the grace period does not hold up a clean stop."""
    pool = TestPool(PoolConfig())
    await pool.start()
    port, api_port = free_port(), free_port()
    log_path = tmp_path / "proxy.log"
    grace = 2.0
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "stratum_proxy.cli",
                "run",
                "--listen",
                f"127.0.0.1:{port}",
                "--pool",
                f"stratum+tcp://127.0.0.1:{pool.port}",
                "--store",
                f"chdb://{tmp_path}/db",
                "--spool-dir",
                str(tmp_path / "spool"),
                "--api-listen",
                f"127.0.0.1:{api_port}",
                "--log-format",
                "json",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={
                **os.environ,
                "STRATUM_PROXY_API__QUERY_TIMEOUT_S": "60",
                "STRATUM_PROXY_LIMITS__SHUTDOWN_GRACE_S": str(grace),
            },
        )
        miner = TestMiner(MinerConfig(workers=("w",), follow_reconnect=False, answer_timeout=3))
        try:
            await wait_port(port, proc)
            await wait_port(api_port, proc)
            mining = asyncio.create_task(miner.run("127.0.0.1", port))
            await miner.wait_submits(3, timeout=30)
            async with aiohttp.ClientSession() as session:
                await _wait_store_open(session, f"http://127.0.0.1:{api_port}")
                query = asyncio.create_task(
                    session.post(f"http://127.0.0.1:{api_port}/api/query", data=HEAVY)
                )
                await asyncio.sleep(1.0)  # the query is running in the engine
                assert not query.done()
                started = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                rc = await asyncio.to_thread(proc.wait, 30)
                stopped_in = time.monotonic() - started
                query.cancel()
                await asyncio.gather(query, return_exceptions=True)
            await asyncio.gather(mining, return_exceptions=True)
        finally:
            if proc.poll() is None:
                proc.kill()
            await pool.close()
    log = log_path.read_text()
    assert rc == 0, log
    assert '"event":"proxy_stopped"' in log
    # The stop: grace for the pool's answers, the store flush, engine shutdown.
    assert stopped_in < grace + 10, log
    events = [orjson.loads(line).get("event") for line in log.splitlines() if line[:1] == "{"]
    assert "pipeline_closed" in events


async def test_the_issues_attacks_over_http_are_refused(proxy_factory: Any) -> None:
    """The attacks, as an operator's curl would send them, against the daemon's own store."""
    pool = TestPool(PoolConfig())
    await pool.start()
    proxy = await proxy_factory([f"stratum+tcp://127.0.0.1:{pool.port}"])
    assert proxy.api is not None
    base = f"http://127.0.0.1:{proxy.api[1]}"
    miner = TestMiner(MinerConfig(workers=("w",), max_submits=5))
    try:
        await miner.run("127.0.0.1", proxy.port)
        async with asyncio.timeout(60), aiohttp.ClientSession() as session:
            await _wait_store_open(session, base)

            async def query(sql: str) -> tuple[int, str]:
                async with session.post(f"{base}/api/query", data=sql) as response:
                    return response.status, await response.text()

            async with asyncio.timeout(10):
                while (await query("SELECT count() FROM mining.shares"))[1] != "5\n":
                    await asyncio.sleep(0.1)
            for attack in (
                "SELECT * FROM file('/etc/passwd', 'LineAsString')",
                "DROP TABLE mining.shares",
                "SET readonly=0; DROP TABLE mining.shares",
                "INSERT INTO mining.shares (worker, pool_difficulty) VALUES ('forged', 1e15)",
                "ALTER TABLE mining.shares DELETE WHERE worker = 'w'",
                "SELECT * FROM url('http://127.0.0.1:1/', 'CSV', 'a String')",
                "INSERT INTO FUNCTION file('/tmp/sp_pwned2', 'TSV') SELECT 1",
            ):
                status, text = await query(attack)
                assert status == 403, (attack, status, text)
                assert text.strip()
            status, text = await query("SELEC 1")
            assert status == 400 and "Syntax error" in text
            assert await query("SELECT count(), uniqExact(worker) FROM mining.shares") == (
                200,
                "5\t1\n",
            )
    finally:
        assert await proxy.shutdown() == 0
        await pool.close()
    assert not Path("/tmp/sp_pwned2").exists()
    assert len(proxy.rows()) == 5


async def test_healthz_is_degraded_while_the_store_is_unreachable(proxy_factory: Any) -> None:
    pool = TestPool(PoolConfig())
    await pool.start()
    proxy = await proxy_factory(
        [f"stratum+tcp://127.0.0.1:{pool.port}"],
        **{
            "store.url": "clickhouse://default:@127.0.0.1:1/mining",
            "api.health_write_stale_s": 0.5,
        },
    )
    assert proxy.api is not None
    base = f"http://127.0.0.1:{proxy.api[1]}"
    miner = TestMiner(MinerConfig(workers=("w",), max_submits=3))
    try:
        await miner.run("127.0.0.1", proxy.port)
        async with asyncio.timeout(20), aiohttp.ClientSession() as session:
            while True:
                async with session.get(f"{base}/healthz") as response:
                    body = await response.json()
                    if response.status == 503:
                        break
                await asyncio.sleep(0.1)
            assert body["status"] == "degraded"
            codes = {reason.split(":", 1)[0] for reason in body["reasons"]}
            assert {"write_stale", "store_down"} <= codes, body
            async with session.get(f"{base}/livez") as response:
                assert response.status == 200  # alive: only waiting for its store
    finally:
        assert await proxy.shutdown() == 0
        await pool.close()
