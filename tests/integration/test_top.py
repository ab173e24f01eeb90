"""``stratum-proxy top --once`` against a real daemon fed by hashing miners."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import socket
import struct
import subprocess
import sys
import termios
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from stratum_proxy import cli
from stratum_proxy.sim.miner import MinerConfig, TestMiner
from stratum_proxy.sim.pool import TestPool
from stratum_proxy.sim.pool_config import PoolConfig


async def _stats(base: str, count: int, token: str | None = None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    async with aiohttp.ClientSession(headers=headers) as session, asyncio.timeout(30):
        while True:
            async with session.get(f"{base}/api/share-stats?hours=1") as response:
                if response.status == 200:
                    stats = dict(await response.json())
                    if stats["total_shares"] >= count:
                        return stats
            await asyncio.sleep(0.1)


async def _mine(port: int, workers: tuple[str, ...], shares: int) -> None:
    miners = [
        TestMiner(MinerConfig(workers=(w,), max_submits=shares, bad_share_every=3)) for w in workers
    ]
    async with asyncio.timeout(60):
        await asyncio.gather(*(m.run("127.0.0.1", port) for m in miners))


async def test_one_frame_shows_the_apis_numbers(
    proxy_factory: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    pool = TestPool(PoolConfig())
    await pool.start()
    proxy = await proxy_factory([f"main=stratum+tcp://127.0.0.1:{pool.port}"])
    address = f"127.0.0.1:{proxy.api[1]}"
    try:
        await _mine(proxy.port, ("farm.rig0", "farm.rig1"), 6)
        stats = await _stats(f"http://{address}", 12)
        code = await asyncio.to_thread(
            cli.main, ["top", "--once", "--api", address, "--hours", "1"]
        )
        sorted_code = await asyncio.to_thread(
            cli.main,  # --api-listen: the name `run` gives the same address
            ["top", "--once", "--api-listen", address, "--sort", "worker", "--filter", "rig1"],
        )
    finally:
        await proxy.shutdown()
        await pool.close()
    out = capsys.readouterr().out
    first, second = out.split("stratum-proxy top")[1:]
    assert code == 0 and sorted_code == 0
    rows = proxy.rows()
    assert f"shares {stats['total_shares']} (accepted {stats['accepted_shares']}, " in first
    assert f"rejected {stats['rejected_shares']}, no response 0)" in first
    assert "pools: main up" in first and "workers 2 up / 0 down" in first
    for name in ("farm.rig0", "farm.rig1"):
        (line,) = [row for row in first.splitlines() if row.startswith(name)]
        accepted = sum(r["worker"] == name and r["status"] == "accepted" for r in rows)
        assert line.split()[1] == "up" and str(accepted) in line.split()[3:6]
    assert "farm.rig0" not in second and "1 of 2 workers (filter 'rig1')" in second


async def test_a_token_is_sent_and_a_missing_one_is_explained(
    proxy_factory: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pool = TestPool(PoolConfig())
    await pool.start()
    token = "top-test-token-0123456789abcdef"
    proxy = await proxy_factory(
        [f"main=stratum+tcp://127.0.0.1:{pool.port}"], **{"api.token": token}
    )
    address = f"127.0.0.1:{proxy.api[1]}"
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    try:
        await _mine(proxy.port, ("farm.rig0",), 3)
        await _stats(f"http://{address}", 3, token)
        refused = await asyncio.to_thread(cli.main, ["top", "--once", "--api", address])
        refused_err = capsys.readouterr().err
        allowed = await asyncio.to_thread(
            cli.main, ["top", "--once", "--api", address, "--api-token-file", str(token_file)]
        )
        out = capsys.readouterr().out
    finally:
        await proxy.shutdown()
        await pool.close()
    assert refused == 2 and "needs a token" in refused_err and "--api-token-file" in refused_err
    assert allowed == 0 and "shares 3 (accepted" in out


def test_no_daemon_at_the_address_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    code = cli.main(["top", "--once", "--api", f"127.0.0.1:{port}"])
    err = capsys.readouterr().err
    assert code == 1
    assert f"the daemon's API at 127.0.0.1:{port} did not answer" in err


async def test_live_on_a_terminal_keys_and_a_clean_exit(proxy_factory: Any) -> None:
    """In a pseudo-terminal: the alternate screen, a sort key, q, and the terminal restored."""
    pool = TestPool(PoolConfig())
    await pool.start()
    proxy = await proxy_factory([f"main=stratum+tcp://127.0.0.1:{pool.port}"])
    address = f"127.0.0.1:{proxy.api[1]}"
    controller, terminal = pty.openpty()
    # A terminal of 40 rows and 160 columns (a new pty has no size).
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    screen = b""

    async def read_until(marker: bytes, timeout: float = 20.0) -> None:
        nonlocal screen
        async with asyncio.timeout(timeout):
            while marker not in screen:
                screen += await asyncio.to_thread(os.read, controller, 65536)

    try:
        await _mine(proxy.port, ("farm.rig0",), 3)
        await _stats(f"http://{address}", 3)
        top = subprocess.Popen(
            [sys.executable, "-m", "stratum_proxy.cli", "top", "--api", address,
             "--interval", "0.5"],
            stdin=terminal, stdout=terminal, stderr=terminal, close_fds=True,
        )  # fmt: skip
        await read_until(b"farm.rig0")
        os.write(controller, b"s")  # next sort column: worker, shown with its arrow
        await read_until(b"workerv")
        os.write(controller, b"q")
        code = await asyncio.to_thread(top.wait, 10)
        await read_until(b"\x1b[?1049l")  # the alternate screen is left
    finally:
        os.close(terminal)
        os.close(controller)
        await proxy.shutdown()
        await pool.close()
    assert code == 0
    assert screen.index(b"\x1b[?1049h") < screen.index(b"farm.rig0")
    assert b"Traceback" not in screen


async def test_sigterm_restores_the_terminal(proxy_factory: Any) -> None:
    """``kill`` unwinds as Ctrl-C does: the alternate screen is left, the cursor shown."""
    pool = TestPool(PoolConfig())
    await pool.start()
    proxy = await proxy_factory([f"main=stratum+tcp://127.0.0.1:{pool.port}"])
    address = f"127.0.0.1:{proxy.api[1]}"
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    screen = b""

    async def read_until(marker: bytes) -> None:
        nonlocal screen
        async with asyncio.timeout(20):
            while marker not in screen:
                screen += await asyncio.to_thread(os.read, controller, 65536)

    try:
        top = subprocess.Popen(
            [sys.executable, "-m", "stratum_proxy.cli", "top", "--api", address],
            stdin=terminal, stdout=terminal, stderr=terminal, close_fds=True,
        )  # fmt: skip
        await read_until(b"0 of 0 workers")
        top.terminate()
        code = await asyncio.to_thread(top.wait, 10)
        await read_until(b"\x1b[?25h\x1b[?1049l")
        echo_restored = bool(termios.tcgetattr(terminal)[3] & termios.ECHO)
    finally:
        os.close(terminal)
        os.close(controller)
        await proxy.shutdown()
        await pool.close()
    assert code == 128 + 15 and echo_restored
    assert b"Traceback" not in screen
