"""Aggregate mode, sans-I/O: many SV1 miners on few SV1 pool connections.

    core = Aggregator(settings=..., pools=["main", "backup"], proxy_id="p1")
    events = core.add_miner(7, "10.0.0.7:4028", now)      # then miner_data(7, ...)
    events = core.upstream_connected(1, now)              # after an OpenUpstream(1, pool)
    events = core.upstream_data(1, data, now, wall=...)   # SendToMiner / SendToUpstream / ...

Contract (as every protocol core): bytes and time in, a list of events out
(bytes to send are events), ``get_timer()`` / ``handle_timer(now)``.  ``now``
is monotonic; ``wall`` stamps rows.

Rules (README, aggregate mode):

* **Placement.**  A miner gets a proxy-wide unique extranonce1 (``PrefixPool``)
  and is placed on a ready upstream of the first pool in priority order that
  is up, with fewer than ``miners_per_upstream`` miners and room for its
  extranonce; otherwise the core asks for another upstream connection.  Its
  subscribe is answered once it is placed.
* **Failover.**  When an upstream is lost, its shares in flight become
  ``no_response`` rows (answered to the miner as such), its jobs go stale,
  and its miners are moved, connections open, to another ready upstream (or
  wait for a new one: same pool first, then the next): a set_difficulty and
  a clean notify, extranonce1 unchanged where it fits; else set_extranonce
  to miners that subscribed to it, else a rationed client.reconnect.
* **Difficulty.**  Each miner has its own (``Vardiff``); a new one goes out
  just before the next notify.  A share meeting the job's pool target is
  forwarded and answered with the pool's verdict; one meeting only the
  miner's difficulty is accepted by the proxy; the proxy rejects unknown
  jobs (21), stale jobs (21), duplicates (22) and low difficulty (23), with
  reasons starting ``proxy:``.
* **Worker channels.**  An SV2 channel carries one user identity and SV2
  has no per-share worker name.  So on the pools in ``worker_channel_pools``,
  with ``identity_passthrough``, a miner mines on an upstream of its own
  worker name (``OpenUpstream.identity``): a channel opened under that name,
  shared by the worker's miners up to ``miners_per_upstream``.  An SV1
  miner names itself after its subscribe is answered: it starts on a shared
  channel and moves to its worker's once that has work.  A name the pool
  refuses mines under ``pool_user`` instead, for ``failback_check_s`` (then
  a new miner of that name tries again).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from stratum_proxy.aggregate import events as ev
from stratum_proxy.aggregate import upstream as up
from stratum_proxy.aggregate.extranonce import (
    WARN_BELOW,
    Placement,
    PrefixPool,
    fits,
    miner_extranonce2_size,
)
from stratum_proxy.aggregate.jobs import JobIds, MinerJobs, SentJob, UpstreamJob, miner_view
from stratum_proxy.aggregate.vardiff import Vardiff, VardiffSettings
from stratum_proxy.errors import RemoteProtocolError
from stratum_proxy.shares import ShareResult, submitted_share
from stratum_proxy.store.record import (
    STATUS_ACCEPTED,
    STATUS_NO_RESPONSE,
    STATUS_REJECTED,
    ShareRecord,
)
from stratum_proxy.sv1 import codes
from stratum_proxy.sv1 import messages as m
from stratum_proxy.sv1.downstream import (
    DownstreamEvent,
    LineIgnored,
    MalformedSubmit,
    MinerAuthorized,
    MinerSubscribed,
    SubmitReceived,
    SuggestedDifficulty,
    Sv1Downstream,
)


class MinerSession(Protocol):
    """What the core needs of a miner's protocol: ``Sv1Downstream``, ``Sv2Downstream``."""

    protocol: str  # the rows' protocol column
    version_mask: int  # rolling bits granted to the miner

    @property
    def extranonce_subscribed(self) -> bool: ...  # takes a new extranonce without reconnecting

    # A difficulty the miner asks for applies at once (SV2: UpdateChannel is answered
    # with SetTarget), not from the pool's next job (SV1's suggest_difficulty).
    difficulty_at_once: bool

    @property
    def channel_id(self) -> int | None: ...  # the rows' channel_id (None: the connection's)

    @property
    def extranonce1(self) -> bytes | None: ...  # None until assigned
    @property
    def extranonce2_size(self) -> int: ...
    def data_to_send(self) -> bytes: ...
    def receive_data(self, data: bytes) -> list[DownstreamEvent]: ...
    def assign(self, extranonce1: bytes, extranonce2_size: int) -> MinerSubscribed | None: ...
    def answer_submit(self, msg_id: m.RpcId, code: int | None, message: str = "") -> None: ...
    def send_difficulty(self, difficulty: float) -> None: ...
    def send_notify(self, params: list[Any]) -> None: ...
    def send_set_extranonce(self, extranonce1: bytes, extranonce2_size: int) -> None: ...
    def send_version_mask(self, mask: int) -> None: ...
    def send_reconnect(self) -> None: ...


_OTHER, _STALE, _DUPLICATE = codes.OTHER, codes.JOB_NOT_FOUND, codes.DUPLICATE
_LOW_DIFFICULTY = codes.LOW_DIFFICULTY


@dataclass(frozen=True, slots=True, kw_only=True)
class AggregateSettings:
    miners_per_upstream: int = 200
    prefix_bytes: int = 2  # the miners' extranonce1 width: 65,536 miners per proxy
    vardiff: VardiffSettings = field(default_factory=VardiffSettings)
    identity_passthrough: bool = True
    pool_user: str = ""
    pool_password: str = "x"
    failback: str = "priority"  # or "stay"
    failback_check_s: float = 30.0
    reconnects_per_s: float = 20.0  # client.reconnect rationing when nothing else works
    jobs_per_miner: int = 16
    # A pool silent this long: its current job is resent with a later ntime
    # (cpuminer drops a pool after 120 s without a job).
    job_keepalive_s: float = 60.0
    # A pool that sent no work this long is treated as dead: its miners move.
    work_timeout_s: float = 300.0
    submit_timeout_s: float = 30.0
    setup_timeout_s: float = 10.0
    max_line_bytes: int = 65536
    version_mask: int = 0x1FFFE000  # what miners may be granted at most (∩ the pool's)


@dataclass(slots=True, eq=False)
class _Upstream:
    upstream_id: int
    pool: int
    client: up.PoolClient
    ready: bool = False
    extranonce1: bytes = b""
    extranonce2_size: int = 0
    version_mask: int = 0
    miners: set[int] = field(default_factory=set)
    jobs: list[UpstreamJob] = field(default_factory=list)  # newest last, bounded
    authorized: set[str] = field(default_factory=set)
    refused: set[str] = field(default_factory=set)
    asked: set[str] = field(default_factory=set)
    retiring: bool = False  # no new miners; closed once its verdicts are in
    retire_reason: str = ""
    identity: str = ""  # a worker's own channel (SV2 pools); "": the farm's pool_user
    identity_refused: bool = False  # the pool refused that identity: not a pool failure
    last_job_at: float = 0.0  # monotonic time of its last notify (or of becoming ready)
    keepalives: int = 0  # keepalive copies of the current job sent since
    keepalive_ntime: int = 0  # the ntime of the last keepalive copy of the current job

    @property
    def current(self) -> UpstreamJob | None:
        return self.jobs[-1] if self.jobs else None


@dataclass(slots=True, eq=False)
class _Miner:
    miner_id: int
    addr: str
    session: MinerSession
    prefix: bytes
    vardiff: Vardiff
    jobs: MinerJobs
    worker: str = ""
    upstream: int | None = None  # the upstream it mines on
    placement: Placement | None = None
    waiting_since: float | None = None  # without current work since (monotonic)
    moved_from: int | None = None  # the pool it mined on before a failover / fail-back
    reconnecting: bool = False  # told (or queued) to reconnect: not placed again
    wants: str | None = None  # mining under another identity until its worker's channel is up


@dataclass(slots=True)
class _Forwarded:
    miner_id: int
    msg_id: m.RpcId
    record: ShareRecord


class Aggregator:
    """The aggregate core for one listener: its miners and its upstream connections."""

    def __init__(
        self,
        *,
        settings: AggregateSettings,
        pools: list[str],
        proxy_id: str,
        worker_channel_pools: frozenset[int] = frozenset(),
    ) -> None:
        """``worker_channel_pools``: the pools (indices) whose connections carry one user
        identity each (SV2 pools), where workers get upstreams of their own."""
        if not pools:
            raise ValueError("aggregate mode needs at least one pool")
        self.settings = settings
        self.pools = pools
        self.proxy_id = proxy_id
        self.prefixes = PrefixPool(settings.prefix_bytes)
        self.job_ids = JobIds()
        self.miners: dict[int, _Miner] = {}
        self.upstreams: dict[int, _Upstream] = {}
        self.pool_down_until: dict[int, float] = {}
        self._next_upstream = 1
        # upstream id -> (pool, identity), connecting or in setup; and the other way
        # round (one at a time per key).  With a channel per worker there are as many
        # keys as workers: placement looks them up instead of scanning every upstream.
        self._opening: dict[int, tuple[int, str]] = {}
        self._opening_keys: dict[tuple[int, str], int] = {}
        self._keyed: dict[tuple[int, str], dict[int, _Upstream]] = {}  # live upstreams
        # Miners without an upstream (not reconnecting), and those by worker name: a
        # worker's channel becoming ready looks only at its own miners.
        self._waiting: dict[int, _Miner] = {}
        self._waiting_by_worker: dict[str, dict[int, _Miner]] = {}
        # Placed miners whose own worker's channel is not up yet (an SV1 miner names
        # itself after its subscribe was answered), by that identity: they move over
        # when it has work.
        self._misplaced: dict[str, dict[int, _Miner]] = {}
        self._worker_channel_pools = (
            worker_channel_pools if settings.identity_passthrough else frozenset()
        )
        self._refused_identities: dict[tuple[int, str], float] = {}  # -> until (monotonic)
        self._reconnect_queue: list[int] = []
        self._next_reconnect_at = 0.0
        self._failback_at: float | None = None
        self._vardiff_at = 0.0
        self._retry_at: float | None = None  # every pool was down: when to try again
        self._moves: dict[tuple[int, int], list[float]] = {}  # (from, to) pool -> waits
        self._pending_by_miner: dict[int, int] = {}  # forwarded shares awaiting a verdict
        self.last_move_without_work_s = 0.0  # the last failover's longest wait for work
        self.counters: dict[str, int] = {}

    # -- miners ------------------------------------------------------------------------

    def add_miner(
        self,
        miner_id: int,
        addr: str,
        now: float,
        session: MinerSession | None = None,
        difficulty: float = 0.0,
        worker: str = "",
    ) -> list[ev.AggregateEvent]:
        """A new miner connection; ``session`` speaks its protocol (default: SV1).

        Any object with ``Sv1Downstream``'s interface will do: ``sv2.downstream``
        serves SV2 firmware that way.  ``difficulty`` > 0: what the miner asked for
        before its first job (an SV2 channel's nominal hashrate), within the bounds.
        ``worker``: its name when known before it is placed (an SV2 channel's user
        identity), which places it on its worker's channel of an SV2 pool.
        """
        events: list[ev.AggregateEvent] = []
        prefix = self.prefixes.take()
        if prefix is None:
            events.append(
                ev.CloseMiner(miner_id=miner_id, reason="no free extranonce1 on this proxy")
            )
            return events
        if session is None:
            session = Sv1Downstream(
                max_line_bytes=self.settings.max_line_bytes,
                version_mask=self.settings.version_mask,
            )
        self.miners[miner_id] = _Miner(
            miner_id=miner_id,
            addr=addr,
            session=session,
            prefix=prefix,
            vardiff=Vardiff(self.settings.vardiff, now),
            jobs=MinerJobs(self.settings.jobs_per_miner),
            waiting_since=now,
            worker=worker,
        )
        if difficulty > 0:
            self.miners[miner_id].vardiff.suggest(difficulty, now)
        self._set_waiting(self.miners[miner_id])
        # Only the newcomer: a miner arriving changes nothing for those already waiting.
        self._place_waiting(now, events, only=[self.miners[miner_id]])
        return events

    def session_of(self, miner_id: int) -> MinerSession | None:
        miner = self.miners.get(miner_id)
        return miner.session if miner is not None else None

    def remove_miner(self, miner_id: int, now: float) -> list[ev.AggregateEvent]:
        """The miner's connection is gone; shares it has in flight still get their rows."""
        miner = self.miners.pop(miner_id, None)
        if miner is not None:
            self._unset_waiting(miner)
            self._set_wants(miner, None)
            self.prefixes.release(miner.prefix)
            upstream = self.upstreams.get(miner.upstream) if miner.upstream is not None else None
            if upstream is not None:
                upstream.miners.discard(miner_id)
                events: list[ev.AggregateEvent] = []
                self._retire_if_unused(upstream, events)
                return events
        return []

    def miner_data(
        self, miner_id: int, data: bytes, now: float, wall: float | None = None
    ) -> list[ev.AggregateEvent]:
        """Raises LineTooLongError (fatal): the shell then closes and removes the miner."""
        miner = self.miners.get(miner_id)
        if miner is None:
            return []
        return self.miner_events(miner_id, miner.session.receive_data(data), now, wall)

    def miner_events(
        self,
        miner_id: int,
        received: list[DownstreamEvent],
        now: float,
        wall: float | None = None,
    ) -> list[ev.AggregateEvent]:
        """What the miner's session made of its bytes (an SV2 connection decodes them for
        each of its channels: ``miner_data`` is for one session per connection)."""
        wall = now if wall is None else wall
        events: list[ev.AggregateEvent] = []
        miner = self.miners.get(miner_id)
        if miner is None:
            return events
        try:
            for event in received:
                if isinstance(event, SubmitReceived):
                    self._on_submit(miner, event.submit, now, wall, "", events)
                elif isinstance(event, MalformedSubmit):
                    self._on_submit(miner, event.submit, now, wall, event.error, events)
                elif isinstance(event, MinerAuthorized):
                    self._on_authorized(miner, event.worker, now, events)
                elif isinstance(event, SuggestedDifficulty):
                    miner.vardiff.suggest(event.difficulty, now)
                    if miner.session.difficulty_at_once:
                        self._resend_current(miner, now)
                elif isinstance(event, LineIgnored):
                    events.append(
                        ev.Notice(
                            level="warning",
                            event="line_skipped",
                            fields=(("side", "miner"), ("reason", event.reason),
                                    ("line", event.excerpt)),
                            miner_id=miner_id,
                        )
                    )  # fmt: skip
        finally:
            self._flush_miner(miner, events)
        return events

    # -- upstreams ---------------------------------------------------------------------

    def upstream_connected(
        self, upstream_id: int, now: float, client: up.PoolClient | None = None
    ) -> list[ev.AggregateEvent]:
        """The connection is open; ``client`` speaks the pool's protocol (None: SV1)."""
        opening = self._opening.get(upstream_id)
        if opening is None:
            return [ev.CloseUpstream(upstream_id=upstream_id, reason="not wanted any more")]
        pool, identity = opening
        s = self.settings
        if client is None:
            client = up.Sv1Upstream(
                user=s.pool_user,
                password=s.pool_password,
                submit_timeout_s=s.submit_timeout_s,
                setup_timeout_s=s.setup_timeout_s,
                max_line_bytes=s.max_line_bytes,
            )
        self.upstreams[upstream_id] = _Upstream(
            upstream_id=upstream_id, pool=pool, client=client, identity=identity
        )
        self._keyed.setdefault(opening, {})[upstream_id] = self.upstreams[upstream_id]
        events: list[ev.AggregateEvent] = []
        self._client_events(self.upstreams[upstream_id], client.start(now), now, now, events)
        return events

    def upstream_failed(self, upstream_id: int, reason: str, now: float) -> list[ev.AggregateEvent]:
        """The TCP connection could not be opened (or set up)."""
        return self.upstreams_failed([upstream_id], reason, now)

    def upstreams_failed(
        self, upstream_ids: list[int], reason: str, now: float
    ) -> list[ev.AggregateEvent]:
        """Several at once: the channels that were to share one SV2 pool connection."""
        events: list[ev.AggregateEvent] = []
        pools = {o[0] for i in upstream_ids if (o := self._forget_opening(i)) is not None}
        for pool in sorted(pools):
            self._mark_down(pool, reason, now, events)
        self._place_waiting(now, events)
        return events

    def upstream_data(
        self, upstream_id: int, data: bytes, now: float, wall: float | None = None
    ) -> list[ev.AggregateEvent]:
        events: list[ev.AggregateEvent] = []
        upstream = self.upstreams.get(upstream_id)
        if upstream is None:
            return events
        try:
            received = upstream.client.receive_data(data, now, wall)
        except RemoteProtocolError as exc:
            return self.upstream_lost(upstream_id, f"pool broke the protocol: {exc}", now)
        self._client_events(upstream, received, now, now if wall is None else wall, events)
        return events

    def upstream_events(
        self,
        upstream_id: int,
        received: list[up.UpstreamEvent],
        now: float,
        wall: float | None = None,
    ) -> list[ev.AggregateEvent]:
        """What the shell decoded for this upstream (an SV2 pool connection's bytes are
        decoded once for all the channels on it: ``upstream_data`` is for one each)."""
        events: list[ev.AggregateEvent] = []
        upstream = self.upstreams.get(upstream_id)
        if upstream is not None:
            self._client_events(upstream, received, now, now if wall is None else wall, events)
        return events

    def upstream_lost(self, upstream_id: int, reason: str, now: float) -> list[ev.AggregateEvent]:
        """The connection closed: shares in flight become no_response, miners move."""
        return self.upstreams_lost([upstream_id], reason, now)

    def upstreams_lost(
        self, upstream_ids: list[int], reason: str, now: float
    ) -> list[ev.AggregateEvent]:
        """Several upstreams at once (the channels of one SV2 pool connection): all are
        gone before their miners are placed again, so none lands on a sibling."""
        events: list[ev.AggregateEvent] = []
        dropped = [u for i in upstream_ids if (u := self._drop_upstream(i, reason, now, events))]
        # One line and one verdict per pool, however many channels it carried.
        for pool in sorted({u.pool for u in dropped}):
            gone = [u for u in dropped if u.pool == pool]
            fields: tuple[tuple[str, object], ...] = (
                ("pool", self.pools[pool]),
                ("reason", reason),
                ("miners", sum(len(u.miners) for u in gone)),
            )
            if len(gone) > 1:
                fields += (("channels", len(gone)),)
            events.append(ev.Notice(level="warning", event="upstream_lost", fields=fields))
            if any(not u.ready and not u.identity_refused for u in gone):
                self._mark_down(pool, reason, now, events)
        if dropped:
            self._place_waiting(now, events)
        return events

    def _drop_upstream(
        self, upstream_id: int, reason: str, now: float, events: list[ev.AggregateEvent]
    ) -> _Upstream | None:
        """Forget the upstream: its shares in flight answered, its jobs stale, its miners
        waiting for another (their placement kept: the extranonce they mine with)."""
        self._forget_opening(upstream_id)
        upstream = self.upstreams.get(upstream_id)
        if upstream is None:
            return None
        # Its shares in flight become no_response rows (while it is still known).
        self._client_events(
            upstream, upstream.client.connection_lost(now, reason), now, now, events
        )
        self._forget_upstream(upstream)
        for job in upstream.jobs:
            job.stale = True
        for miner_id in upstream.miners:
            miner = self.miners.get(miner_id)
            if miner is not None:
                miner.upstream = None
                miner.waiting_since, miner.moved_from = now, upstream.pool
                self._set_wants(miner, None)  # placed afresh, by its identity
                self._set_waiting(miner)
        return upstream

    def _work_due(self, upstream: _Upstream) -> float:
        """When the pool's silence next matters: a keepalive, or giving up on it."""
        s = self.settings
        keepalive = upstream.last_job_at + s.job_keepalive_s * (upstream.keepalives + 1)
        return min(keepalive, upstream.last_job_at + s.work_timeout_s)

    def _check_work(self, upstream: _Upstream, now: float, events: list[ev.AggregateEvent]) -> None:
        silent = now - upstream.last_job_at
        if silent >= self.settings.work_timeout_s:
            reason = f"no work from the pool for {silent:.0f} s"
            events.append(ev.CloseUpstream(upstream_id=upstream.upstream_id, reason=reason))
            events += self.upstream_lost(upstream.upstream_id, reason, now)
            return
        job = upstream.current
        upstream.keepalives += 1
        if job is None or job.stale:
            return
        self._count("keepalive_jobs")
        # Always a new job for the miner: a later ntime than the last copy too, even
        # when copies come less than a second apart (the same ntime would resend
        # the same job id, and with it a fresh duplicate check).
        ntime = max(job.notify.ntime + max(1, int(silent)), upstream.keepalive_ntime + 1)
        upstream.keepalive_ntime = ntime
        for miner_id in upstream.miners:
            miner = self.miners.get(miner_id)
            if miner is not None and miner.placement is not None:
                self._send_job(miner, job, clean=False, now=now, ntime=ntime)
                self._flush_miner(miner, events)

    def pending_for(self, miner_id: int) -> int:
        """The miner's forwarded shares still waiting for the pool's verdict."""
        return self._pending_by_miner.get(miner_id, 0)

    # -- timers ------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        times = [u.client.get_timer() for u in self.upstreams.values()]
        times += [self._work_due(u) for u in self.upstreams.values() if u.ready]
        if self.miners:
            times.append(self._vardiff_at)
        if self._reconnect_queue:
            times.append(self._next_reconnect_at)
        if self._failback_at is not None:
            times.append(self._failback_at)
        if self._retry_at is not None:
            times.append(self._retry_at)
        live = [t for t in times if t is not None]
        return min(live) if live else None

    def handle_timer(self, now: float, wall: float | None = None) -> list[ev.AggregateEvent]:
        wall = now if wall is None else wall
        events: list[ev.AggregateEvent] = []
        for upstream in list(self.upstreams.values()):
            deadline = upstream.client.get_timer()
            if deadline is not None and deadline <= now:
                self._client_events(upstream, upstream.client.handle_timer(now), now, wall, events)
            if upstream.ready and self._work_due(upstream) <= now:
                self._check_work(upstream, now, events)
        if self._vardiff_at <= now:
            # Windows of busy miners close on their shares; this catches the quiet ones.
            self._vardiff_at = now + self.settings.vardiff.retarget_s / 4
            for miner in self.miners.values():
                if miner.upstream is not None and miner.vardiff.due() <= now:
                    miner.vardiff.retarget(now)
        self._send_reconnects(now, events)
        if self._retry_at is not None and self._retry_at <= now:
            self._retry_at = None
            self._place_waiting(now, events)
        if self._failback_at is not None and self._failback_at <= now:
            self._failback_at = None
            self._try_failback(now, events)
        return events

    # -- placing miners ----------------------------------------------------------------

    def _preferred_pools(self, now: float) -> list[int]:
        """Pools in priority order, those marked down last (all are tried in the end)."""
        up_ = [p for p in range(len(self.pools)) if self.pool_down_until.get(p, 0.0) <= now]
        down = [p for p in range(len(self.pools)) if p not in up_]
        return up_ + down

    def _set_waiting(self, miner: _Miner) -> None:
        if not miner.reconnecting:
            self._waiting[miner.miner_id] = miner
            self._waiting_by_worker.setdefault(miner.worker, {})[miner.miner_id] = miner

    def _unset_waiting(self, miner: _Miner) -> None:
        if self._waiting.pop(miner.miner_id, None) is not None:
            same = self._waiting_by_worker.get(miner.worker)
            if same is not None:
                same.pop(miner.miner_id, None)
                if not same:
                    del self._waiting_by_worker[miner.worker]

    def _place_waiting(
        self, now: float, events: list[ev.AggregateEvent], only: list[_Miner] | None = None
    ) -> None:
        """Place the miners waiting for an upstream, or open upstreams for them.

        ``only``: just these (a newcomer; a worker's miners when its channel became
        ready), where nothing changed for the others: with a channel per worker, a
        burst of thousands of miners would otherwise cost a pass over all of them
        each time one arrives.
        """
        waiting = list(self._waiting.values()) if only is None else only
        if not waiting:
            return
        order = self._preferred_pools(now)
        for miner in waiting:
            target = self._upstream_for(miner, order, now)
            if target is not None:
                self._place(miner, target, now, events)
        self._report_moves(events)
        waiting = [m for m in waiting if m.upstream is None and not m.reconnecting]
        if waiting:
            self._open_for_waiting(waiting, order, now, events)

    def _report_moves(self, events: list[ev.AggregateEvent]) -> None:
        """One line per (from, to) pool pair for the miners that got work after a move."""
        for (from_pool, to_pool), waits in self._moves.items():
            events.append(
                ev.MinersMoved(
                    from_pool=self.pools[from_pool],
                    to_pool=self.pools[to_pool],
                    miners=len(waits),
                    without_work_s=round(max(waits), 3),
                )
            )
            self.last_move_without_work_s = max(waits)
            self._count("failbacks" if from_pool > to_pool else "failovers")
        self._moves.clear()

    def _identity_for(self, miner: _Miner, pool: int, now: float) -> str:
        """The channel identity the miner mines under on ``pool``: "" is ``pool_user``."""
        worker = miner.worker
        if pool not in self._worker_channel_pools or worker in ("", self.settings.pool_user):
            return ""
        until = self._refused_identities.get((pool, worker))
        if until is not None:
            if until > now:
                return ""
            del self._refused_identities[(pool, worker)]  # time to ask the pool again
        return worker

    def _upstream_for(self, miner: _Miner, order: list[int], now: float) -> _Upstream | None:
        """A ready upstream of the best pool with room: one its extranonce fits first."""
        cap = self.settings.miners_per_upstream
        size = miner.placement.miner_size if miner.placement else 0
        # The best pool only (others are for when it is down), the miner's identity there.
        key = (order[0], self._identity_for(miner, order[0], now))
        fallback = None
        for upstream in self._live(*key):
            if len(upstream.miners) >= cap:
                continue
            if not size or fits(upstream.extranonce2_size, miner.prefix, size) is not None:
                return upstream
            fallback = fallback or upstream  # needs set_extranonce or a reconnect
        return fallback

    def _open_for_waiting(
        self, waiting: list[_Miner], order: list[int], now: float, events: list[ev.AggregateEvent]
    ) -> None:
        best = order[0]
        down_until = self.pool_down_until.get(best, 0.0)
        if down_until > now:
            # Every pool is down: try the best again when its pause is over, not
            # in a tight loop of refused connections.
            self._retry_at = (
                down_until if self._retry_at is None else min(self._retry_at, down_until)
            )
            return
        for identity in {self._identity_for(miner, best, now) for miner in waiting}:
            self._open_upstream(best, identity, events)

    def _open_upstream(self, pool: int, identity: str, events: list[ev.AggregateEvent]) -> None:
        """A new connection to ``pool`` for ``identity``'s miners, unless one is on its way.

        One connection at a time per pool and identity: it takes the waiting miners
        when it is ready, and another follows if some are left.
        """
        if (pool, identity) in self._opening_keys:
            return
        upstream_id = self._next_upstream
        self._next_upstream += 1
        self._opening[upstream_id] = (pool, identity)
        self._opening_keys[(pool, identity)] = upstream_id
        events.append(ev.OpenUpstream(upstream_id=upstream_id, pool=pool, identity=identity))

    def _place(
        self, miner: _Miner, upstream: _Upstream, now: float, events: list[ev.AggregateEvent]
    ) -> bool:
        session = miner.session
        size = session.extranonce2_size if session.extranonce1 is not None else 0
        placement = fits(upstream.extranonce2_size, miner.prefix, size) if size else None
        if placement is None:
            new_size = miner_extranonce2_size(upstream.extranonce2_size, len(miner.prefix))
            if new_size is None:
                return False
            if new_size < WARN_BELOW:
                events.append(
                    ev.Notice(
                        level="warning",
                        event="small_extranonce2",
                        fields=(("pool", self.pools[upstream.pool]), ("miner_size", new_size)),
                        miner_id=miner.miner_id,
                    )
                )
            placement = Placement(
                prefix=miner.prefix,
                miner_size=new_size,
                pad=upstream.extranonce2_size - len(miner.prefix) - new_size,
            )
            if size:  # it was placed before, with a size this upstream cannot hold
                if not session.extranonce_subscribed:
                    self._queue_reconnect(miner, now)
                    return False
                session.send_set_extranonce(miner.prefix, new_size)
            else:
                session.assign(miner.prefix, new_size)  # answers its held subscribe
        miner.upstream, miner.placement = upstream.upstream_id, placement
        self._unset_waiting(miner)
        upstream.miners.add(miner.miner_id)
        granted = session.version_mask
        if granted and granted & upstream.version_mask != granted:
            # Rolling bits this pool does not allow would make every share invalid there.
            session.send_version_mask(granted & upstream.version_mask)
        if miner.worker:
            self._authorize_upstream(upstream, miner.worker, now, events)
        job = upstream.current
        if job is not None:
            self._send_job(miner, job, clean=True, now=now)
        self._flush_miner(miner, events)
        self._check_identity(miner, upstream, now, events)  # last: it may move the miner
        return True

    def _check_identity(
        self, miner: _Miner, upstream: _Upstream, now: float, events: list[ev.AggregateEvent]
    ) -> None:
        """A miner mining under another identity than its own on this pool (its name
        came later, or its channel was not up): have its channel opened, move it then."""
        wanted = self._identity_for(miner, upstream.pool, now)
        if wanted == upstream.identity:
            self._set_wants(miner, None)
            return
        self._set_wants(miner, wanted)
        ready = [u for u in self._live(upstream.pool, wanted) if u.current is not None]
        if ready:
            self._adopt(ready[0], now, events)
        elif not self._has_upstream(upstream.pool, wanted):
            self._open_upstream(upstream.pool, wanted, events)

    def _set_wants(self, miner: _Miner, identity: str | None) -> None:
        if miner.wants is not None:
            same = self._misplaced.get(miner.wants)
            if same is not None:
                same.pop(miner.miner_id, None)
                if not same:
                    del self._misplaced[miner.wants]
        miner.wants = identity
        if identity is not None:
            self._misplaced.setdefault(identity, {})[miner.miner_id] = miner

    def _adopt(self, upstream: _Upstream, now: float, events: list[ev.AggregateEvent]) -> None:
        """A worker's channel has work: that worker's miners mining elsewhere on the same
        pool move over (connections kept, extranonce1 unchanged where it fits)."""
        movers = self._misplaced.get(upstream.identity) if upstream.identity else None
        for miner in list(movers.values()) if movers else []:
            if len(upstream.miners) >= self.settings.miners_per_upstream:
                break
            old = self.upstreams.get(miner.upstream) if miner.upstream is not None else None
            if old is None or old.pool != upstream.pool:
                continue  # a fail-back brings it to this pool (_move_to_better)
            old.miners.discard(miner.miner_id)
            miner.upstream = None
            self._set_waiting(miner)
            if not self._place(miner, upstream, now, events):
                self._place_waiting(now, events, only=[miner])
            self._retire_if_unused(old, events)

    def _queue_reconnect(self, miner: _Miner, now: float) -> None:
        self._unset_waiting(miner)
        miner.reconnecting = True
        if miner.miner_id not in self._reconnect_queue:
            self._reconnect_queue.append(miner.miner_id)
            self._next_reconnect_at = max(self._next_reconnect_at, now)

    def _send_reconnects(self, now: float, events: list[ev.AggregateEvent]) -> None:
        """client.reconnect to this proxy, at most ``reconnects_per_s``: never a storm."""
        interval = 1.0 / self.settings.reconnects_per_s
        while self._reconnect_queue and self._next_reconnect_at <= now:
            miner = self.miners.get(self._reconnect_queue.pop(0))
            if miner is None:
                continue
            miner.session.send_reconnect()
            self._flush_miner(miner, events)
            self._count("reconnects_sent")
            self._next_reconnect_at = max(self._next_reconnect_at, now) + interval

    def _mark_down(
        self, pool: int, reason: str, now: float, events: list[ev.AggregateEvent]
    ) -> None:
        self.pool_down_until[pool] = now + self.settings.failback_check_s
        events.append(
            ev.Notice(
                level="warning",
                event="pool_down",
                fields=(("pool", self.pools[pool]), ("reason", reason)),
            )
        )
        if self.settings.failback == "priority" and self._failback_at is None:
            self._failback_at = now + self.settings.failback_check_s

    def _try_failback(self, now: float, events: list[ev.AggregateEvent]) -> None:
        """Back to a better pool that may be up again: open a connection to it."""
        current = {u.pool for u in self.upstreams.values() if u.ready}
        best_in_use = min(current) if current else None
        for pool in range(len(self.pools)):
            if best_in_use is not None and pool >= best_in_use:
                break
            if all(opening[0] != pool for opening in self._opening.values()):
                self.pool_down_until.pop(pool, None)
                self._open_upstream(pool, "", events)
            return

    def _move_to_better(
        self, upstream: _Upstream, now: float, events: list[ev.AggregateEvent]
    ) -> None:
        """A better pool's connection is ready: move miners there (fail back)."""
        if self.settings.failback != "priority":
            return
        worse = [u for u in self.upstreams.values() if u.ready and u.pool > upstream.pool]
        for old in worse:
            for miner_id in list(old.miners):
                miner = self.miners.get(miner_id)
                if miner is None or len(upstream.miners) >= self.settings.miners_per_upstream:
                    continue
                identity = self._identity_for(miner, upstream.pool, now)
                if identity != upstream.identity:
                    # Its own worker's channel there first: it mines here until that is ready.
                    if not self._has_upstream(upstream.pool, identity):
                        self._open_upstream(upstream.pool, identity, events)
                    continue
                old.miners.discard(miner_id)
                miner.upstream = None
                miner.waiting_since, miner.moved_from = now, old.pool
                self._set_waiting(miner)
                if not self._place(miner, upstream, now, events):
                    self._place_waiting(now, events)
        self._report_moves(events)
        for old in worse:
            if not old.miners:
                self._retire(old, "failed back", events)

    def _has_upstream(self, pool: int, identity: str) -> bool:
        """A connection of ``pool`` for ``identity`` that is ready (not retiring) or opening."""
        if (pool, identity) in self._opening_keys:
            return True
        return any(self._live(pool, identity))

    def _live(self, pool: int, identity: str) -> Iterator[_Upstream]:
        """The ready upstreams of ``pool`` for ``identity`` that take miners (not retiring)."""
        for upstream in self._keyed.get((pool, identity), {}).values():
            if upstream.ready and not upstream.retiring:
                yield upstream

    def _forget_opening(self, upstream_id: int) -> tuple[int, str] | None:
        key = self._opening.pop(upstream_id, None)
        if key is not None and self._opening_keys.get(key) == upstream_id:
            del self._opening_keys[key]
        return key

    def _forget_upstream(self, upstream: _Upstream) -> None:
        self.upstreams.pop(upstream.upstream_id, None)
        key = (upstream.pool, upstream.identity)
        keyed = self._keyed.get(key)
        if keyed is not None:
            keyed.pop(upstream.upstream_id, None)
            if not keyed:
                del self._keyed[key]

    def _retire_if_unused(self, upstream: _Upstream, events: list[ev.AggregateEvent]) -> None:
        """An upstream its last miner left: a worker's channel closes (its worker may come
        back: a channel opens again), and so does a shared one unless it is the pool's
        last (kept for newcomers).  Idle pool connections do not pile up after a burst."""
        if upstream.miners or upstream.retiring or not upstream.ready:
            return
        if not upstream.identity and not any(
            u is not upstream for u in self._live(upstream.pool, "")
        ):
            return  # the pool's last shared one
        self._retire(upstream, "no miners left", events)

    def _retire(self, upstream: _Upstream, reason: str, events: list[ev.AggregateEvent]) -> None:
        upstream.retiring, upstream.retire_reason = True, reason
        self._close_if_retired(upstream, events)

    def _close_if_retired(self, upstream: _Upstream, events: list[ev.AggregateEvent]) -> None:
        """A connection no miner uses any more closes once the pool answered what it owes."""
        if not upstream.retiring or upstream.miners or upstream.client.pending():
            return
        for job in upstream.jobs:
            job.stale = True
        self._forget_upstream(upstream)
        reason = upstream.retire_reason
        events.append(ev.CloseUpstream(upstream_id=upstream.upstream_id, reason=reason))

    # -- upstream events ---------------------------------------------------------------

    def _client_events(
        self,
        upstream: _Upstream,
        received: list[up.UpstreamEvent],
        now: float,
        wall: float,
        events: list[ev.AggregateEvent],
    ) -> None:
        for event in received:
            if upstream.upstream_id not in self.upstreams:
                break  # lost or closed by an earlier event of this batch: the rest is moot
            if isinstance(event, up.SendToPool):
                events.append(ev.SendToUpstream(upstream_id=upstream.upstream_id, data=event.data))
            elif isinstance(event, up.PoolJob):
                self._on_job(upstream, event, now, events)
            elif isinstance(event, up.ShareVerdict):
                self._on_verdict(event, events)
            elif isinstance(event, up.UpstreamReady):
                self._on_ready(upstream, event, now, events)
            elif isinstance(event, up.UpstreamRefused):
                events.append(
                    ev.CloseUpstream(upstream_id=upstream.upstream_id, reason=event.reason)
                )
                self._mark_down(upstream.pool, event.reason, now, events)
                events += self.upstream_lost(upstream.upstream_id, event.reason, now)
            elif isinstance(event, up.WorkerAuthorized):
                self._on_worker_authorized(upstream, event, now, events)
            elif isinstance(event, up.LateVerdict):
                self._count("late_verdicts")
                events.append(
                    ev.Notice(
                        level="warning",
                        event="late_answer",
                        fields=(("accepted", event.accepted), ("reason", event.reason),
                                ("late_ms", round(event.late_s * 1000, 1))),
                    )
                )  # fmt: skip
            elif isinstance(event, up.PoolReconnect):
                events.append(
                    ev.CloseUpstream(
                        upstream_id=upstream.upstream_id, reason="pool asked to reconnect"
                    )
                )
                events += self.upstream_lost(upstream.upstream_id, "pool asked to reconnect", now)
            elif isinstance(event, up.ExtranonceChanged):
                events.append(
                    ev.CloseUpstream(
                        upstream_id=upstream.upstream_id, reason="pool changed extranonce"
                    )
                )
                events += self.upstream_lost(upstream.upstream_id, "pool changed extranonce", now)
            elif isinstance(event, up.PoolNotice):
                events.append(
                    ev.Notice(
                        level=event.level, event="pool_notice", fields=(("text", event.text),)
                    )
                )
        if upstream.retiring:
            self._close_if_retired(upstream, events)

    def _on_ready(
        self,
        upstream: _Upstream,
        event: up.UpstreamReady,
        now: float,
        events: list[ev.AggregateEvent],
    ) -> None:
        self._forget_opening(upstream.upstream_id)
        upstream.ready = True
        upstream.extranonce1 = event.extranonce1
        upstream.extranonce2_size = event.extranonce2_size
        upstream.version_mask = event.version_mask
        if miner_extranonce2_size(event.extranonce2_size, self.prefixes.prefix_bytes) is None:
            reason = f"extranonce2_size {event.extranonce2_size} leaves no room for miners"
            events.append(ev.CloseUpstream(upstream_id=upstream.upstream_id, reason=reason))
            self._mark_down(upstream.pool, reason, now, events)
            events += self.upstream_lost(upstream.upstream_id, reason, now)
            return
        events.append(
            ev.Notice(
                level="info",
                event="upstream_ready",
                fields=(("pool", self.pools[upstream.pool]),
                        ("extranonce2_size", event.extranonce2_size),
                        ("version_mask", f"{event.version_mask:08x}")),
            )
        )  # fmt: skip
        was_down = self.pool_down_until.pop(upstream.pool, None) is not None
        upstream.last_job_at = now
        # A worker's channel takes only that worker's miners; anything else (a shared
        # channel, a pool back up: the order of pools changed) looks at every waiting one.
        if upstream.identity and not was_down:
            own = self._waiting_by_worker.get(upstream.identity, {})
            self._place_waiting(now, events, only=list(own.values()))
        else:
            self._place_waiting(now, events)

    def _on_job(
        self,
        upstream: _Upstream,
        event: up.PoolJob,
        now: float,
        events: list[ev.AggregateEvent],
    ) -> None:
        if not upstream.ready:
            return
        job = UpstreamJob(
            upstream_id=upstream.upstream_id,
            notify=event.notify,
            pool_difficulty=event.difficulty,
            extranonce1=upstream.extranonce1,
            extranonce2_size=upstream.extranonce2_size,
            pool_name=self.pools[upstream.pool],
        )
        if event.notify.clean_jobs:
            for old in upstream.jobs:
                old.stale = True
        upstream.jobs.append(job)
        del upstream.jobs[: -self.settings.jobs_per_miner]
        upstream.last_job_at, upstream.keepalives, upstream.keepalive_ntime = now, 0, 0
        first_job = len(upstream.jobs) == 1
        for miner_id in upstream.miners:
            miner = self.miners.get(miner_id)
            if miner is not None:
                self._send_job(miner, job, clean=event.notify.clean_jobs or first_job, now=now)
                self._flush_miner(miner, events)
        self._report_moves(events)
        if first_job:
            # Work is flowing: miners on a worse pool come back here (fail back), and
            # a worker's miners mining under another identity on this pool come over.
            self._move_to_better(upstream, now, events)
            self._adopt(upstream, now, events)

    def _send_job(
        self, miner: _Miner, job: UpstreamJob, *, clean: bool, now: float, ntime: int | None = None
    ) -> None:
        assert miner.placement is not None
        if miner.waiting_since is not None:
            upstream = self.upstreams.get(job.upstream_id)
            if miner.moved_from is not None and upstream is not None:
                waits = self._moves.setdefault((miner.moved_from, upstream.pool), [])
                waits.append(now - miner.waiting_since)
            miner.waiting_since = miner.moved_from = None
        view = miner_view(job, miner.placement.pad, self.job_ids, ntime)
        new = miner.vardiff.take_pending()
        if new is not None or miner.jobs.latest() is None:
            miner.session.send_difficulty(miner.vardiff.difficulty)
        params = list(view.notify_params)
        params[8] = clean or (params[8] and ntime is None)  # a keepalive copy is never clean
        miner.session.send_notify(params)
        miner.jobs.add(
            SentJob(
                view=view,
                job=view.share_job(miner.prefix),
                miner_difficulty=miner.vardiff.difficulty,
            )
        )

    def _resend_current(self, miner: _Miner, now: float) -> None:
        """A copy of the current job with a later ntime, so a new difficulty applies now.

        The later ntime makes it new work (the same header again would find the same
        shares, duplicates); copies are kept within 30 s of the pool's clock, so a
        miner that keeps asking gets its difficulty with the pool's next job instead.
        """
        upstream = self.upstreams.get(miner.upstream) if miner.upstream is not None else None
        job = upstream.current if upstream is not None else None
        if miner.vardiff.pending is None or miner.placement is None or job is None or job.stale:
            return  # nothing changed, or the new difficulty goes out with the next job
        assert upstream is not None
        ntime = max(job.notify.ntime + 1, upstream.keepalive_ntime + 1)
        if ntime > job.notify.ntime + int(now - upstream.last_job_at) + 30:
            return
        upstream.keepalive_ntime = ntime
        self._send_job(miner, job, clean=False, now=now, ntime=ntime)

    # -- shares ------------------------------------------------------------------------

    def _on_submit(
        self,
        miner: _Miner,
        submit: m.Submit,
        now: float,
        wall: float,
        malformed: str,
        events: list[ev.AggregateEvent],
    ) -> None:
        # Each row is built once, when its fate is known (a share's only copy is the
        # pool's verdict): the per-share path makes no intermediate records.
        sent = miner.jobs.get(submit.job_id)
        if malformed:
            self._reject(miner, submit, sent, wall, None, _OTHER, malformed,
                         "proxy: malformed submit", events)  # fmt: skip
            return
        if sent is None:
            self._reject(miner, submit, sent, wall, None, _STALE, "job not found",
                         "proxy: unknown job", events)  # fmt: skip
            return
        pool_job = sent.view.upstream
        upstream = self.upstreams.get(pool_job.upstream_id)
        mask = upstream.version_mask & miner.session.version_mask if upstream else 0
        # The miner's extranonce2 size for this job (it may have changed since).
        size = pool_job.extranonce2_size - len(miner.prefix) - sent.view.pad
        try:
            extranonce2 = bytes.fromhex(submit.extranonce2)
            if len(extranonce2) != size or len(submit.extranonce2) != 2 * size:
                raise ValueError(
                    f"extranonce2 must be {size} bytes, got {submit.extranonce2[:40]!r}"
                )
            share = submitted_share(
                sent.job, extranonce2, submit.ntime, submit.nonce, submit.version_bits, mask
            )
        except ValueError as exc:
            self._reject(miner, submit, sent, wall, None, _OTHER, f"malformed share: {exc}",
                         "proxy: malformed submit", events)  # fmt: skip
            return
        if not sent.first_time(submit.extranonce2, submit.ntime, submit.nonce, submit.version_bits):
            self._reject(miner, submit, sent, wall, share, _DUPLICATE, "duplicate share",
                         "proxy: duplicate share", events)  # fmt: skip
            return
        if not share.meets(sent.miner_target):
            self._reject(miner, submit, sent, wall, share, _LOW_DIFFICULTY,
                         "low difficulty share", "proxy: below the miner's difficulty",
                         events)  # fmt: skip
            return
        miner.vardiff.on_share(now)
        if share.meets(pool_job.pool_target) and upstream is not None and not pool_job.stale:
            worker = (
                miner.worker if miner.worker in upstream.authorized else self.settings.pool_user
            )
            sent_events = upstream.client.submit(
                worker=worker,
                job_id=pool_job.notify.job_id,
                extranonce2=(miner.prefix + extranonce2 + bytes(sent.view.pad)).hex(),
                ntime=submit.ntime,
                nonce=submit.nonce,
                version_bits=submit.version_bits,
                version=share.version,
                token=_Forwarded(
                    miner.miner_id,
                    submit.id,
                    self._new_record(miner, submit, sent, wall, share, forwarded=True),
                ),
                now=now,
            )
            self._count("shares_forwarded")
            self._pending_by_miner[miner.miner_id] = self.pending_for(miner.miner_id) + 1
            self._client_events(upstream, sent_events, now, wall, events)
            return
        if pool_job.stale:
            self._reject(miner, submit, sent, wall, share, _STALE, "stale share",
                         "proxy: stale job", events)  # fmt: skip
            return
        # Real work at the difficulty the proxy asked for; the pool would not count it.
        self._count("shares_judged_locally")
        miner.session.answer_submit(submit.id, None)
        record = self._new_record(miner, submit, sent, wall, share, status=STATUS_ACCEPTED)
        events.append(ev.ShareRecorded(miner_id=miner.miner_id, record=record))

    def _new_record(
        self,
        miner: _Miner,
        submit: m.Submit,
        sent: SentJob | None,
        wall: float,
        share: ShareResult | None,
        *,
        status: str = STATUS_NO_RESPONSE,
        reject_reason: str = "",
        forwarded: bool = False,
    ) -> ShareRecord:
        """The share's row (``share``: its header, once rebuilt; None: never built)."""
        pool_job = sent.view.upstream if sent is not None else None
        if pool_job is not None:
            pool_name = pool_job.pool_name  # the pool whose job it is, even if gone since
        else:
            upstream = self.upstreams.get(miner.upstream) if miner.upstream is not None else None
            pool_name = self.pools[upstream.pool] if upstream is not None else ""
        return ShareRecord(
            ts=wall,
            proxy_id=self.proxy_id,
            upstream=pool_name,
            protocol=miner.session.protocol,
            channel_id=miner.miner_id
            if miner.session.channel_id is None
            else miner.session.channel_id,
            worker=submit.worker,
            miner_addr=miner.addr,
            job_id=submit.job_id,
            extranonce2=submit.extranonce2,
            ntime=submit.ntime,
            nonce=submit.nonce,
            version=share.version if share is not None else 0,
            share_hash=share.hash_hex if share is not None else "",
            share_difficulty=share.difficulty if share is not None else 0.0,
            pool_difficulty=pool_job.pool_difficulty if pool_job is not None else 0.0,
            network_difficulty=sent.job.network_difficulty if sent is not None else 0.0,
            status=status,
            reject_reason=reject_reason,
            is_block=share.is_block if share is not None else False,
            response_ms=0.0,
            version_bits=submit.version_bits or "",
            extranonce1=miner.prefix.hex(),
            connection_id=miner.miner_id,
            miner_difficulty=sent.miner_difficulty
            if sent is not None
            else miner.vardiff.difficulty,
            forwarded=forwarded,
            verdict_by="proxy",
        )

    def _reject(
        self,
        miner: _Miner,
        submit: m.Submit,
        sent: SentJob | None,
        wall: float,
        share: ShareResult | None,
        code: int,
        message: str,
        reason: str,
        events: list[ev.AggregateEvent],
    ) -> None:
        self._count("shares_rejected_locally")
        miner.session.answer_submit(submit.id, code, message)
        record = self._new_record(
            miner, submit, sent, wall, share, status=STATUS_REJECTED, reject_reason=reason
        )
        events.append(ev.ShareRecorded(miner_id=miner.miner_id, record=record))

    def _on_verdict(self, verdict: up.ShareVerdict, events: list[ev.AggregateEvent]) -> None:
        token = verdict.token
        assert isinstance(token, _Forwarded)
        left = self.pending_for(token.miner_id) - 1
        if left > 0:
            self._pending_by_miner[token.miner_id] = left
        else:
            self._pending_by_miner.pop(token.miner_id, None)
        answered = verdict.status != STATUS_NO_RESPONSE
        record = token.record._replace(
            status=verdict.status,
            reject_reason=verdict.reason,
            verdict_by="pool" if answered else "",
            response_ms=max(0.0, (verdict.resolved_at - verdict.submitted_at) * 1000.0)
            if answered
            else 0.0,
        )
        miner = self.miners.get(token.miner_id)
        if miner is not None:
            if verdict.status == STATUS_ACCEPTED:
                miner.session.answer_submit(token.msg_id, None)
            elif verdict.status == STATUS_REJECTED:
                miner.session.answer_submit(
                    token.msg_id, _error_code(verdict.reason), verdict.reason
                )
            else:
                miner.session.answer_submit(token.msg_id, _OTHER, "no response from the pool")
            self._flush_miner(miner, events)
        events.append(ev.ShareRecorded(miner_id=token.miner_id, record=record))

    # -- identities --------------------------------------------------------------------

    def _on_authorized(
        self, miner: _Miner, worker: str, now: float, events: list[ev.AggregateEvent]
    ) -> None:
        waiting = miner.miner_id in self._waiting
        if waiting:
            self._unset_waiting(miner)  # indexed by its name: the old one
        miner.worker = worker
        if waiting:
            self._set_waiting(miner)
        if miner.upstream is not None:
            upstream = self.upstreams[miner.upstream]
            self._authorize_upstream(upstream, worker, now, events)
            self._check_identity(miner, upstream, now, events)

    def _authorize_upstream(
        self, upstream: _Upstream, worker: str, now: float, events: list[ev.AggregateEvent]
    ) -> None:
        if (
            not self.settings.identity_passthrough
            or not upstream.client.worker_identities
            or worker in upstream.asked
        ):
            return
        if worker == self.settings.pool_user:
            upstream.authorized.add(worker)
            return
        upstream.asked.add(worker)
        sent = upstream.client.authorize(worker, self.settings.pool_password, now)
        self._client_events(upstream, sent, now, now, events)

    def _on_worker_authorized(
        self,
        upstream: _Upstream,
        event: up.WorkerAuthorized,
        now: float,
        events: list[ev.AggregateEvent],
    ) -> None:
        if event.accepted:
            upstream.authorized.add(event.worker)
            return
        if upstream.identity and event.worker == upstream.identity:
            self._on_identity_refused(upstream, event.reason, now, events)
            return
        upstream.refused.add(event.worker)
        events.append(
            ev.Notice(
                level="warning",
                event="worker_refused_by_pool",
                fields=(("worker", event.worker), ("reason", event.reason),
                        ("fallback", f"shares go under the pool user {self.settings.pool_user}")),
            )
        )  # fmt: skip

    def _on_identity_refused(
        self, upstream: _Upstream, reason: str, now: float, events: list[ev.AggregateEvent]
    ) -> None:
        """The pool refused (or closed) a worker's channel: its miners go under pool_user.

        Not a pool failure: the pool is not marked down, and the worker's miners,
        waiting or mining here, move to a shared connection of the same pool.
        """
        pool, identity = upstream.pool, upstream.identity
        self._refused_identities[(pool, identity)] = now + self.settings.failback_check_s
        self._count("worker_channels_refused")
        events.append(
            ev.Notice(
                level="warning",
                event="worker_refused_by_pool",
                fields=(("worker", identity), ("pool", self.pools[pool]), ("reason", reason),
                        ("fallback", f"shares go under the pool user {self.settings.pool_user}")),
            )
        )  # fmt: skip
        upstream.identity_refused = True
        for miner in list(self._misplaced.get(identity, {}).values()):
            self._set_wants(miner, None)  # they stay where they are
        events.append(ev.CloseUpstream(upstream_id=upstream.upstream_id, reason=reason))
        events += self.upstream_lost(upstream.upstream_id, reason, now)
        # Its miners still on a worse pool (a fail-back waiting for this channel)
        # come back on the shared connection instead.
        shared = [u for u in self._live(pool, "") if u.current is not None]
        if shared:
            self._move_to_better(shared[0], now, events)
        elif any(
            u.pool > pool and any(
                self.miners[i].worker == identity for i in u.miners if i in self.miners
            )
            for u in self.upstreams.values()
        ):  # fmt: skip
            self._open_upstream(pool, "", events)

    # -- helpers -----------------------------------------------------------------------

    def _flush_miner(self, miner: _Miner, events: list[ev.AggregateEvent]) -> None:
        data = miner.session.data_to_send()
        if data:
            events.append(ev.SendToMiner(miner_id=miner.miner_id, data=data))

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1


def _error_code(reason: str) -> int:
    """The SV1 code of a pool's reason: "21 Stale" -> 21, an SV2 pool's "stale-share" -> 21."""
    head = reason.split(" ", 1)[0]
    return int(head) if head.isdigit() and len(head) <= 3 else codes.from_sv2(head)


def summary(core: Aggregator) -> dict[str, Any]:
    """Pool connections per pool, miners, difficulties and counters, for metrics and logs."""
    per_pool: dict[str, int] = {}
    for u in core.upstreams.values():
        if u.ready:
            per_pool[core.pools[u.pool]] = per_pool.get(core.pools[u.pool], 0) + 1
    placed = sum(1 for m in core.miners.values() if m.upstream is not None)
    difficulties = sorted(m.vardiff.difficulty for m in core.miners.values())
    quantiles = (
        {
            "0": difficulties[0],
            "0.5": difficulties[len(difficulties) // 2],
            "1": difficulties[-1],
        }
        if difficulties
        else {}
    )
    return {
        "miners": len(core.miners),
        "miners_placed": placed,
        "upstreams": per_pool,
        "aggregation": placed / max(1, sum(per_pool.values())),
        "miner_difficulty": quantiles,
        "last_move_without_work_s": core.last_move_without_work_s,
        **core.counters,
    }
