"""The simulated Stratum V2 pool on a loopback port (asyncio shell of sv2_pool_core).

    pool = Sv2TestPool(Sv2PoolConfig(batch_size=5))
    await pool.start()
    url = pool.url()                       # stratum2+tcp://127.0.0.1:PORT/AUTHORITY_KEY
    pool.new_block(); pool.force_errors("stale-share"); pool.send_reconnect(host, port)
    pool.judged                            # the oracle: every share it judged

Faults are config knobs (wrong key, expired certificate, tampered act 2, a
corrupted frame, never answering) so each test states what it breaks.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from typing import cast

from stratum_proxy.errors import RemoteProtocolError
from stratum_proxy.sim.sv2_pool_config import (
    ERROR_CODES,
    TEST_AUTHORITY_SECRET,
    Sv2Judged,
    Sv2PoolConfig,
)
from stratum_proxy.sim.sv2_pool_conn import Sv2PoolConnection
from stratum_proxy.sim.sv2_pool_core import Sv2PoolState
from stratum_proxy.sv2.crypto import xonly_pubkey
from stratum_proxy.sv2.keys import encode_public_key

__all__ = ["ERROR_CODES", "TEST_AUTHORITY_SECRET", "Sv2Judged", "Sv2PoolConfig", "Sv2TestPool"]


class _Session(asyncio.Protocol):
    def __init__(self, pool: Sv2TestPool) -> None:
        self.pool = pool
        self.conn = pool.state.new_connection(time.time(), os.urandom)
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.error = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.pool.sessions[self.conn.conn_id] = self
        self.pool.changed()

    def data_received(self, data: bytes) -> None:
        try:
            self.conn.receive_data(data, time.time())
        except RemoteProtocolError as exc:
            self.error = str(exc)
            self.pool.errors.append(self.error)
            self.close()
            return
        self.flush()

    def flush(self) -> None:
        out = self.conn.data_to_send()
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(out)
        self._arm_timer()

    def _arm_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        deadline = self.conn.get_timer()
        if deadline is not None:
            delay = max(0.0, deadline - time.time())
            self.timer = asyncio.get_running_loop().call_later(delay, self._fire)

    def _fire(self) -> None:
        self.timer = None
        self.conn.handle_timer(time.time())
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.pool.sessions.pop(self.conn.conn_id, None)
        self.pool.state.connections.pop(self.conn.conn_id, None)
        self.pool.changed()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class Sv2TestPool:
    __test__ = False

    def __init__(self, config: Sv2PoolConfig | None = None) -> None:
        self.config = config or Sv2PoolConfig()
        self.state = Sv2PoolState(self.config)
        self.sessions: dict[int, _Session] = {}
        self.errors: list[str] = []  # why connections were dropped (handshake, frames)
        self.host = "127.0.0.1"
        self.port = 0
        self._server: asyncio.Server | None = None
        self._changed = asyncio.Event()

    @property
    def judged(self) -> list[Sv2Judged]:
        return self.state.judged

    @property
    def authority_key(self) -> str:
        """The authority public key clients must pin (base58check)."""
        return encode_public_key(xonly_pubkey(self.config.authority_secret))

    def url(self, name: str = "") -> str:
        text = f"stratum2+tcp://{self.host}:{self.port}/{self.authority_key}"
        return f"{name}={text}" if name else text

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Session(self), host, port)
        self.host, self.port = self._server.sockets[0].getsockname()[:2]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self.disconnect_all()
        await asyncio.sleep(0)

    # --- actions ------------------------------------------------------------------

    def connections(self) -> list[Sv2PoolConnection]:
        return [s.conn for s in self.sessions.values()]

    def _flush_all(self) -> None:
        for session in list(self.sessions.values()):
            session.flush()

    def new_block(self) -> None:
        self.state.new_block(time.time())
        self._flush_all()

    def new_job(self) -> None:
        self.state.new_job(time.time())
        self._flush_all()

    def set_difficulty(self, difficulty: float) -> None:
        self.state.set_difficulty(difficulty)
        self._flush_all()

    def force_errors(self, *codes: str) -> None:
        self.state.force_errors(*codes)

    def send_reconnect(self, host: str = "", port: int = 0) -> None:
        for conn in self.connections():
            conn.send_reconnect(host, port)
        self._flush_all()

    def close_channels(self, reason: str = "pool-maintenance") -> None:
        for conn in self.connections():
            for channel_id in list(conn.channels):
                conn.close_channel(channel_id, reason)
        self._flush_all()

    def endpoint_changed(self) -> None:
        for conn in self.connections():
            for channel_id in list(conn.channels):
                conn.endpoint_changed(channel_id)
        self._flush_all()

    def disconnect_all(self) -> None:
        for session in list(self.sessions.values()):
            session.close()

    # --- waiting ------------------------------------------------------------------

    def changed(self) -> None:
        self._changed.set()

    async def wait_for(self, ready: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not ready():
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.02):
                        await self._changed.wait()

    async def wait_judged(self, count: int, timeout: float = 10.0) -> list[Sv2Judged]:
        await self.wait_for(lambda: len(self.judged) >= count, timeout)
        return self.judged
