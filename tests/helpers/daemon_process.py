"""The daemon as a real process: a free loopback port, and waiting for it to listen."""

from __future__ import annotations

import asyncio
import socket
import subprocess


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Until ``port`` accepts a connection; fails at once if ``proc`` exited first."""
    async with asyncio.timeout(timeout):
        while True:
            assert proc.poll() is None, "the proxy exited before listening"
            try:
                _, w = await asyncio.open_connection("127.0.0.1", port)
                w.close()
                return
            except OSError:
                await asyncio.sleep(0.05)
