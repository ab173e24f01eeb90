"""The proxy daemon: listeners, the set of live relays, timers, summaries, shutdown.

Shutdown order (STYLE 6): stop accepting, stop reading from miners (no new
submits), wait up to ``shutdown_grace_s`` for the pool's answers to the
submits already forwarded, close every connection (what is still unanswered
becomes a ``no_response`` row), then the caller closes the share pipeline.
"""

from __future__ import annotations

import asyncio
import itertools
import resource
import socket
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

from stratum_proxy.proxy.aggregate import AggregateHub, AggregateRelay
from stratum_proxy.proxy.endpoints import parse_listener, parse_pool
from stratum_proxy.proxy.failover import PoolSelector
from stratum_proxy.proxy.passthrough import MinerRelay, MinerSide, PassthroughRelay
from stratum_proxy.proxy.stats import WorkerStats
from stratum_proxy.proxy.sv2_upstream import Sv2Upstreams
from stratum_proxy.proxy.translate import TranslateRelay
from stratum_proxy.settings import Settings
from stratum_proxy.store.record import STATUS_REJECTED, ShareRecord
from stratum_proxy.sv2.keyfile import load_authority_key

_STOP_READ_S = 0.2  # at a stop, time for bytes miners already sent to arrive and be recorded
_QUIET_S = 0.5  # at a stop, miners silent this long (and owed nothing) end the grace early
_STOP_ANSWERS_S = 0.5  # then, at most this long for answers the pool still owes
_LOG_EVERY_S = 10.0  # rate limit of repeated warnings (log_limited)
_BACKLOG = 1024


class ShareSink(Protocol):
    def put(self, record: ShareRecord) -> None: ...


class ProxyServer:
    def __init__(
        self,
        settings: Settings,
        sink: ShareSink,
        log: Any,
        *,
        connection_ids: Callable[[], int] | None = None,
    ) -> None:
        """``connection_ids`` numbers miner connections (the daemon's are unique
        across restarts, ``store.connection_ids``); by default 1, 2, 3, ..."""
        self.settings = settings
        self.sink = sink
        self.log = log
        key = settings.sv2.authority_key
        pools = [parse_pool(p, default_authority_key=key) for p in settings.pools]
        self.selector = PoolSelector(
            pools,
            connect_timeout_s=settings.limits.connect_timeout_s,
            retry_s=settings.limits.pool_retry_s,
        )
        self.listen = [parse_listener(a, default_mode=settings.mode) for a in settings.listen]
        self.relays: set[PassthroughRelay | TranslateRelay | AggregateRelay] = set()
        # One aggregate core per aggregate listener (each has its own pool connections).
        # SV2 miners use the same machinery, their connections speaking SV2.
        authority = (
            load_authority_key(settings.sv2.authority_key_file)
            if settings.sv2.authority_key_file is not None
            and any(listener.mode == "sv2" for listener in self.listen)
            else None
        )
        self.hubs = {
            index: AggregateHub(self, pools, authority if listener.mode == "sv2" else None)
            for index, listener in enumerate(self.listen)
            if listener.mode in ("aggregate", "sv2")
        }
        self.sv2_upstreams = Sv2Upstreams(self)  # shared SV2 pool connections (translate mode)
        self.workers = WorkerStats()
        self.counters: Counter[str] = Counter()
        self.started_at = time.time()
        self._connection_ids = connection_ids or itertools.count(1).__next__
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._accepting = False
        self._rejected_logged_at = 0.0
        self._limited: dict[str, tuple[float, int]] = {}  # event -> (last logged, held back)
        self._summary_at = time.monotonic()  # start of the worker_summary interval
        self._next_connect_at = 0.0  # pool_connect_slot's schedule (monotonic)
        self._debug = settings.log.level == "debug"

    # -- lifecycle --------------------------------------------------------

    async def start(self) -> None:
        raise_file_limit(self.log)
        loop = asyncio.get_running_loop()
        for index, listener in enumerate(self.listen):
            server = await loop.create_server(
                lambda index=index: MinerSide(self, index),  # type: ignore[misc]
                listener.host,
                listener.port,
                backlog=_BACKLOG,
                reuse_address=True,
            )
            self._servers.append(server)
            for sock in server.sockets:
                self.log.info("listening", address=format_sockname(sock.getsockname()))
        self._accepting = True
        self._spawn(self._summaries())

    def new_connection_id(self) -> int:
        """A fresh id for a miner (a connection, or one more SV2 channel on one)."""
        return self._connection_ids()

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [s.sockets[0].getsockname()[:2] for s in self._servers if s.sockets]

    async def shutdown(self) -> None:
        self._accepting = False
        for server in self._servers:
            server.close()
        # Passthrough pairs keep relaying both ways through the grace: submits go on
        # to the pool and their verdicts are recorded.  (A translated miner shares
        # an upstream channel: it stops sending and its owed answers are awaited.)
        for relay in list(self.relays):
            if not isinstance(relay, PassthroughRelay):
                relay.stop_reading_miner()
        grace = self.settings.limits.shutdown_grace_s
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and self._relaying():
            await asyncio.sleep(0.05)
        # Then what the pool still owes is no_response, and what miners have
        # already sent is read and recorded (not forwarded) before the sockets close.
        for relay in list(self.relays):
            if isinstance(relay, PassthroughRelay):
                relay.stop_forwarding()
        await asyncio.sleep(_STOP_READ_S)
        end = time.monotonic() + _STOP_ANSWERS_S  # answers to the last forwarded submits
        while time.monotonic() < end and any(r.has_pending() for r in self.relays):
            await asyncio.sleep(0.02)
        for relay in list(self.relays):
            relay.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.sv2_upstreams.close()  # what is still unanswered becomes no_response
        for hub in self.hubs.values():
            await hub.close()
        for server in self._servers:
            await server.wait_closed()
        self._log_summaries(final=True)

    def _relaying(self) -> bool:
        """Whether the grace is still in use: an answer is owed, or a passthrough miner
        sent something in the last ``_QUIET_S`` (it is mining: keep relaying it)."""
        now = time.monotonic()
        return any(
            r.has_pending() or (isinstance(r, PassthroughRelay) and now - r.link.last_rx < _QUIET_S)
            for r in self.relays
        )

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- relays -----------------------------------------------------------

    def admit_miner(self, transport: asyncio.Transport, listener: int = 0) -> MinerRelay | None:
        peer = transport.get_extra_info("peername")
        addr = format_sockname(peer) if peer else "?"
        limit = self.settings.limits.max_connections
        if not self._accepting or len(self.relays) >= limit:
            self.counters["connections_refused"] += 1
            now = time.monotonic()
            if now - self._rejected_logged_at > 10.0:
                self._rejected_logged_at = now
                self.log.warning(
                    "miner_refused",
                    miner=addr,
                    reason="shutting down" if not self._accepting else f"max_connections={limit}",
                    refused_total=self.counters["connections_refused"],
                )
            transport.abort()
            return None
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        mode = self.listen[listener].mode
        relay: PassthroughRelay | TranslateRelay | AggregateRelay
        if mode in ("aggregate", "sv2"):
            hub = self.hubs[listener]
            relay = AggregateRelay(self, transport, self._connection_ids(), addr, hub)
        else:
            if mode == "auto":  # the first pool decides: an SV2 pool means translate mode
                first = self.selector.candidates()[0]
                mode = "translate" if first.protocol == "sv2" else "passthrough"
            relay_class = TranslateRelay if mode == "translate" else PassthroughRelay
            relay = relay_class(self, transport, self._connection_ids(), addr)
        self.relays.add(relay)
        relay.start_timer()
        self.counters["connections_accepted"] += 1
        if isinstance(relay, AggregateRelay):
            relay.start()  # placed on a shared pool connection by the core
            return relay
        if isinstance(relay, TranslateRelay):  # a channel on a shared upstream: cheap
            relay.connect_task = self._spawn(relay.connect_pool())
        # A passthrough miner gets its pool connection when it sends its first bytes
        # (start_pool_connect): idle sockets open nothing toward the pool.
        return relay

    def start_pool_connect(self, relay: PassthroughRelay) -> None:
        """Open ``relay``'s pool connection (once), paced by ``pool_connect_slot``."""
        if relay.connect_task is None and not relay.closed:
            relay.connect_task = self._spawn(relay.connect_pool())

    async def pool_connect_slot(self) -> None:
        """Wait for this connection's turn: at most ``pool_connects_per_s`` new pool
        connections a second after a burst of as many, so that a farm reconnecting
        at once (or a storm of sockets) does not get the proxy rate-limited or
        banned by its pool."""
        limits = self.settings.limits
        rate = limits.pool_connects_per_s
        now = time.monotonic()
        # The next free slot, but never further back than one burst's worth.
        slot = max(self._next_connect_at, now - limits.pool_connect_burst / rate)
        self._next_connect_at = slot + 1.0 / rate
        if slot > now:
            self.counters["pool_connects_paced"] += 1
            await asyncio.sleep(slot - now)

    def forget(self, relay: PassthroughRelay | TranslateRelay | AggregateRelay) -> None:
        if relay in self.relays:
            self.relays.discard(relay)
            closed_by = "miner" if relay.miner_gone else relay.closed_by
            self.counters[f"disconnects_by_{closed_by}"] += 1
            self.log_limited(relay.log, "miner_disconnected", level="info", closed_by=closed_by)

    # -- shares -----------------------------------------------------------

    def record_share(self, record: ShareRecord, log: Any) -> None:
        self.sink.put(record)
        self.workers.add(record)
        if record.status == STATUS_REJECTED:
            self.log_limited(
                log,
                "share_rejected",
                worker=record.worker,
                job_id=record.job_id,
                reason=record.reject_reason,
                share_difficulty=record.share_difficulty,
                pool_difficulty=record.pool_difficulty,
            )
        if record.is_block:
            # A candidate meets the network target; whether it became a block is
            # the pool's verdict and the chain's.  On a test chain every share is
            # one, hence the rate limit (a mainnet candidate is never held back:
            # they are minutes apart).
            self.counters["block_candidates"] += 1
            self.log_limited(
                log,
                "block_candidate",
                worker=record.worker,
                hash=record.share_hash,
                status=record.status,
                network_difficulty=record.network_difficulty,
            )
        if self._debug:
            log.debug(
                "share",
                worker=record.worker,
                job_id=record.job_id,
                status=record.status,
                share_difficulty=record.share_difficulty,
                pool_difficulty=record.pool_difficulty,
                response_ms=record.response_ms,
                hash=record.share_hash,
            )

    def count(self, name: str) -> None:
        self.counters[name] += 1

    def log_limited(self, log: Any, event: str, *, level: str = "warning", **fields: Any) -> None:
        """A line at most every ``_LOG_EVERY_S`` per event name, with how many were
        held back since the last one: a flood of the same trouble is one line a while."""
        now = time.monotonic()
        last, held = self._limited.get(event, (-_LOG_EVERY_S, 0))
        if now - last < _LOG_EVERY_S:
            self._limited[event] = (last, held + 1)
            return
        self._limited[event] = (now, 0)
        getattr(log, level)(event, suppressed=held, **fields)

    # -- periodic work ----------------------------------------------------

    async def _summaries(self) -> None:
        interval = self.settings.log.summary_interval_s
        while True:
            await asyncio.sleep(interval)
            self._log_summaries()

    def _log_summaries(self, final: bool = False) -> None:
        # The time the interval really covered (at a stop, less than the setting).
        now = time.monotonic()
        seconds, self._summary_at = round(max(now - self._summary_at, 1e-3), 3), now
        for worker, counters in sorted(self.workers.take_interval().items()):
            if counters.shares:
                self.log.info(
                    "worker_summary", worker=worker, seconds=seconds, **counters.summary(seconds)
                )

    def statistics(self) -> dict[str, Any]:
        return {
            "connections": len(self.relays),
            "uptime_s": time.time() - self.started_at,
            **dict(self.counters),
            "pools": self.selector.statistics(),
            **(
                {"aggregate": {str(i): hub.statistics() for i, hub in self.hubs.items()}}
                if self.hubs
                else {}
            ),
        }


def format_sockname(name: Any) -> str:
    host, port = name[0], name[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def raise_file_limit(log: Any) -> None:
    """Each miner costs two sockets: lift the soft open-files limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            log.warning("cannot_raise_file_limit", soft=soft, hard=hard, error=str(exc))
            return
        soft = hard
    log.debug("open_files_limit", limit=soft)
