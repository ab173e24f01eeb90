"""The shared connection to an SV2 pool in translate mode (asyncio shell of translate.core).

One ``Sv2Upstream`` is one Noise connection carrying the extended channels of
every miner the server sent to that pool (one channel per miner, or one for
all in aggregated mode).  ``Sv2Upstreams`` is the server's registry: it opens
at most one connection per pool at a time, and forgets it once it failed, so
the next miner's connect attempt opens a fresh one (or fails over).

Everything protocol-shaped happens in the sans-I/O Translator; this class only
acts on the events each of its calls returns (bytes to write, records, logs,
miners to close) and arms one timer from ``get_timer()``.  Deadlines run on
the monotonic clock; rows are stamped, and the pool certificate checked, with
the time of day.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import TYPE_CHECKING, Any, cast

from stratum_proxy.errors import ConfigError, RemoteProtocolError
from stratum_proxy.proxy.endpoints import PoolEndpoint
from stratum_proxy.proxy.miner_link import DeadlineTimer
from stratum_proxy.sv2.client import Sv2Client
from stratum_proxy.sv2.keys import decode_public_key
from stratum_proxy.translate import events as tev
from stratum_proxy.translate.core import Translator

if TYPE_CHECKING:
    from stratum_proxy.proxy.server import ProxyServer
    from stratum_proxy.proxy.translate import TranslateRelay

_NOTICE_LEVELS = {"info", "warning", "error"}
# Bytes for the pool are gathered over one turn of the event loop, but written
# once this many are waiting (about seven SubmitSharesExtended frames): the pool
# starts on the first submits while the proxy reads the next ones, and a long
# turn (many miners' data at once) does not hold the first submit back.
POOL_WRITE_BATCH = 512


class Sv2Upstream(asyncio.Protocol):
    def __init__(
        self, server: ProxyServer, endpoint: PoolEndpoint, host: str, port: int, authority: bytes
    ) -> None:
        settings = server.settings
        self.server = server
        self.endpoint = endpoint
        self.host, self.port = host, port
        self.log = server.log.bind(pool=endpoint.name, pool_address=f"{host}:{port}")
        client = Sv2Client(
            authority_pubkey=authority,
            now=time.time(),  # the certificate's validity is about the time of day
            rng=os.urandom,
            endpoint_host=host,
            endpoint_port=port,
            vendor=settings.sv2.vendor,
            leeway_s=settings.sv2.cert_leeway_s,
            submit_timeout_s=settings.limits.submit_timeout_s,
        )
        self.translator = Translator(
            client=client,
            settings=settings.sv2,
            upstream=endpoint.name,
            proxy_id=settings.proxy_id,
            max_line_bytes=settings.limits.max_line_bytes,
            max_jobs=settings.limits.max_jobs_per_connection,
        )
        self.relays: dict[int, TranslateRelay] = {}
        self.transport: asyncio.Transport | None = None
        self.accepting = True  # False after Reconnect or failure: no new miners here
        self.closed = False
        self.close_reason = ""
        self._loop = asyncio.get_running_loop()
        self._ready: asyncio.Future[None] = self._loop.create_future()
        self._timer = DeadlineTimer(self._on_timer)
        # Bytes for the pool queued during this turn of the event loop (see
        # _write_pool); None when no end-of-turn write is scheduled.
        self._pool_out: list[bytes] | None = None
        self._pool_out_bytes = 0

    # --- opening ----------------------------------------------------------------

    async def open(self) -> None:
        """TCP connect, Noise handshake, SetupConnection; ConnectionError says why not."""
        loop = asyncio.get_running_loop()
        limits, sv2 = self.server.settings.limits, self.server.settings.sv2
        try:
            async with asyncio.timeout(limits.connect_timeout_s):
                await loop.create_connection(lambda: self, self.host, self.port)
        except (OSError, TimeoutError) as exc:
            self.closed = True
            raise ConnectionError(str(exc) or "connect timed out") from None
        try:
            async with asyncio.timeout(sv2.handshake_timeout_s):
                await asyncio.shield(self._ready)
        except TimeoutError:
            self.fail(f"no SV2 handshake/setup answer within {sv2.handshake_timeout_s:g} s")
        if self.close_reason:
            raise ConnectionError(self.close_reason)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self._act(self.translator.connection_made())

    def data_received(self, data: bytes) -> None:
        try:
            events = self.translator.pool_data(data, time.monotonic(), wall=time.time())
        except RemoteProtocolError as exc:
            # A pool that breaks the protocol (bad handshake, corrupt frame) is
            # skipped by the next miners until pool_retry_s passed.
            self.server.selector.mark_down(self.endpoint, str(exc))
            self.fail(str(exc))
            return
        self._act(events)

    def eof_received(self) -> bool:
        try:
            self.translator.pool_eof()
        except RemoteProtocolError as exc:
            self.fail(str(exc))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(f"pool closed the connection{f': {exc}' if exc else ''}")

    def pause_writing(self) -> None:
        for relay in self.relays.values():
            relay.pause_miner()

    def resume_writing(self) -> None:
        for relay in self.relays.values():
            relay.resume_miner()

    # --- miners -----------------------------------------------------------------

    def attach(self, relay: TranslateRelay) -> None:
        self.relays[relay.connection_id] = relay
        self._act(
            self.translator.add_miner(relay.connection_id, relay.miner_addr, time.monotonic())
        )

    def detach(self, relay: TranslateRelay) -> None:
        if self.relays.pop(relay.connection_id, None) is None:
            return
        if not self.closed:
            self._act(self.translator.remove_miner(relay.connection_id, time.monotonic()))

    def miner_data(self, relay: TranslateRelay, data: bytes) -> None:
        try:
            events = self.translator.miner_data(
                relay.connection_id, data, time.monotonic(), wall=time.time()
            )
        except RemoteProtocolError as exc:
            relay.log.warning("connection_closed_bad_input", side="miner", error=str(exc))
            relay.close()
            return
        self._act(events)

    def reconnect_miner(self, relay: TranslateRelay) -> None:
        """Write client.reconnect (no params: "to this proxy") to the relay's miner.

        The line goes through the miner's SV1 session like every other line it
        is sent; nothing is written if the miner is no longer attached here.
        """
        self._act(self.translator.reconnect_miner(relay.connection_id))

    def pending_for(self, relay: TranslateRelay) -> int:
        return self.translator.pending_for(relay.connection_id)

    # --- acting on the core's events ---------------------------------------------------

    def _act(self, events: list[tev.TranslateEvent]) -> None:
        """Do what the core's call returned, then re-arm its timer and see if we are done."""
        relays = self.relays
        for event in events:
            # The per-share events here; the rest in _handle.
            if isinstance(event, tev.SendToMiner):
                relay = relays.get(event.miner_id)
                if relay is not None:
                    relay.write_miner(event.data)
            elif isinstance(event, tev.ShareRecorded):
                relay = relays.get(event.miner_id)
                self.server.record_share(event.record, self.log if relay is None else relay.log)
            elif isinstance(event, tev.SendToPool):
                self._write_pool(event.data)
            else:
                self._handle(event)
        if not self.closed:
            self._timer.arm(self.translator.get_timer())
            self._maybe_retire()

    def _write_pool(self, data: bytes) -> None:
        """Queue bytes for the pool: they leave at the end of this turn of the event loop,
        or as soon as POOL_WRITE_BATCH bytes are waiting.

        Every miner shares this connection: the submits of the miners read in
        one turn leave in a few writes (system calls, TCP segments) instead of
        one write each.  The order is kept, and nothing waits beyond this turn.
        """
        out = self._pool_out
        if out is None:
            out = self._pool_out = []
            self._loop.call_soon(self._end_of_turn)
        out.append(data)
        self._pool_out_bytes += len(data)
        if self._pool_out_bytes >= POOL_WRITE_BATCH:
            self._flush_pool()

    def _end_of_turn(self) -> None:
        self._flush_pool()
        self._pool_out = None

    def _flush_pool(self) -> None:
        """Write what is queued for the pool now."""
        out = self._pool_out
        if not out:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        self._pool_out_bytes = 0
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def _handle(self, event: tev.TranslateEvent) -> None:
        relay = self.relays.get(getattr(event, "miner_id", -1))
        log = relay.log if relay is not None else self.log
        if isinstance(event, tev.CloseMiner):
            if relay is not None:
                log.warning("miner_closed_by_upstream", reason=event.reason)
                relay.close()
        elif isinstance(event, tev.WorkerAuthorized):
            log.info("worker_authorized", worker=event.worker, accepted=True)
        elif isinstance(event, tev.MinerLineIgnored):
            self.server.count("lines_skipped")
            log.warning("line_skipped", side="miner", reason=event.reason, line=event.excerpt)
        elif isinstance(event, tev.PoolReconnect):
            self._on_reconnect(event.host or self.host, event.port or self.port)
        elif isinstance(event, tev.Notice):
            level = event.level if event.level in _NOTICE_LEVELS else "warning"
            getattr(log, level)("sv2_pool_notice", text=event.text)
        elif isinstance(event, tev.PoolReady):
            if not self._ready.done():
                self._ready.set_result(None)
        elif isinstance(event, tev.SetupRefused):
            log.error("sv2_pool_notice", text=f"pool refused setup: {event.error_code}")
            self.fail("pool refused the connection setup")

    def _on_reconnect(self, host: str, port: int) -> None:
        """Spec §3.6.5: reconnect elsewhere, with the same authority key (pinned)."""
        self.log.info("pool_requested_reconnect", host=host, port=port)
        self.accepting = False
        self.server.sv2_upstreams.redirect(self.endpoint, host, port)
        for relay in list(self.relays.values()):
            relay.retire()  # answers already owed are delivered, then the miner reconnects

    # --- timers and closing ---------------------------------------------------------

    def _on_timer(self) -> None:
        if not self.closed:
            self._act(self.translator.handle_timer(time.monotonic()))

    def _maybe_retire(self) -> None:
        """After the pool's Reconnect: close once no miner and no submit is left here."""
        if not self.accepting and not self.relays and not self.translator.pending_count():
            self.fail("retired after the pool's Reconnect")

    def fail(self, reason: str) -> None:
        """Close for good: pending shares become no_response rows, miners are closed."""
        if self.closed:
            return
        self.closed = True
        self.accepting = False
        self.close_reason = reason
        if self._ready.done():
            self.log.warning("sv2_upstream_closed", reason=reason)
        else:
            self.log.error("sv2_pool_connect_failed", error=reason)
            self._ready.set_result(None)
        self._timer.cancel()
        self._act(self.translator.connection_lost(time.monotonic(), reason))
        self._flush_pool()  # what was queued this turn goes before the close
        if self.transport is not None:
            self.transport.close()
        self.server.sv2_upstreams.forget(self)


class Sv2Upstreams:
    """Owned by the server: at most one live connection per SV2 pool."""

    def __init__(self, server: ProxyServer) -> None:
        self.server = server
        self._live: dict[str, Sv2Upstream] = {}
        self._opening: dict[str, asyncio.Future[Sv2Upstream]] = {}
        self._redirects: dict[str, tuple[str, int]] = {}
        self._all: set[Sv2Upstream] = set()

    def authority_for(self, endpoint: PoolEndpoint) -> bytes:
        text = endpoint.authority_key or self.server.settings.sv2.authority_key
        if not text:
            raise ConfigError(
                f"pool {endpoint.name}: no SV2 authority key (URL path or sv2.authority_key)"
            )
        return decode_public_key(text)

    async def acquire(self, endpoint: PoolEndpoint) -> Sv2Upstream:
        """The pool's live connection, opening it if needed; ConnectionError if it cannot be."""
        live = self._live.get(endpoint.name)
        if live is not None and live.accepting and not live.closed:
            return live
        pending = self._opening.get(endpoint.name)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Sv2Upstream] = asyncio.get_running_loop().create_future()
        self._opening[endpoint.name] = future
        try:
            upstream = await self._open(endpoint)
        except BaseException as exc:
            if isinstance(exc, ConnectionError):
                future.set_exception(exc)
                future.exception()  # retrieved: waiters re-raise it, nobody logs it twice
            else:
                future.cancel()  # e.g. the opener was cancelled: waiters must not hang
            raise
        finally:
            self._opening.pop(endpoint.name, None)
        future.set_result(upstream)
        return upstream

    async def _open(self, endpoint: PoolEndpoint) -> Sv2Upstream:
        try:
            authority = self.authority_for(endpoint)
        except ConfigError as exc:
            raise ConnectionError(str(exc)) from None
        host, port = self._redirects.get(endpoint.name, (endpoint.host, endpoint.port))
        upstream = Sv2Upstream(self.server, endpoint, host, port, authority)
        self._all.add(upstream)
        try:
            await upstream.open()
        except ConnectionError:
            self._all.discard(upstream)
            self._redirects.pop(endpoint.name, None)  # a dead redirect falls back to the URL
            raise
        upstream.log.info("sv2_pool_connected", mode=self.server.settings.sv2.extranonce_mode)
        self._live[endpoint.name] = upstream
        return upstream

    def redirect(self, endpoint: PoolEndpoint, host: str, port: int) -> None:
        self._redirects[endpoint.name] = (host, port)
        if self._live.get(endpoint.name) is not None:
            del self._live[endpoint.name]

    def forget(self, upstream: Sv2Upstream) -> None:
        self._all.discard(upstream)
        if self._live.get(upstream.endpoint.name) is upstream:
            del self._live[upstream.endpoint.name]

    def statistics(self) -> dict[str, Any]:
        return {u.endpoint.name: {"miners": len(u.relays)} for u in self._live.values()}

    async def close(self) -> None:
        for future in list(self._opening.values()):
            future.cancel()
        for upstream in list(self._all):
            upstream.fail("proxy shutting down")
        with contextlib.suppress(Exception):
            await asyncio.sleep(0)
