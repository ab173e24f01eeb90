"""Connection limits for the HTTP API, in front of aiohttp's protocol.

aiohttp bounds the size of a request head but not the time it may take to
arrive, so one client sending a header byte a second would hold a connection
(and a slot of ``api.max_connections``) forever.  ``ConnectionGuard`` wraps
aiohttp's protocol factory (``web.Server``) for ``loop.create_server``:

* a connection past ``max_connections`` is closed at once (counted, and
  logged at most every few seconds);
* every connection has a deadline: its request head must be in within
  ``header_timeout_s`` of connecting or of the previous response.  The
  ``guard_middleware`` runs as soon as aiohttp has parsed a head: it cancels
  the deadline for the request and arms it again when the handler returns.
  When the deadline passes the connection is aborted, unless a response is
  still draining to a client that keeps reading it (then the deadline moves
  on, and restarts once the response has left the process: what sits in the
  kernel's socket buffers by then must be read within the timeout).

``GuardedProtocol`` hands every asyncio.Protocol call to aiohttp's
``RequestHandler`` unchanged; it only adds the deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiohttp import web

_LOG_INTERVAL_S = 10.0

ProtocolFactory = Callable[[], asyncio.Protocol]


class ConnectionGuard:
    """The open connections of one API listener, by transport."""

    def __init__(self, *, max_connections: int, header_timeout_s: float, log: Any) -> None:
        self.max_connections = max_connections
        self.header_timeout_s = header_timeout_s
        self.log = log
        self.open: dict[asyncio.BaseTransport, GuardedProtocol] = {}
        self.refused = 0
        self.slow_clients = 0
        self._logged_at: dict[str, float] = {}

    def protocol_factory(self, inner: ProtocolFactory) -> Callable[[], GuardedProtocol]:
        return lambda: GuardedProtocol(self, inner)

    def statistics(self) -> dict[str, int]:
        return {
            "connections": len(self.open),
            "connections_refused": self.refused,
            "slow_clients": self.slow_clients,
        }

    def close_all(self) -> None:
        for protocol in list(self.open.values()):
            protocol.abort()

    def _admit(self, transport: asyncio.BaseTransport, protocol: GuardedProtocol) -> bool:
        if len(self.open) >= self.max_connections:
            self.refused += 1
            self._log_limited(
                "api_connection_refused",
                peer=_peer(transport),
                reason=f"api.max_connections={self.max_connections}",
                refused_total=self.refused,
            )
            return False
        self.open[transport] = protocol
        return True

    def _log_limited(self, event: str, **fields: Any) -> None:
        """One warning per event every few seconds: a flood must not flood the log."""
        now = time.monotonic()
        if now - self._logged_at.get(event, -_LOG_INTERVAL_S) >= _LOG_INTERVAL_S:
            self._logged_at[event] = now
            self.log.warning(event, **fields)


class GuardedProtocol(asyncio.Protocol):
    """aiohttp's RequestHandler plus a request-head deadline."""

    def __init__(self, guard: ConnectionGuard, inner: ProtocolFactory) -> None:
        self._guard = guard
        self._make_inner = inner
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._unsent = 0  # write buffer size when the deadline last passed
        self._lost = False

    # -- asyncio.Protocol, handed to aiohttp ---------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        stream = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        if not self._guard._admit(stream, self):
            self._lost = True
            stream.abort()
            return
        self._transport = stream
        self._inner = self._make_inner()
        self._arm()  # the first head is due header_timeout_s from now
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._cancel()
        if self._transport is not None:
            self._guard.open.pop(self._transport, None)
        if self._inner is not None:
            self._inner.connection_lost(exc)

    # -- the deadline ---------------------------------------------------------------

    def request_started(self) -> None:
        """A request head arrived: no deadline while its handler runs."""
        self._cancel()
        self._unsent = 0

    def request_done(self) -> None:
        """The handler returned: the next head is due ``header_timeout_s`` from now."""
        self._arm()

    def abort(self) -> None:
        if self._transport is not None and not self._lost:
            self._transport.abort()

    def _arm(self) -> None:
        self._cancel()
        if not self._lost:
            loop = asyncio.get_running_loop()
            self._deadline = loop.call_later(self._guard.header_timeout_s, self._expired)

    def _cancel(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        transport = self._transport
        if transport is None or self._lost:
            return
        unsent = transport.get_write_buffer_size()
        if unsent and (self._unsent == 0 or unsent < self._unsent):
            # A response is still going out and the client is reading it: wait.
            self._unsent = unsent
            self._arm()
            return
        if not unsent and self._unsent:
            # That response has just gone out: the next head is due from now.
            self._unsent = 0
            self._arm()
            return
        self._guard.slow_clients += 1
        self._guard._log_limited(
            "api_slow_client_closed",
            peer=_peer(transport),
            header_timeout_s=self._guard.header_timeout_s,
            closed_total=self._guard.slow_clients,
        )
        transport.abort()


def guard_middleware(guard: ConnectionGuard) -> Any:
    """Marks the connection busy while a handler runs (see the module docstring)."""

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        protocol = guard.open.get(request.transport) if request.transport is not None else None
        if protocol is not None:
            protocol.request_started()
        try:
            return await handler(request)
        finally:
            if protocol is not None:
                protocol.request_done()

    return middleware


def _peer(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if peer else "?"
