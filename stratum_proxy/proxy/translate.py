"""Translate mode relay: one SV1 miner connection on a shared SV2 pool connection.

Same surface as :class:`PassthroughRelay` so :class:`ProxyServer` drives either.
Unlike passthrough, the pool connection outlives the miner: it belongs to the
server's :class:`Sv2Upstreams`, so a miner that leaves with shares in flight
still gets its rows written when the pool answers (or times out).

Failover: SV2 pools are tried in the configured order; one that cannot be
reached, or whose handshake fails (wrong authority key, expired certificate,
tampered handshake), is marked down with that error and the next is tried.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from stratum_proxy.proxy.endpoints import PoolEndpoint
from stratum_proxy.proxy.passthrough import RelayBase
from stratum_proxy.proxy.sv2_upstream import Sv2Upstream

if TYPE_CHECKING:
    from stratum_proxy.proxy.server import ProxyServer

# After the pool's Reconnect, how long a miner may wait for verdicts it is owed.
_RETIRE_DRAIN_S = 2.0
# After client.reconnect, how long before we close a miner that did not go.
_RECONNECT_GRACE_S = 1.0


class TranslateRelay(RelayBase):
    def __init__(
        self, server: ProxyServer, miner: asyncio.Transport, connection_id: int, miner_addr: str
    ) -> None:
        super().__init__(server, miner, connection_id, miner_addr)
        self.upstream: Sv2Upstream | None = None
        self.log = self.log.bind(mode="translate")
        self._retiring = False

    # -- connecting -------------------------------------------------------

    async def connect_pool(self) -> None:
        selector = self.server.selector
        errors = []
        for pool in selector.candidates():
            if pool.protocol != "sv2":
                continue  # an SV1 pool gets passthrough relays; this miner reconnects to one
            try:
                upstream = await self.server.sv2_upstreams.acquire(pool)
            except ConnectionError as exc:
                if selector.is_up(pool):
                    self.log.warning("pool_unreachable", pool=pool.name, error=str(exc))
                selector.mark_down(pool, str(exc))
                errors.append(f"{pool.name}: {exc}")
                continue
            if not selector.is_up(pool):
                self.log.info("pool_back", pool=pool.name)
            selector.mark_up(pool)
            if self.closed:
                return
            self._attach(pool, upstream)
            return
        self.log.error("no_pool_available", error="; ".join(errors) or "no SV2 pool configured")
        self.close()

    def _attach(self, pool: PoolEndpoint, upstream: Sv2Upstream) -> None:
        self.endpoint, self.upstream = pool, upstream
        self.log = self.log.bind(pool=pool.name)
        self.log.info("miner_connected")
        upstream.attach(self)
        for chunk in self.link.take_held():
            if self.closed:
                return
            upstream.miner_data(self, chunk)

    # -- data -------------------------------------------------------------

    def from_miner(self, data: bytes) -> None:
        self.link.last_rx = time.monotonic()
        if self.closed:
            return
        if self.upstream is None:
            self.hold_early(data)
            return
        self.upstream.miner_data(self, data)

    def write_miner(self, data: bytes) -> None:
        self.link.write(data)
        if self._retiring:
            self.timer.arm(time.monotonic())  # maybe the last answer owed: look now

    # -- timers ------------------------------------------------------------

    def _on_timer(self) -> None:
        if self.closed:
            return
        now = time.monotonic()
        if self.drain_deadline is None:
            if not self.idle_expired(now):
                self.timer.arm(self.link.last_rx + self._idle_s)
            return
        if self._retiring and (now >= self.drain_deadline or not self.has_pending()):
            # Miners that follow client.reconnect come back at once (to us).  We
            # keep reading a moment: a submit already on the wire still gets a row.
            self._retiring = False  # first: the line below re-arms the timer otherwise
            if self.upstream is not None:
                self.upstream.reconnect_miner(self)
            self.drain_deadline = now + _RECONNECT_GRACE_S
        elif now >= self.drain_deadline:
            self.close()
            return
        self.timer.arm(self.drain_deadline)

    def has_pending(self) -> bool:
        return self.upstream is not None and self.upstream.pending_for(self) > 0

    def retire(self) -> None:
        """The pool is going away (Reconnect): close once the owed answers went out.

        Submits keep being read meanwhile (the old connection still judges
        them): a submit left unread in the socket at close would leave no row.
        """
        self._retiring = True
        self.drain_deadline = time.monotonic() + _RETIRE_DRAIN_S
        self.timer.arm(self.drain_deadline)

    # -- flow control -----------------------------------------------------

    def pause_pool(self) -> None:
        """The miner reads slowly.  The pool connection is shared: it is not paused."""

    def resume_pool(self) -> None:
        """See pause_pool."""

    # -- closing ----------------------------------------------------------

    def miner_closed(self, exc: Exception | None) -> None:
        """Shares in flight keep their place upstream: their rows are still written."""
        self.link.gone = True
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.timer.cancel()
        if self.upstream is not None:
            self.upstream.detach(self)
        self.link.close()
        self._cancel_connect()
        self.server.forget(self)
