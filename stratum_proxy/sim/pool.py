"""A Stratum V1 pool on a loopback port that judges every share for real.

Tests and benchmarks point miners (directly or through the proxy) at it; its
``judged`` list is the oracle the proxy's records are compared with.  Jobs are
shared by all connections (each has its own extranonce1); the difficulty of a
share is the difficulty its connection had when the job was sent, which is the
rule the proxy must follow too ("set_difficulty applies to the next notify").
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

import orjson

from stratum_proxy.sim.chain import BASE_VERSION, Template, fake_branch, split_coinbase
from stratum_proxy.sim.pool_config import JudgedShare, PoolConfig
from stratum_proxy.sim.pool_session import PoolSession


class TestPool:
    """Start with ``await pool.start()``; ``pool.port`` is then the bound port."""

    __test__ = False  # not a pytest test class despite the name
    max_templates = 32  # jobs older than this many notifies are "Job not found"

    def __init__(self, config: PoolConfig | None = None) -> None:
        self.config = config or PoolConfig()
        self.host = "127.0.0.1"
        self.port = 0
        self.judged: list[JudgedShare] = []
        self.verdicts: Counter[str] = Counter()  # 'accepted' or the reject reason
        self.sessions: dict[int, PoolSession] = {}
        self.templates: dict[str, Template] = {}
        self.seen: set[tuple[object, ...]] = set()
        self.prevhash = b""
        self._rng = random.Random(self.config.seed)
        self._height = self.config.start_height - 1
        self._job_counter = 0
        self._conn_counter = 0
        self._en1_base = self._rng.getrandbits(8 * self.config.extranonce1_size)
        self.stalled = False  # new connections stall too (see ``stall``)
        self._server: asyncio.Server | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self.current_template()

    # --- lifecycle ---
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._new_session, host, port, backlog=4096)
        self.host, self.port = self._server.sockets[0].getsockname()[:2]
        if self.config.notify_interval > 0:
            self._ticker = asyncio.create_task(self._tick(), name="sim-pool-notify")

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        await self.stop_listening()
        for session in list(self.sessions.values()):
            session.close()
        await asyncio.sleep(0)

    async def stop_listening(self) -> None:
        """Refuse new connections (connects get ECONNREFUSED); sessions stay up."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def resume_listening(self) -> None:
        """Listen again on the same port after ``stop_listening``."""
        if self._server is None:
            loop = asyncio.get_running_loop()
            self._server = await loop.create_server(
                self._new_session, self.host, self.port, reuse_address=True, backlog=4096
            )

    def _new_session(self) -> PoolSession:
        self._conn_counter += 1
        size = self.config.extranonce1_size
        en1 = ((self._en1_base + self._conn_counter) % (1 << (8 * size))).to_bytes(size, "big")
        session = PoolSession(self, self._conn_counter, en1)
        session.stalled = self.stalled
        self.sessions[self._conn_counter] = session
        self._changed.set()
        return session

    def _forget(self, session: PoolSession) -> None:
        self.sessions.pop(session.conn_id, None)
        self._changed.set()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.config.notify_interval)
            self.new_job(clean=False)

    # --- jobs and difficulty ---
    def current_template(self) -> Template:
        """The newest template, creating the first one (a new block) if needed."""
        if not self.templates:
            return self._make_template(clean=True)
        return next(reversed(self.templates.values()))

    def _make_template(self, *, clean: bool, new_block: bool | None = None) -> Template:
        if new_block is None:
            new_block = clean
        if new_block or not self.prevhash:
            self._height += 1
            self.prevhash = self._rng.randbytes(32)
            self.seen.clear()
        self._job_counter += 1
        coinb1, coinb2 = split_coinbase(
            self._height, self.config.extranonce1_size + self.config.extranonce2_size
        )
        template = Template(
            job_id=f"{self._job_counter:x}",
            height=self._height,
            prevhash=self.prevhash,
            coinb1=coinb1,
            coinb2=coinb2,
            branch=fake_branch(self._rng, self.config.branch_length),
            version=BASE_VERSION,
            nbits=self.config.nbits,
            ntime=int(time.time()),
            clean=clean,
        )
        self.templates[template.job_id] = template
        while len(self.templates) > self.max_templates:
            self.templates.pop(next(iter(self.templates)))
        return template

    def new_job(self, *, clean: bool = False, connection: int | None = None) -> Template:
        """Notify a new job on the same block (``clean`` is only the flag sent)."""
        return self._broadcast(self._make_template(clean=clean, new_block=False), connection)

    def new_block(self, *, clean: bool = True) -> Template:
        """Notify a job on a new block: new prevhash and height, older jobs become stale."""
        return self._broadcast(self._make_template(clean=clean, new_block=True), None)

    def _broadcast(self, template: Template, connection: int | None) -> Template:
        for session in self._targets(connection):
            if session.subscribed:
                session.send_job(template)
        return template

    def set_difficulty(
        self, difficulty: float, connection: int | None = None, *, notify: bool = True
    ) -> None:
        """Send set_difficulty; it applies to jobs notified after it (a new one by default)."""
        targets = self._targets(connection)
        for session in targets:
            session.send_difficulty(difficulty)
        if notify:
            template = self._make_template(clean=False)
            for session in targets:
                session.send_job(template)

    # --- misbehaviour on demand ---
    def send_raw(self, data: bytes, connection: int | None = None) -> None:
        for session in self._targets(connection):
            session.send_raw(data)

    def send_garbage(self, connection: int | None = None) -> None:
        self.send_raw(b"\x00\xff garbage, not json }{\n", connection)

    def send_huge_line(self, size: int = 1 << 20, connection: int | None = None) -> None:
        self.send_raw(b'{"id":null,"method":"x","params":["' + b"a" * size + b'"]}\n', connection)

    def send_reconnect(
        self,
        host: str | None = None,
        port: int | None = None,
        wait: int = 0,
        connection: int | None = None,
    ) -> None:
        params: list[object] = [] if host is None else [host, port or self.port, wait]
        message = {"id": None, "method": "client.reconnect", "params": params}
        self.send_raw(orjson.dumps(message) + b"\n", connection)

    def stall(self, connection: int | None = None) -> None:
        """Keep the connections open but send nothing more: no answers, no jobs.

        Without ``connection`` the whole pool stalls, connections opened later
        included (they are accepted, and their subscribe is never answered), as
        a pool whose process hangs does.  Submits still reach the verdict log,
        as unanswered.
        """
        if connection is None:
            self.stalled = True
        for session in self._targets(connection):
            session.stalled = True

    def unstall(self, connection: int | None = None) -> None:
        """Send again after ``stall``; what was not sent meanwhile is lost, not replayed."""
        if connection is None:
            self.stalled = False
        for session in self._targets(connection):
            session.stalled = False

    def set_extranonce(
        self,
        extranonce2_size: int,
        connection: int | None = None,
        *,
        extranonce1: bytes | None = None,
    ) -> None:
        """Send mining.set_extranonce to live connections, then a clean job on the same block.

        Each connection gets ``extranonce1`` (default: its own with every bit
        flipped, so it is new) and ``extranonce2_size``; its
        submits are judged with them from then on, so shares built for the old
        ones are rejected (as a real pool does).
        """
        targets = self._targets(connection)
        for session in targets:
            en1 = extranonce1
            if en1 is None:
                en1 = bytes(b ^ 0xFF for b in session.extranonce1)
            session.send_set_extranonce(en1, extranonce2_size)
        template = self._make_template(clean=True, new_block=False)
        for session in targets:
            session.send_job(template)

    def close_connection(self, connection: int) -> None:
        session = self.sessions.get(connection)
        if session is not None:
            session.close()

    def drop_connections(self, *, abort: bool = False) -> int:
        """Close every live connection but keep listening (a pool process restart
        behind a load balancer); ``abort`` resets them (RST) instead of a clean
        close.  Returns how many were dropped."""
        sessions = list(self.sessions.values())
        for session in sessions:
            if abort:
                session.abort()
            else:
                session.close()
        return len(sessions)

    def _targets(self, connection: int | None) -> list[PoolSession]:
        if connection is None:
            return list(self.sessions.values())
        session = self.sessions.get(connection)
        return [session] if session is not None else []

    # --- verdict log ---
    def _record(self, share: JudgedShare, answered: bool) -> None:
        if not answered:
            share = replace(share, answered=False)
        self.judged.append(share)
        self._count(share)

    def _count(self, share: JudgedShare) -> None:
        self.verdicts["accepted" if share.accepted else share.reason] += 1
        self._changed.set()

    def statistics(self) -> dict[str, int]:
        """Counters: connections now open, submits per verdict."""
        return {"connections": len(self.sessions), **self.verdicts}

    async def wait_judged(self, count: int, timeout: float = 10.0) -> list[JudgedShare]:
        """Wait until at least ``count`` submits were judged (recorded mode)."""
        await self.wait_until(lambda: sum(self.verdicts.values()) >= count, timeout)
        return self.judged

    async def wait_connections(self, count: int, timeout: float = 10.0) -> None:
        await self.wait_until(lambda: len(self.sessions) >= count, timeout)

    async def wait_until(self, ready: Callable[[], bool], timeout: float = 10.0) -> None:
        """Until ``ready()`` holds, re-checked whenever a connection or verdict changes."""
        async with asyncio.timeout(timeout):
            while not ready():
                self._changed.clear()
                await self._changed.wait()
