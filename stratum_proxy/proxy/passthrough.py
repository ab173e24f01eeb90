"""Passthrough mode: one pool connection per miner connection, bytes untouched.

Forward first, analyse after: every chunk read from one side is written to the
other side before the SV1 tracker looks at it, so share math never delays a
message.  The tracker (sans-I/O) turns the observed lines into share records.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Protocol, cast

from stratum_proxy.errors import RemoteProtocolError
from stratum_proxy.proxy.endpoints import PoolEndpoint
from stratum_proxy.proxy.miner_link import DeadlineTimer, MinerLink
from stratum_proxy.sv1 import events as ev
from stratum_proxy.sv1.events import ShareResolved
from stratum_proxy.sv1.outstanding import DEFAULT_MAX_OUTSTANDING
from stratum_proxy.sv1.tracker import ShareContext, Sv1Tracker

if TYPE_CHECKING:
    from stratum_proxy.proxy.server import ProxyServer

# Submits unanswered at which a miner's socket stops being read (see __init__).
_BACKLOG_HIGH = 512
# Reasons of the rows a clean stop writes (they start "proxy stopping").
_GRACE_OVER = "proxy stopping: no answer from the pool within the shutdown grace"
_NOT_SENT = "proxy stopping: not sent to the pool"
# Once the miner left, how long the pool connection stays open to hear the
# verdicts of shares already submitted.
_DRAIN_AFTER_MINER_LEFT_S = 2.0
# Skipped-line warnings per connection before they are only counted.
_SKIP_WARNINGS = 5


class MinerRelay(Protocol):
    """What the miner's connection needs of a relay (passthrough or translate)."""

    def from_miner(self, data: bytes) -> None: ...
    def miner_closed(self, exc: Exception | None) -> None: ...
    def pause_pool(self) -> None: ...
    def resume_pool(self) -> None: ...


class MinerSide(asyncio.Protocol):
    """The miner's TCP connection."""

    def __init__(self, server: ProxyServer, listener: int = 0) -> None:
        self.server = server
        self.listener = listener  # index into the server's listeners: decides the mode
        self.relay: MinerRelay | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transports are not asyncio.Transport subclasses: no isinstance check.
        self.relay = self.server.admit_miner(cast(asyncio.Transport, transport), self.listener)

    def data_received(self, data: bytes) -> None:
        if self.relay is not None:
            self.relay.from_miner(data)

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self.relay is not None:
            self.relay.miner_closed(exc)

    def pause_writing(self) -> None:
        if self.relay is not None:
            self.relay.pause_pool()

    def resume_writing(self) -> None:
        if self.relay is not None:
            self.relay.resume_pool()


class PoolSide(asyncio.Protocol):
    """Our TCP connection to the pool, on behalf of one miner."""

    def __init__(self, relay: PassthroughRelay) -> None:
        self.relay = relay

    def data_received(self, data: bytes) -> None:
        self.relay.from_pool(data)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.relay.pool_closed(exc)

    def pause_writing(self) -> None:
        self.relay.pause_miner()

    def resume_writing(self) -> None:
        self.relay.resume_miner()


class RelayBase:
    """What both relay kinds share: the miner link, its timer, identity and closing.

    Subclasses implement ``close`` and ``_on_timer`` (re-arming ``timer``).
    """

    closed_by = "proxy"  # who ended the pair: "miner", "pool" or "proxy" (stop, limits)

    def __init__(
        self, server: ProxyServer, miner: asyncio.Transport, connection_id: int, miner_addr: str
    ) -> None:
        self.server = server
        self.link = MinerLink(miner)
        self.connection_id = connection_id
        self.miner_addr = miner_addr
        self.log: Any = server.log.bind(connection_id=connection_id, miner=miner_addr)
        self.endpoint: PoolEndpoint | None = None
        self.closed = False
        self.drain_deadline: float | None = None  # monotonic: close by then at the latest
        self.connect_task: asyncio.Task[None] | None = None
        self.timer = DeadlineTimer(self._on_timer)
        self._idle_s = server.settings.limits.idle_timeout_s

    @property
    def miner_gone(self) -> bool:
        return self.link.gone

    def close(self) -> None:
        raise NotImplementedError

    def _on_timer(self) -> None:
        raise NotImplementedError

    def start_timer(self) -> None:
        """Arm the idle deadline (needs the running loop)."""
        self.timer.arm(self.link.last_rx + self._idle_s)

    def idle_expired(self, now: float) -> bool:
        """Whether the miner has been silent past ``idle_timeout_s`` (then closed)."""
        if now - self.link.last_rx <= self._idle_s:
            return False
        self.log.info("miner_idle_timeout")
        self.close()
        return True

    def pool_closed(self, exc: Exception | None) -> None:
        if not self.closed:
            self.log.info("pool_closed_connection", error=str(exc) if exc else None)
            self.closed_by = "pool"
            self.close()

    def pause_miner(self, why: str = "pool_busy") -> None:
        """Stop reading the miner for ``why``; reading resumes once no reason is left."""
        self.link.pause(why)

    def resume_miner(self, why: str = "pool_busy") -> None:
        self.link.resume(why)

    def stop_reading_miner(self) -> None:
        """Shutdown: no new submits; the pool may still answer the pending ones."""
        self.link.pause("stopping")

    def hold_early(self, data: bytes) -> None:
        """Bytes the miner sent before the pool connection is up: kept, bounded."""
        if not self.link.hold(data):
            self.log.warning("miner_flood_before_pool", bytes=self.link.held_bytes)
            self.close()

    def _cancel_connect(self) -> None:
        task = self.connect_task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()


class PassthroughRelay(RelayBase):
    """One miner ↔ pool pair: the byte relay plus its SV1 tracker."""

    def __init__(
        self, server: ProxyServer, miner: asyncio.Transport, connection_id: int, miner_addr: str
    ) -> None:
        super().__init__(server, miner, connection_id, miner_addr)
        self.pool: asyncio.Transport | None = None
        limits = server.settings.limits
        self.tracker = Sv1Tracker(
            context=ShareContext(
                proxy_id=server.settings.proxy_id,
                upstream="",
                channel_id=connection_id,  # in passthrough the channel is the connection
                miner_addr=miner_addr,
                connection_id=connection_id,
            ),
            max_line_bytes=limits.max_line_bytes,
            submit_timeout_s=limits.submit_timeout_s,
            max_jobs=limits.max_jobs_per_connection,
        )
        # A miner with this many submits unanswered is not read until the pool has
        # caught up to a quarter of it: its flood waits in its own socket instead of
        # in the proxy, and the pool's answers keep landing on the right rows.
        self._backlog_high = min(_BACKLOG_HIGH, DEFAULT_MAX_OUTSTANDING // 4)
        self._backlog_low = self._backlog_high // 4
        self.stopping = False  # past the shutdown grace: read and record, do not forward
        self._skipped = 0

    # -- connecting -------------------------------------------------------

    async def connect_pool(self) -> None:
        await self.server.pool_connect_slot()
        if self.closed:
            return
        try:
            endpoint, transport, _ = await self.server.selector.connect(
                lambda _pool: PoolSide(self), self.log
            )
        except ConnectionError as exc:
            self.log.error("no_pool_available", error=str(exc))
            self.close()
            return
        if self.closed:
            transport.close()
            return
        self.endpoint, self.pool = endpoint, transport
        self.tracker.set_upstream(endpoint.name)
        self.log = self.log.bind(pool=endpoint.name)
        self.log.info("miner_connected")
        pending = self.link.take_held()
        for chunk in pending:
            self.pool.write(chunk)
        for chunk in pending:
            if not self._observe(self.tracker.miner_data, chunk, "miner"):
                return
        self.timer.arm(self.tracker.get_timer())

    # -- data -------------------------------------------------------------

    def from_miner(self, data: bytes) -> None:
        link = self.link
        link.last_rx = time.monotonic()
        pool = self.pool
        if self.stopping:
            # Past the shutdown grace: what the miner sent is read and recorded
            # (one no_response row per submit) but no longer sent to the pool.
            self._observe(self.tracker.miner_data, data, "miner")
            return
        if pool is None:
            self.server.start_pool_connect(self)
            self.hold_early(data)
            return
        pool.write(data)
        self._observe(self.tracker.miner_data, data, "miner")
        # A new submit may be the only one owed: its deadline is then the next.
        # (Answers only move the next deadline later: no arming on the pool side.)
        self.timer.arm(self.tracker.get_timer())
        if self.tracker.outstanding() >= self._backlog_high and "backlog" not in link.paused_for:
            self.pause_miner("backlog")
            self.server.count("miner_backlog_pauses")
            self.server.log_limited(
                self.log,
                "miner_paused",
                reason="too many submits waiting for the pool's answer",
                outstanding=self.tracker.outstanding(),
            )

    def from_pool(self, data: bytes) -> None:
        self.link.write(data)
        self._observe(self.tracker.pool_data, data, "pool")
        if self.link.paused_for:
            self._maybe_resume_backlog()
        if self.drain_deadline is not None and self.tracker.get_timer() is None:
            self.close()  # the miner left and every verdict it was owed has come

    def _maybe_resume_backlog(self) -> None:
        if "backlog" in self.link.paused_for and self.tracker.outstanding() <= self._backlog_low:
            self.resume_miner("backlog")

    def _observe(self, feed: Any, data: bytes, side: str) -> bool:
        try:
            events = feed(data, time.monotonic(), wall=time.time())
        except RemoteProtocolError as exc:
            self.log.warning("connection_closed_bad_input", side=side, error=str(exc))
            self.close()
            return False
        if events:
            self._handle(events)
        return True

    def _handle(self, events: list[Any]) -> None:
        server = self.server
        for event in events:
            if type(event) is ShareResolved:
                server.record_share(event.record, self.log)
            elif isinstance(event, ev.LineSkipped):
                self._skipped += 1
                server.count("lines_skipped")
                if self._skipped <= _SKIP_WARNINGS:
                    self.log.warning(
                        "line_skipped", side=event.side, reason=event.reason, line=event.excerpt
                    )
            elif isinstance(event, ev.WorkerAuthorized):
                self.log.info("worker_authorized", worker=event.worker, accepted=event.accepted)
            elif isinstance(event, ev.PoolReconnectRequested):
                self.log.info(
                    "pool_requested_reconnect",
                    host=event.host,
                    port=event.port,
                    wait_s=event.wait_s,
                )
            elif isinstance(event, ev.LateAnswer):
                server.count("late_answers")
                server.log_limited(
                    self.log,
                    "late_answer",
                    worker=event.worker,
                    job_id=event.job_id,
                    nonce=event.nonce,
                    accepted=event.accepted,
                    reason=event.reason,
                    late_ms=round(event.late_ms, 1),
                    block_candidate=event.is_block,
                    note="the share's row says no_response; this verdict came after it",
                )
            elif isinstance(event, ev.RequestsEvicted):
                server.count("evicted_requests")
                server.log_limited(
                    self.log,
                    "requests_evicted",
                    method=event.method,
                    outstanding=event.outstanding,
                    reason="the pool is not keeping up with this miner's requests",
                )
            elif isinstance(event, ev.UnmatchedAnswer):
                server.count("unmatched_answers")
                server.log_limited(self.log, "unmatched_answer", id=event.id)
            elif isinstance(event, ev.PoolMessage):
                self.log.info("pool_message", text=event.text)
            elif isinstance(event, ev.DifficultySet):
                self.log.debug("difficulty_set", difficulty=event.difficulty)

    # -- timers ------------------------------------------------------------

    def _on_timer(self) -> None:
        if self.closed:
            return
        now = time.monotonic()
        deadline = self.tracker.get_timer()
        if deadline is not None and deadline <= now:
            self._handle(self.tracker.handle_timer(now))
            if self.closed:
                return
        if self.link.paused_for:
            self._maybe_resume_backlog()
        if self.drain_deadline is not None:
            if now >= self.drain_deadline or self.tracker.get_timer() is None:
                self.close()
                return
            self.timer.arm(self.drain_deadline)
        elif self.idle_expired(now):
            return
        else:
            self.timer.arm(self.link.last_rx + self._idle_s)
        self.timer.arm(self.tracker.get_timer())

    def has_pending(self) -> bool:
        return self.tracker.get_timer() is not None

    def stop_forwarding(self) -> None:
        """The shutdown grace is over: from now on the miner's submits are recorded
        without being forwarded; answers the pool still owes may come until close."""
        if self.closed:
            return
        self.stopping = True
        self.tracker.stop_forwarding(_NOT_SENT)
        for chunk in self.link.take_held():  # never sent: the pool was not ready
            self.from_miner(chunk)

    # -- flow control -----------------------------------------------------

    def pause_pool(self) -> None:
        if self.pool is not None:
            self.pool.pause_reading()

    def resume_pool(self) -> None:
        if self.pool is not None and not self.pool.is_closing():
            self.pool.resume_reading()

    # -- closing ----------------------------------------------------------

    def miner_closed(self, exc: Exception | None) -> None:
        self.link.gone = True
        if self.closed:
            return
        if self.pool is not None and self.has_pending():
            # Keep listening for the verdicts of shares already submitted.
            self.drain_deadline = time.monotonic() + _DRAIN_AFTER_MINER_LEFT_S
            self.timer.arm(self.drain_deadline)
            return
        self.close()

    def close(self) -> None:
        """Close both sides; every pending submit becomes a no_response row."""
        if self.closed:
            return
        self.closed = True
        self.timer.cancel()
        if self.stopping:
            self._handle(self.tracker.connection_lost(time.monotonic(), _GRACE_OVER))
        else:
            self._handle(self.tracker.connection_lost(time.monotonic()))
        if self.pool is not None:
            self.pool.close()
        self.link.close()
        self._cancel_connect()
        self.server.forget(self)
