"""Aggregate mode's asyncio shell: miner sockets and pool sockets around ``Aggregator``.

One ``AggregateHub`` per aggregate listener owns the core, the pool
connections it asks for and one timer armed from the core's ``get_timer()``.
Every call into the core returns events; ``act`` carries them out (bytes to
miners and pools, connections to open or close, rows to record, log lines).
Miners keep their TCP connection through a failover: only the core decides
to close one (it never does for a pool that dies).  On an SV2 pool the core's
upstreams are channels: they share one connection per pool (``Sv2PoolConn``),
which decodes the pool's bytes once and hands each channel its events.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING, Any, cast

from stratum_proxy.aggregate import events as ev
from stratum_proxy.aggregate.core import AggregateSettings as CoreSettings
from stratum_proxy.aggregate.core import Aggregator, summary
from stratum_proxy.aggregate.sv2_pool import Sv2PoolConnection, Sv2PoolUpstream
from stratum_proxy.aggregate.vardiff import VardiffSettings
from stratum_proxy.errors import RemoteProtocolError
from stratum_proxy.proxy.endpoints import PoolEndpoint
from stratum_proxy.proxy.miner_link import DeadlineTimer
from stratum_proxy.proxy.passthrough import RelayBase
from stratum_proxy.sv1.downstream import MinerAuthorized
from stratum_proxy.sv2.client import Sv2Client
from stratum_proxy.sv2.downstream import (
    ChannelClosed,
    ChannelEvent,
    ChannelRequested,
    ConnectionEvent,
    Sv2Channel,
    Sv2Downstream,
    Sv2FrameError,
)
from stratum_proxy.sv2.keyfile import AuthorityKey
from stratum_proxy.sv2.keys import decode_public_key

if TYPE_CHECKING:
    from stratum_proxy.proxy.server import ProxyServer

_LEVELS = {"info", "warning", "error"}


def core_settings(server: ProxyServer) -> CoreSettings:
    """The core's settings from the daemon's ``[aggregate]`` and ``[limits]`` sections."""
    agg, limits = server.settings.aggregate, server.settings.limits
    return CoreSettings(
        miners_per_upstream=agg.miners_per_upstream,
        prefix_bytes=agg.prefix_bytes,
        vardiff=VardiffSettings(
            shares_per_minute=agg.shares_per_minute,
            minimum=agg.min_difficulty,
            maximum=agg.max_difficulty,
            start=agg.start_difficulty,
            retarget_s=agg.retarget_s,
        ),
        identity_passthrough=agg.identity_passthrough,
        pool_user=agg.pool_user,
        pool_password=agg.pool_password.get_secret_value(),
        failback=agg.failback,
        failback_check_s=agg.failback_check_s,
        reconnects_per_s=agg.reconnects_per_s,
        jobs_per_miner=agg.jobs_per_miner,
        job_keepalive_s=agg.job_keepalive_s,
        work_timeout_s=agg.work_timeout_s,
        submit_timeout_s=limits.submit_timeout_s,
        setup_timeout_s=server.settings.limits.connect_timeout_s,
        max_line_bytes=limits.max_line_bytes,
        version_mask=server.settings.sv2.version_mask,
    )


class AggregateHub:
    """The core of one aggregate listener and its pool connections."""

    def __init__(
        self,
        server: ProxyServer,
        pools: list[PoolEndpoint],
        authority: AuthorityKey | None = None,
    ) -> None:
        self.server = server
        self.authority = authority  # set: the listener's miners speak SV2
        self.pools = pools  # SV1 and SV2 pools alike: Sv2PoolUpstream speaks SV2
        self.log = server.log.bind(mode="sv2" if authority is not None else "aggregate")
        self.core = Aggregator(
            settings=core_settings(server),
            pools=[p.name for p in self.pools],
            proxy_id=server.settings.proxy_id,
            # An SV2 channel carries one user identity: workers get channels of their own.
            worker_channel_pools=frozenset(
                i for i, pool in enumerate(self.pools) if pool.protocol == "sv2"
            ),
        )
        self.relays: dict[int, AggregateRelay] = {}
        self.conns: dict[int, UpstreamConn] = {}  # by upstream id (SV2: several ids, one conn)
        self.sv2_conns: dict[str, Sv2PoolConn] = {}  # by pool name: connecting or open
        self.timer = DeadlineTimer(self._on_timer)
        self._tasks: set[asyncio.Task[None]] = set()
        self.closing = False

    # -- events ------------------------------------------------------------------------

    def act(self, events: list[ev.AggregateEvent]) -> None:
        refusing: list[AggregateRelay] = []
        for event in events:
            if isinstance(event, ev.SendToMiner):
                relay = self.relays.get(event.miner_id)
                if relay is not None:
                    relay.link.write(event.data)
                    sv2 = relay.sv2
                    if sv2 is not None and len(relay.channels) > len(sv2.channels):
                        refusing.append(relay)  # it refused a channel's open: see below
            elif isinstance(event, ev.ShareRecorded):
                relay = self.relays.get(event.miner_id)
                self.server.record_share(event.record, relay.log if relay else self.log)
            elif isinstance(event, ev.SendToUpstream):
                conn = self.conns.get(event.upstream_id)
                if conn is not None:
                    conn.write(event.data)
            elif isinstance(event, ev.OpenUpstream):
                pool = self.pools[event.pool]
                if pool.protocol == "sv2":
                    self._open_channel(event.upstream_id, pool, event.identity)
                else:
                    self._spawn(self._open(event.upstream_id, pool))
            elif isinstance(event, ev.CloseUpstream):
                conn = self.conns.pop(event.upstream_id, None)
                if isinstance(conn, Sv2PoolConn):
                    conn.leave(event.upstream_id, event.reason)
                elif conn is not None:
                    conn.close(event.reason)
            elif isinstance(event, ev.CloseMiner):
                relay = self.relays.get(event.miner_id)
                if relay is not None:
                    relay.log.warning("miner_closed_by_proxy", reason=event.reason)
                    relay.close()
            elif isinstance(event, ev.MinersMoved):
                self.server.count("miners_moved")
                self.log.warning(
                    "miners_moved",
                    from_pool=event.from_pool,
                    to_pool=event.to_pool,
                    miners=event.miners,
                    without_work_s=event.without_work_s,
                    disconnected=0,
                )
            elif isinstance(event, ev.Notice):
                relay = self.relays.get(event.miner_id) if event.miner_id is not None else None
                log = relay.log if relay is not None else self.log
                level = event.level if event.level in _LEVELS else "warning"
                self.server.log_limited(log, event.event, level=level, **dict(event.fields))
        for relay in refusing:
            self._drop_refused(relay)
        if not self.closing:
            self.timer.arm(self.core.get_timer())

    def _on_timer(self) -> None:
        self.act(self.core.handle_timer(time.monotonic(), time.time()))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- pool connections --------------------------------------------------------------

    async def _connect(self, conn: UpstreamConn) -> bool:
        """The TCP connection, paced; False (logged) when it could not be opened."""
        await self.server.pool_connect_slot()
        loop = asyncio.get_running_loop()
        pool = conn.pool
        try:
            async with asyncio.timeout(self.server.settings.limits.connect_timeout_s):
                await loop.create_connection(lambda: conn, pool.host, pool.port)
        except (OSError, TimeoutError) as exc:
            conn.failure = str(exc) or "connect timed out"
            self.log.warning("pool_unreachable", pool=pool.name, error=conn.failure)
            return False
        if self.closing:
            conn.close("proxy stopping")
            return False
        return True

    async def _open(self, upstream_id: int, pool: PoolEndpoint) -> None:
        """An SV1 pool connection: one upstream of the core."""
        conn = UpstreamConn(self, upstream_id, pool)
        if not await self._connect(conn):
            if conn.failure:
                self.act(self.core.upstream_failed(upstream_id, conn.failure, time.monotonic()))
            return
        self.conns[upstream_id] = conn
        self.log.info("upstream_connected", pool=pool.name, upstream=upstream_id)
        self.act(self.core.upstream_connected(upstream_id, time.monotonic()))

    def _open_channel(self, upstream_id: int, pool: PoolEndpoint, identity: str) -> None:
        """A channel on the SV2 pool's connection, opening that connection if need be."""
        conn = self.sv2_conns.get(pool.name)
        if conn is None or conn.closed:
            conn = Sv2PoolConn(self, pool)
            self.sv2_conns[pool.name] = conn
            self._spawn(self._open_sv2(conn))
        conn.join(upstream_id, identity)

    async def _open_sv2(self, conn: Sv2PoolConn) -> None:
        opened = await self._connect(conn)
        if opened and conn.closed:  # lost between connecting and this task resuming
            opened, conn.failure = False, "pool closed the connection at once"
        if not opened:
            conn.unlist()
            waiting, conn.waiting = [uid for uid, _ in conn.waiting], []
            if conn.failure and waiting:
                self.act(self.core.upstreams_failed(waiting, conn.failure, time.monotonic()))
            return
        self.log.info("upstream_connected", pool=conn.pool.name, protocol="sv2")
        conn.connected(self._sv2_session(conn.pool))

    def _sv2_session(self, pool: PoolEndpoint) -> Sv2PoolConnection:
        """The SV2 pool connection's protocol: Noise, setup, the channels on it."""
        settings = self.server.settings
        return Sv2PoolConnection(
            Sv2Client(
                authority_pubkey=decode_public_key(pool.authority_key),
                now=time.time(),  # the pool certificate's validity is about the time of day
                rng=os.urandom,
                endpoint_host=pool.host,
                endpoint_port=pool.port,
                vendor=settings.sv2.vendor,
                leeway_s=settings.sv2.cert_leeway_s,
                submit_timeout_s=settings.limits.submit_timeout_s,
            )
        )

    def sv2_channel(self, session: Sv2PoolConnection, identity: str) -> Sv2PoolUpstream:
        """One extended channel: a worker's own, under its name; "": the farm's pool_user."""
        settings = self.server.settings
        return session.channel(
            user=identity or settings.aggregate.pool_user,
            nominal_hash_rate=settings.sv2.nominal_hashrate_hs,
            # The miners' prefixes plus a 4-byte extranonce2 each.
            min_extranonce_size=settings.aggregate.prefix_bytes + 4,
            worker_channel=bool(identity),
            setup_timeout_s=settings.limits.connect_timeout_s,
        )

    def upstream_lost(self, conn: UpstreamConn, reason: str) -> None:
        if isinstance(conn, Sv2PoolConn):
            conn.lost(reason)
            return
        if self.conns.get(conn.upstream_id) is conn:
            del self.conns[conn.upstream_id]
            self.act(self.core.upstream_lost(conn.upstream_id, reason, time.monotonic()))

    # -- miners ------------------------------------------------------------------------

    def attach(self, relay: AggregateRelay) -> None:
        if self.authority is None:
            self.relays[relay.connection_id] = relay
            relay.miner_ids.append(relay.connection_id)
            self.act(self.core.add_miner(relay.connection_id, relay.miner_addr, time.monotonic()))
            return
        # An SV2 connection: each channel it opens becomes a miner of the core.
        sv2, agg = self.server.settings.sv2, self.server.settings.aggregate
        relay.sv2 = Sv2Downstream(
            authority_secret=self.authority.secret,
            cert_validity_s=sv2.cert_validity_s,
            now=time.time(),  # the certificate's clock
            rng=os.urandom,
            version_mask=sv2.version_mask,
            shares_per_minute=agg.shares_per_minute,
            max_frame_bytes=sv2.miner_max_frame_bytes,
            max_channels=sv2.max_channels_per_connection,
        )

    def sv2_events(self, relay: AggregateRelay, received: list[ConnectionEvent]) -> None:
        """What an SV2 connection decoded, channel by channel, into the core."""
        now, wall = time.monotonic(), time.time()
        for item in received:
            if isinstance(item, ChannelEvent):
                self.act(self.core.miner_events(item.channel.miner_id, [item.event], now, wall))
            elif isinstance(item, ChannelRequested):
                self._add_channel(relay, item, now, wall)
            elif isinstance(item, ChannelClosed):
                relay.log.info("sv2_channel_closed", channel=item.channel.channel_id,
                               reason=item.reason)  # fmt: skip
                self._drop_channel(relay, item.channel.miner_id)
        self._drop_refused(relay)

    def _drop_refused(self, relay: AggregateRelay) -> None:
        """Channels whose open the connection refused when the core gave them too small
        an extranonce (OpenMiningChannel.Error sent): out of the core too, whenever the
        core placed them (a miner's message, or a pool becoming ready later)."""
        sv2 = relay.sv2
        if sv2 is not None and len(relay.channels) > len(sv2.channels):
            for channel in [c for c in relay.channels if c.channel_id not in sv2.channels]:
                self._drop_channel(relay, channel.miner_id)

    def _add_channel(
        self, relay: AggregateRelay, request: ChannelRequested, now: float, wall: float
    ) -> None:
        channel, worker = request.channel, request.worker
        # The first channel is known by the connection's id (as an SV1 miner is);
        # more channels on the connection get ids of their own.
        first = relay.connection_id not in relay.miner_ids
        channel.miner_id = relay.connection_id if first else self.server.new_connection_id()
        relay.miner_ids.append(channel.miner_id)
        relay.channels.append(channel)
        self.relays[channel.miner_id] = relay
        self.act(
            self.core.add_miner(
                channel.miner_id, relay.miner_addr, now, channel, request.difficulty, worker
            )
        )
        self.act(self.core.miner_events(channel.miner_id, [MinerAuthorized(worker=worker)],
                                        now, wall))  # fmt: skip

    def _drop_channel(self, relay: AggregateRelay, miner_id: int) -> None:
        relay.channels = [c for c in relay.channels if c.miner_id != miner_id]
        if self.relays.pop(miner_id, None) is not None:
            self.act(self.core.remove_miner(miner_id, time.monotonic()))

    def detach(self, relay: AggregateRelay) -> None:
        for miner_id in relay.miner_ids:
            if self.relays.pop(miner_id, None) is not None:
                self.act(self.core.remove_miner(miner_id, time.monotonic()))

    def statistics(self) -> dict[str, Any]:
        return summary(self.core)

    async def close(self) -> None:
        """Stop: what the pools still owe becomes no_response, connections close."""
        self.closing = True
        self.timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for conn in {id(c): c for c in self.conns.values()}.values():
            self.upstream_lost(conn, "proxy stopping")
            conn.close("proxy stopping")


class UpstreamConn(asyncio.Protocol):
    """One TCP connection to a pool, carrying many miners."""

    def __init__(self, hub: AggregateHub, upstream_id: int, pool: PoolEndpoint) -> None:
        self.hub = hub
        self.upstream_id = upstream_id
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.failure = ""  # why the connection could not be opened
        # Many miners' shares go out on this one connection: what they send within
        # one turn of the event loop leaves in one write (one system call) at its end.
        self._outgoing: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        core = self.hub.core
        try:
            events = core.upstream_data(self.upstream_id, data, time.monotonic(), time.time())
        except Exception:
            # A bug must not leave this connection half-handled: it is closed,
            # with the traceback, and its miners move as after any loss.
            self.hub.log.exception("upstream_failed_internally", pool=self.pool.name)
            self.close("internal error")
            self.hub.upstream_lost(self, "internal error")
            return
        self.hub.act(events)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.hub.upstream_lost(self, f"pool closed the connection{f': {exc}' if exc else ''}")

    def write(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if not self._outgoing:
            asyncio.get_running_loop().call_soon(self._flush)
        self._outgoing.append(data)

    def _flush(self) -> None:
        outgoing = self._outgoing
        if outgoing and self.transport is not None and not self.transport.is_closing():
            self.transport.write(outgoing[0] if len(outgoing) == 1 else b"".join(outgoing))
        self._outgoing = []

    def close(self, reason: str) -> None:
        if not self.closed:
            self.closed = True
            self.hub.log.info("upstream_closed", pool=self.pool.name, reason=reason)
            if self.transport is not None:
                self._flush()  # what the core sent before closing still goes out
                self.transport.close()


class Sv2PoolConn(UpstreamConn):
    """One TCP connection to an SV2 pool, carrying several channels (the core's upstreams).

    It opens with its first channel, takes later ones (``join``) while it lives,
    and closes when the core has left it no channel.
    """

    def __init__(self, hub: AggregateHub, pool: PoolEndpoint) -> None:
        super().__init__(hub, 0, pool)
        self.session: Sv2PoolConnection | None = None  # once connected
        self.waiting: list[tuple[int, str]] = []  # (upstream id, identity) until then
        self.channels: dict[int, Sv2PoolUpstream] = {}  # by upstream id
        self._upstream_of: dict[int, int] = {}  # id(channel) -> upstream id

    def join(self, upstream_id: int, identity: str) -> None:
        if self.session is None:
            self.waiting.append((upstream_id, identity))
            return
        channel = self.hub.sv2_channel(self.session, identity)
        self.channels[upstream_id] = channel
        self._upstream_of[id(channel)] = upstream_id
        self.hub.conns[upstream_id] = self
        self.hub.act(self.hub.core.upstream_connected(upstream_id, time.monotonic(), channel))

    def connected(self, session: Sv2PoolConnection) -> None:
        self.session = session
        waiting, self.waiting = self.waiting, []
        for upstream_id, identity in waiting:
            self.join(upstream_id, identity)

    def leave(self, upstream_id: int, reason: str) -> None:
        """The core closed this channel; the connection closes with its last one."""
        channel = self.channels.pop(upstream_id, None)
        if channel is not None:
            self._upstream_of.pop(id(channel), None)
        if channel is not None and self.session is not None:
            # The core took the channel's verdicts when it let go of it (connection_lost);
            # a retired channel has none left.  What remains is its CloseChannel.
            self.session.leave(channel, time.monotonic(), reason)
            self._send_queued()
        if not self.channels and not self.waiting:
            self.unlist()
            self.close(reason)

    def unlist(self) -> None:
        """No new channel joins this connection (it failed, is closing or is gone)."""
        if self.hub.sv2_conns.get(self.pool.name) is self:
            del self.hub.sv2_conns[self.pool.name]

    def lost(self, reason: str) -> None:
        """The connection is gone: every channel on it at once."""
        self.unlist()
        now = time.monotonic()
        if self.session is None:
            return  # still connecting: _open_sv2 reports its waiting channels failed
        if self.session is not None:
            self.session.connection_lost(now, reason)
        ids = list(self.channels)
        self.channels.clear()
        self._upstream_of.clear()
        for upstream_id in ids:
            if self.hub.conns.get(upstream_id) is self:
                del self.hub.conns[upstream_id]
        if ids:
            self.hub.act(self.hub.core.upstreams_lost(ids, reason, now))

    def data_received(self, data: bytes) -> None:
        if self.session is None or self.closed:
            return
        now, wall = time.monotonic(), time.time()
        try:
            routed = self.session.receive_data(data, now, wall)
        except RemoteProtocolError as exc:
            reason = f"pool broke the protocol: {exc}"
            self.close(reason)
            self.lost(reason)
            return
        except Exception:
            self.hub.log.exception("upstream_failed_internally", pool=self.pool.name)
            self.close("internal error")
            self.lost("internal error")
            return
        self._send_queued()  # the setup after the handshake, a CloseChannel
        for channel, events in routed:
            upstream_id = self._upstream_of.get(id(channel))
            if upstream_id is not None:
                self.hub.act(self.hub.core.upstream_events(upstream_id, events, now, wall))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.lost(f"pool closed the connection{f': {exc}' if exc else ''}")

    def _send_queued(self) -> None:
        if self.session is not None:
            data = self.session.client.data_to_send()
            if data:
                self.write(data)


class AggregateRelay(RelayBase):
    """One miner connection of an aggregate listener."""

    def __init__(
        self,
        server: ProxyServer,
        miner: asyncio.Transport,
        connection_id: int,
        miner_addr: str,
        hub: AggregateHub,
    ) -> None:
        super().__init__(server, miner, connection_id, miner_addr)
        self.hub = hub
        self.log = self.log.bind(mode="sv2" if hub.authority is not None else "aggregate")
        self.handshake_deadline: float | None = None  # SV2 miners: see start()
        self.miner_ids: list[int] = []  # the core's miners on this connection, ever
        self.sv2: Sv2Downstream | None = None  # an SV2 miner's connection (hub.attach)
        self.channels: list[Sv2Channel] = []  # its channels in the core now

    def start(self) -> None:
        self.hub.attach(self)
        if self.hub.authority is not None:
            # An SV2 miner must finish the handshake, SetupConnection and its channel's
            # open in time: a half-open connection holds an extranonce prefix.
            timeout = self.server.settings.sv2.handshake_timeout_s
            self.handshake_deadline = time.monotonic() + timeout
            self.timer.arm(self.handshake_deadline)

    def from_miner(self, data: bytes) -> None:
        self.link.last_rx = time.monotonic()
        if self.closed:
            return
        if self.sv2 is not None:
            self._from_sv2_miner(self.sv2, data)
            return
        try:
            events = self.hub.core.miner_data(
                self.connection_id, data, time.monotonic(), time.time()
            )
        except RemoteProtocolError as exc:
            self.log.warning("connection_closed_bad_input", side="miner", error=str(exc))
            self.close()
            return
        except Exception:
            self.log.exception("miner_failed_internally")  # a bug: close this miner, loudly
            self.close()
            return
        self.hub.act(events)

    def _from_sv2_miner(self, sv2: Sv2Downstream, data: bytes) -> None:
        try:
            received = sv2.receive_data(data)
        except RemoteProtocolError as exc:
            if isinstance(exc, Sv2FrameError) and exc.events:
                # Whole frames came before the bad one: their shares still count.
                try:
                    self.hub.sv2_events(self, exc.events)
                except Exception:
                    self.log.exception("miner_failed_internally")
            self.log.warning("connection_closed_bad_input", side="miner", error=str(exc))
            self._write_pending(sv2)  # an error answer it earned still goes out
            self.close()
            return
        try:
            self.hub.sv2_events(self, received)
        except Exception:
            self.log.exception("miner_failed_internally")  # a bug: close this miner, loudly
            self.close()
            return
        self._write_pending(sv2)

    def _write_pending(self, sv2: Sv2Downstream) -> None:
        """Answers of the connection itself (handshake, setup, errors), not a channel's."""
        data = sv2.data_to_send()
        if data:
            self.link.write(data)

    def _on_timer(self) -> None:
        now = time.monotonic()
        if self.closed or self.idle_expired(now):
            return
        deadline = self.handshake_deadline
        if deadline is not None:
            if self.sv2 is None or self.sv2.ready:
                self.handshake_deadline = None
            elif now >= deadline:
                self.log.warning(
                    "sv2_setup_timeout",
                    note="no open channel within sv2.handshake_timeout_s: closing",
                )
                self.close()
                return
            else:
                self.timer.arm(deadline)
        self.timer.arm(self.link.last_rx + self._idle_s)

    def has_pending(self) -> bool:
        return any(self.hub.core.pending_for(miner_id) > 0 for miner_id in self.miner_ids)

    def pause_pool(self) -> None:
        """The miner reads slowly.  Pool connections are shared: they are not paused."""

    def resume_pool(self) -> None:
        """See pause_pool."""

    def miner_closed(self, exc: Exception | None) -> None:
        """Shares in flight keep their place upstream: their rows are still written."""
        self.link.gone = True
        setting_up = self.handshake_deadline is not None and not self.closed
        if setting_up and self.sv2 is not None and not self.sv2.ready:
            # Most often the miner refused the proxy's handshake: it pins another
            # authority key, or its clock is outside the certificate's window.
            self.log.warning(
                "sv2_miner_left_during_setup",
                note="closed before its channel was open: check the miner's pool URL "
                "key (stratum-proxy keys show) and its clock",
                error=str(exc) if exc else None,
            )
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.timer.cancel()
        self.hub.detach(self)
        self.link.close()
        self.server.forget(self)
