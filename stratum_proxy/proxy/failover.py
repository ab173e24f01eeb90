"""Pool failover for new miner connections.

Pools are tried in the configured order.  A pool that failed to connect is
skipped for ``retry_s`` so that new miners do not each wait for a dead pool's
connect timeout; once the time is up it is tried again first (it is the
operator's preferred pool).
"""

from __future__ import annotations

import asyncio
import functools
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from stratum_proxy.proxy.endpoints import PoolEndpoint

P = TypeVar("P", bound=asyncio.Protocol)


# A pool's state by the outcome of its last connect.
_STATES = {True: "up", False: "down", None: "untried"}


class NoPoolAvailable(ConnectionError):
    """Every configured pool refused or timed out."""


class PoolSelector:
    def __init__(
        self,
        pools: Sequence[PoolEndpoint],
        *,
        connect_timeout_s: float,
        retry_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not pools:
            raise ValueError("at least one pool is required")
        self.pools = tuple(pools)
        self._connect_timeout_s = connect_timeout_s
        self._retry_s = retry_s
        self._clock = clock
        self._down_until: dict[str, float] = {}
        self._last_error: dict[str, str] = {}
        # The outcome of the last connect to each pool (absent: never tried, a
        # backup while the first pool works): "up" alone cannot tell a pool that
        # answers from one nobody has tried.
        self._last_ok: dict[str, bool] = {}

    def candidates(self) -> list[PoolEndpoint]:
        """Pools to try now, in order: the healthy ones, then (as a last resort) the rest."""
        now = self._clock()
        healthy = [p for p in self.pools if self._down_until.get(p.name, 0.0) <= now]
        resting = [p for p in self.pools if p not in healthy]
        return healthy + resting

    def mark_down(self, pool: PoolEndpoint, error: str) -> None:
        self._down_until[pool.name] = self._clock() + self._retry_s
        self._last_error[pool.name] = error
        self._last_ok[pool.name] = False

    def mark_up(self, pool: PoolEndpoint) -> None:
        self._down_until.pop(pool.name, None)
        self._last_ok[pool.name] = True

    def is_up(self, pool: PoolEndpoint) -> bool:
        return self._down_until.get(pool.name, 0.0) <= self._clock()

    def statistics(self) -> dict[str, dict[str, Any]]:
        return {
            p.name: {
                "up": self.is_up(p),
                "last_error": self._last_error.get(p.name, ""),
                "state": _STATES[self._last_ok.get(p.name)],
            }
            for p in self.pools
        }

    async def connect(
        self, protocol_factory: Callable[[PoolEndpoint], P], log: Any, *, protocol: str = "sv1"
    ) -> tuple[PoolEndpoint, asyncio.Transport, P]:
        """Connect to the first ``protocol`` pool that answers; raise NoPoolAvailable otherwise."""
        loop = asyncio.get_running_loop()
        errors = []
        for pool in self.candidates():
            if pool.protocol != protocol:
                continue  # a relay speaks one protocol upstream
            try:
                transport, handler = await asyncio.wait_for(
                    loop.create_connection(
                        functools.partial(protocol_factory, pool), pool.host, pool.port
                    ),
                    self._connect_timeout_s,
                )
            except (OSError, TimeoutError) as exc:
                reason = str(exc) or type(exc).__name__
                if self.is_up(pool):
                    log.warning(
                        "pool_unreachable", pool=pool.name, address=pool.address, error=reason
                    )
                self.mark_down(pool, reason)
                errors.append(f"{pool.name}: {reason}")
                continue
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if not self.is_up(pool):
                log.info("pool_back", pool=pool.name)
            self.mark_up(pool)
            return pool, transport, handler
        raise NoPoolAvailable("; ".join(errors) or f"no {protocol} pool configured")
