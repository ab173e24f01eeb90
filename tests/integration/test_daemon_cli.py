"""The daemon as a real process: SIGTERM mid-stream loses nothing; query/stats while it runs."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from helpers.daemon_process import free_port, wait_port

from stratum_proxy.sim.miner import MinerConfig, TestMiner
from stratum_proxy.sim.pool import TestPool
from stratum_proxy.sim.pool_config import PoolConfig


def _cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "stratum_proxy.cli", *args],
        capture_output=True,
        timeout=timeout,
        env=env,
        check=False,
    )


API_TOKEN = "cli-api-token-93ab0c"


@pytest.mark.slow
async def test_sigterm_mid_stream_keeps_every_row(tmp_path: Path) -> None:
    pool = TestPool(PoolConfig(answer_delay=0.05))
    await pool.start()
    port, api_port = free_port(), free_port()
    store = f"chdb://{tmp_path}/db"
    log_path = tmp_path / "proxy.log"
    log_file = log_path.open("wb")
    token_file = tmp_path / "api-token"
    token_file.write_text(API_TOKEN + "\n")
    token_file.chmod(0o600)
    with_token = dict(os.environ, STRATUM_PROXY_API__TOKEN=API_TOKEN)
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
            store,
            "--spool-dir",
            str(tmp_path / "spool"),
            "--api-listen",
            f"127.0.0.1:{api_port}",
            "--log-format",
            "json",
        ],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env=with_token,  # a token on loopback is required too
    )
    miners = [
        TestMiner(MinerConfig(workers=(f"w{i}",), follow_reconnect=False, answer_timeout=3))
        for i in range(4)
    ]
    try:
        await wait_port(port, proc)
        tasks = [asyncio.create_task(m.run("127.0.0.1", port)) for m in miners]
        for m in miners:
            await m.wait_submits(5, timeout=30)
        # While it runs, `query` goes through the daemon's API (it holds the store),
        # with the daemon's token from the environment or from --api-token-file.
        sql = "SELECT 1 AS one FORMAT JSONEachRow"
        # On a loaded machine the engine may still be opening: the CLI says to try
        # again shortly, and so does this test (a few times, then it fails).
        for _ in range(20):
            running = await asyncio.to_thread(_cli, "query", "--store", store, sql, env=with_token)
            if b"not open yet" not in running.stderr:
                break
            await asyncio.sleep(0.5)
        assert running.returncode == 0, running.stderr
        assert orjson.loads(running.stdout) == {"one": 1}
        no_token = await asyncio.to_thread(_cli, "query", "--store", store, sql)
        assert no_token.returncode == 2
        assert b"needs a token" in no_token.stderr and b"api.token_file" in no_token.stderr
        wrong = tmp_path / "wrong-token"
        wrong.write_text("nope\n")
        refused = await asyncio.to_thread(
            _cli, "query", "--store", store, "--api-token-file", str(wrong), sql
        )
        assert refused.returncode == 2 and b"refused the token" in refused.stderr
        flag = ("--api-token-file", str(token_file))
        stats = await asyncio.to_thread(_cli, "stats", "--store", store, "--json", *flag)
        assert stats.returncode == 0, stats.stderr
        # cleanup goes through POST /api/cleanup (/api/query is read-only).
        cleaned = await asyncio.to_thread(_cli, "cleanup", "--store", store, "--days", "30", *flag)
        assert cleaned.returncode == 0, cleaned.stderr
        assert cleaned.stdout.startswith(b"deleted 0 share rows older than 30 days")
        proc.send_signal(signal.SIGTERM)  # with submits in flight
        rc = await asyncio.to_thread(proc.wait, 30)
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        if proc.poll() is None:
            proc.kill()
        await pool.close()
    log_file.close()
    stderr = log_path.read_text()
    assert rc == 0, stderr
    assert '"event":"proxy_stopped"' in stderr
    assert API_TOKEN not in stderr  # never logged
    out = _cli(
        "query",
        "--store",
        store,
        "SELECT worker, job_id, extranonce2, ntime, nonce, status FROM mining.shares"
        " FORMAT JSONEachRow",
    )
    assert out.returncode == 0, out.stderr
    found = [orjson.loads(line) for line in out.stdout.splitlines()]
    rows = {
        (r["worker"], r["job_id"], r["extranonce2"], r["ntime"], r["nonce"]): r["status"]
        for r in found
    }
    assert len(rows) == len(found), "a share was recorded twice"
    # Through the grace the proxy kept relaying: every share the pool judged is a row
    # with the pool's verdict (the pool here answers well within the grace).
    for j in pool.judged:
        assert rows[(j.worker, j.job_id, j.extranonce2, j.ntime, j.nonce)] == "accepted"
    # What the proxy read after the grace is a row too, never sent to the pool.
    judged = {(j.worker, j.job_id, j.extranonce2, j.ntime, j.nonce) for j in pool.judged}
    for key, status in rows.items():
        if key not in judged:
            assert status == "no_response"
    for m in miners:
        for s in m.submits:
            key = (s.worker, *s.params[1:5])
            if s.answer is not None:
                assert rows[key] == "accepted"
    assert sum(len(m.submits) for m in miners) >= len(rows) > 20


def test_query_prints_clickhouse_output(tmp_path: Path) -> None:
    store = f"chdb://{tmp_path}/db"
    out = _cli("query", "--store", store, "SELECT 1 AS a, 'x\ty' AS b")
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"1\tx\\ty\n"  # TabSeparated, exactly as ClickHouse prints it
    out = _cli(
        "query",
        "--store",
        store,
        "SELECT name FROM system.tables WHERE database = 'mining' ORDER BY name FORMAT JSONEachRow",
    )
    assert out.returncode == 0
    assert b'{"name":"shares"}' in out.stdout
    bad = _cli("query", "--store", store, "SELECT nope FROM mining.shares")
    assert bad.returncode == 1
    assert b"UNKNOWN_IDENTIFIER" in bad.stderr and b"failed" in bad.stderr
    bad = _cli("query", "--store", store, "SELECT FROM WHERE (")
    assert bad.returncode == 1 and b"SYNTAX_ERROR" in bad.stderr


def test_query_held_store_without_api_says_so(tmp_path: Path) -> None:
    script = (
        "import sys,time\n"
        "from pathlib import Path\n"
        "from stratum_proxy.store.lock import acquire_lock\n"
        "lock = acquire_lock(Path(sys.argv[1]), None)\n"
        "print('locked', flush=True)\n"
        "time.sleep(30)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "db")], stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
        out = _cli("query", "--store", f"chdb://{tmp_path}/db", "SELECT 1")
        assert out.returncode == 1
        assert f"pid {holder.pid}".encode() in out.stderr
        assert b"stop it first" in out.stderr
    finally:
        holder.kill()
        holder.wait()


def test_config_errors_are_clear(tmp_path: Path) -> None:
    out = _cli("run", "--listen", "127.0.0.1:1")
    assert out.returncode == 2 and b"no pool configured" in out.stderr
    out = _cli("run", "--pool", "http://x:1")
    assert out.returncode == 2 and b"unsupported scheme" in out.stderr
    cfg = tmp_path / "c.toml"
    cfg.write_text("[limits]\nmax_connections = 0\n")
    out = _cli("run", "--config", str(cfg), "--pool", "stratum+tcp://127.0.0.1:1")
    assert out.returncode == 2 and b"limits.max_connections" in out.stderr
    # The API off loopback without a token: refused before anything opens.
    out = _cli(
        "run",
        "--listen",
        "127.0.0.1:0",
        "--pool",
        "stratum+tcp://127.0.0.1:1",
        "--store",
        f"chdb://{tmp_path}/db",
        "--spool-dir",
        str(tmp_path / "spool"),
        "--api-listen",
        "0.0.0.0:0",
    )
    assert out.returncode == 2, out.stderr
    assert b"api.token_file" in out.stderr and b"--api-listen" in out.stderr
    assert b"listening" not in out.stderr and not (tmp_path / "spool").exists()
    env = dict(os.environ, STRATUM_PROXY_STORE__URL="mysql://nope")
    out = _cli("query", "SELECT 1", env=env)
    assert out.returncode == 2 and b"scheme 'mysql' is not supported" in out.stderr


def test_mistakes_that_used_to_pass_are_refused_before_anything_opens(tmp_path: Path) -> None:
    """A typo inside a section, or a store URL nobody can use: exit 2, nothing created."""
    cfg = tmp_path / "typo.toml"
    cfg.write_text('[store]\nurll = "chdb:///elsewhere"\n')
    out = _cli("run", "--config", str(cfg), "--pool", "stratum+tcp://127.0.0.1:1")
    assert out.returncode == 2 and b"store.urll" in out.stderr, out.stderr
    for bad in ("mysql://x", "garbage"):
        out = _cli(
            "run",
            "--pool",
            "stratum+tcp://127.0.0.1:1",
            "--store",
            bad,
            "--spool-dir",
            str(tmp_path / "spool"),
        )
        assert out.returncode == 2 and b"store.url" in out.stderr, out.stderr
        out = _cli("query", "--store", bad, "SELECT 1")
        assert out.returncode == 2 and b"store.url" in out.stderr, out.stderr
    assert not (tmp_path / "spool").exists()


@pytest.mark.parametrize("bad", ["garbage", "mysql://x", "chdb://", "clickhouse://h:notaport/db"])
def test_run_with_an_unusable_store_exits_2_at_once_and_creates_nothing(
    tmp_path: Path, bad: str
) -> None:
    """No spool, no ./data: the store URL is refused before the daemon opens anything."""
    command = [sys.executable, "-m", "stratum_proxy.cli", "run", "--store", bad]
    command += ["--listen", "127.0.0.1:0", "--pool", "stratum+tcp://127.0.0.1:1"]
    started = time.monotonic()
    out = subprocess.run(
        command,
        capture_output=True,
        timeout=60,
        cwd=tmp_path,
        env=_env_for_cwd(tmp_path),
        check=False,
    )
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith(b"stratum-proxy: configuration error: invalid settings:")
    assert b"setting store.url: " in out.stderr and b"chdb:///absolute/path" in out.stderr
    assert b"Traceback" not in out.stderr and b"listening" not in out.stderr
    assert list(tmp_path.iterdir()) == []
    assert time.monotonic() - started < 20  # refused up front, not after a connect timeout


def _env_for_cwd(cwd: Path) -> dict[str, str]:
    # The package is found from any directory, as after an install.
    root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH", "")
    return dict(os.environ, PYTHONPATH=f"{root}{os.pathsep}{path}" if path else root)
