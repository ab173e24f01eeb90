"""An SV2 pool's channels as aggregated upstreams (aggregate and sv2 listeners).  Sans-I/O.

``Sv2PoolUpstream`` is one extended channel with ``Sv1Upstream``'s interface
and events, so the aggregate core places miners on an SV2 pool exactly as on
an SV1 one: the proxy carves its miners' extranonce prefixes out of the
channel's extranonce space.  ``Sv2PoolConnection`` is the pool connection
the channels share (one Noise session, one SetupConnection): it decodes the
pool's bytes once and hands each channel its events.

Mapping (notes §5, the translator's rules read the other way round):

* OpenExtendedMiningChannel.Success -> ``UpstreamReady`` (extranonce1 = the
  channel's extranonce_prefix, extranonce2_size = its extranonce_size,
  version mask = BIP320's bits, which SetupConnection's REQUIRES_VERSION_ROLLING
  gives us), then the channel target as ``PoolDifficulty``;
* a job activated on the channel (NewExtendedMiningJob with its prev hash) ->
  ``PoolJob`` with a ``mining.notify`` view (job id = the SV2 id in decimal,
  coinbase parts BIP141-stripped, ntime = the job's min_ntime);
* SetTarget -> ``PoolDifficulty``; SetExtranoncePrefix -> ``ExtranonceChanged``;
* SubmitSharesExtended carries the miner's full header version; the pool's
  SubmitShares.Success / .Error (error code as the reason) -> ``ShareVerdict``;
* Reconnect -> ``PoolReconnect``; a refused setup or channel, or a channel the
  pool closes -> ``UpstreamRefused`` (the core moves the miners).

One channel carries one user identity (SV2 has no per-share worker name), so
a miner's worker name is not authorized upstream (``worker_identities`` is
False): the pool credits the channel's user, the rows keep each miner's name.
A worker's own channel (``worker_channel``: the core opens one per worker
name with identity pass-through) has that name as its user; the pool
refusing or closing it is ``WorkerAuthorized(accepted=False)`` for that name,
so the core moves its miners to a shared channel instead of leaving the pool.
"""

from __future__ import annotations

from typing import Any

from stratum_proxy.aggregate import upstream as up
from stratum_proxy.errors import LocalProtocolError
from stratum_proxy.shares import swap_prevhash_words
from stratum_proxy.sv1 import messages as m
from stratum_proxy.sv2 import client_events as cev
from stratum_proxy.sv2.client import Sv2Client
from stratum_proxy.sv2.jobs import InvalidJobError, share_job, target_to_difficulty
from stratum_proxy.sv2.settings import DEFAULT_VERSION_MASK

# The core's ``ShareVerdict.reason`` is the pool's text; SV2 error codes keep
# their names (stale-share, duplicate-share, ...) in rows and logs.
_WORKER_NOTE = "an SV2 channel carries one user identity: shares are credited to it"


Routed = list[tuple["Sv2PoolUpstream", list[up.UpstreamEvent]]]


class Sv2PoolConnection:
    """One SV2 pool connection and the channels on it, each one of the core's upstreams.

    Events of one channel (its open, jobs, targets, verdicts, close) go to that
    channel; the connection's own (a refused setup, Reconnect) to all of them.
    ``receive_data`` returns each channel's events; what the timers or the
    connection's loss produce is kept in each channel's inbox until the core
    asks that channel (its ``get_timer`` is then due at once).
    """

    def __init__(self, client: Sv2Client) -> None:
        self.client = client
        self.members: dict[int, Sv2PoolUpstream] = {}  # by id(): thousands come and go
        self.lost = False
        self._requests: dict[int, Sv2PoolUpstream] = {}  # open request id -> its channel
        self._channels: dict[int, Sv2PoolUpstream] = {}  # channel id -> its channel

    def channel(
        self,
        *,
        user: str,
        nominal_hash_rate: float,
        min_extranonce_size: int,
        worker_channel: bool = False,
        setup_timeout_s: float = 10.0,
    ) -> Sv2PoolUpstream:
        """A new channel on this connection (opened when the core starts it)."""
        channel = Sv2PoolUpstream(
            self,
            user=user,
            nominal_hash_rate=nominal_hash_rate,
            min_extranonce_size=min_extranonce_size,
            worker_channel=worker_channel,
            setup_timeout_s=setup_timeout_s,
        )
        self.members[id(channel)] = channel
        return channel

    def open_channel(
        self, channel: Sv2PoolUpstream, *, nominal_hash_rate: float, min_extranonce_size: int
    ) -> int:
        """OpenExtendedMiningChannel under the channel's user; returns the request id."""
        request_id = self.client.open_extended_channel(
            user_identity=channel.user,
            nominal_hash_rate=nominal_hash_rate,
            min_extranonce_size=min_extranonce_size,
        )
        self._requests[request_id] = channel
        return request_id

    def leave(self, channel: Sv2PoolUpstream, now: float, reason: str) -> list[up.UpstreamEvent]:
        """The core is done with ``channel``: close it upstream (CloseChannel, queued in the
        client); its submits still in flight come back as ``no_response`` verdicts."""
        if self.members.pop(id(channel), None) is None:
            return []
        if channel.request_id is not None:
            self._requests.pop(channel.request_id, None)
        events: list[up.UpstreamEvent] = []
        if channel.channel_id is not None and not self.lost:
            self._channels.pop(channel.channel_id, None)
            for event in self.client.close_channel(channel.channel_id, reason, now):
                channel.on_event(event, events)
        return events

    def receive_data(self, data: bytes, now: float, wall: float | None = None) -> Routed:
        """The pool's bytes, decoded once; raises Sv2ProtocolError (fatal) on any breach."""
        return self._route(self.client.receive_data(data, now, wall=wall))

    def get_timer(self) -> float | None:
        return self.client.get_timer()

    def handle_timer(self, now: float) -> None:
        for channel, events in self._route(self.client.handle_timer(now)):
            channel.inbox.extend(events)

    def connection_lost(self, now: float, reason: str) -> None:
        """Once per connection, whichever channel the core asks first."""
        if self.lost:
            return
        self.lost = True
        for channel, events in self._route(self.client.connection_lost(now, reason)):
            channel.inbox.extend(events)

    def _route(self, received: list[cev.ClientEvent]) -> Routed:
        routed: dict[int, tuple[Sv2PoolUpstream, list[up.UpstreamEvent]]] = {}

        def deliver(channel: Sv2PoolUpstream | None, event: cev.ClientEvent) -> None:
            if channel is not None:
                channel.on_event(event, routed.setdefault(id(channel), (channel, []))[1])

        for event in received:
            if isinstance(event, cev.ChannelOpened):
                channel = self._requests.pop(event.request_id, None)
                if channel is None:  # it left while its open was on the way
                    self.client.close_channel(event.channel_id, "not needed any more", 0.0)
                    continue
                self._channels[event.channel_id] = channel
                deliver(channel, event)
            elif isinstance(event, cev.ChannelOpenFailed):
                deliver(self._requests.pop(event.request_id, None), event)
            elif isinstance(
                event,
                cev.ShareVerdict
                | cev.JobActivated
                | cev.TargetChanged
                | cev.ExtranoncePrefixChanged
                | cev.ChannelClosed
                | cev.EndpointChanged,
            ):
                deliver(self._channels.get(event.channel_id), event)
            elif isinstance(event, cev.ProtocolNotice):
                deliver(next(iter(self.members.values()), None), event)  # one log line
            else:  # the connection's: SetupFailed, ReconnectRequested, ConnectionReady
                for channel in self.members.values():
                    deliver(channel, event)
        return list(routed.values())


class Sv2PoolUpstream:
    """One extended channel on an SV2 pool connection, as the core's pool connection."""

    worker_identities = False

    def __init__(
        self,
        conn: Sv2PoolConnection,
        *,
        user: str,
        nominal_hash_rate: float,
        min_extranonce_size: int,
        worker_channel: bool = False,
        setup_timeout_s: float = 10.0,
    ) -> None:
        self.conn = conn
        self.client = conn.client
        self.user = user
        self._worker_channel = worker_channel
        self._nominal = nominal_hash_rate
        self._min_extranonce_size = min_extranonce_size
        self.channel_id: int | None = None
        self.request_id: int | None = None  # its open's, until answered
        self.inbox: list[up.UpstreamEvent] = []  # routed by the connection, not yet taken
        # A pool that takes the connection but never opens the channel (a stalled
        # handshake or setup) is left for the next one, as a dead pool.
        self._setup_timeout = setup_timeout_s
        self._setup_deadline: float | None = None
        self._extranonce2_size = 0
        self._difficulty = 1.0
        self._ready = False

    # -- state (as Sv1Upstream) ---------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def extranonce2_size(self) -> int:
        return self._extranonce2_size

    @property
    def difficulty(self) -> float:
        return self._difficulty

    def pending(self) -> int:
        channel = self.client.channels.get(self.channel_id) if self.channel_id is not None else None
        return len(channel.pending) if channel is not None else 0

    # -- requests ----------------------------------------------------------------------

    def start(self, now: float) -> list[up.UpstreamEvent]:
        """The connection is up: the channel's open (queued until the setup is done)."""
        self._setup_deadline = now + self._setup_timeout
        self.request_id = self.conn.open_channel(
            self, nominal_hash_rate=self._nominal, min_extranonce_size=self._min_extranonce_size
        )
        return self._flush([])

    def authorize(self, worker: str, password: str, now: float) -> list[up.UpstreamEvent]:
        """Never called (``worker_identities`` is False); refused if it were."""
        return [up.WorkerAuthorized(worker=worker, accepted=False, reason=_WORKER_NOTE)]

    def submit(
        self,
        *,
        worker: str,
        job_id: str,
        extranonce2: str,
        ntime: str,
        nonce: str,
        version_bits: str | None,
        token: Any,
        now: float,
        version: int = 0,
    ) -> list[up.UpstreamEvent]:
        """SubmitSharesExtended for a share the core checked; ``version`` is the header's."""
        events: list[up.UpstreamEvent] = []
        try:
            if self.channel_id is None:
                raise LocalProtocolError("the channel is not open")
            self.client.submit_share(
                channel_id=self.channel_id,
                job_id=int(job_id),
                nonce=int(nonce, 16),
                ntime=int(ntime, 16),
                version=version,
                extranonce=bytes.fromhex(extranonce2),
                now=now,
                token=token,
            )
        except (LocalProtocolError, ValueError) as exc:
            # Cannot happen for a share the core checked against this channel's job;
            # the share still gets a row and the miner an answer.
            events.append(
                up.ShareVerdict(
                    token=token,
                    status="no_response",
                    reason=f"not sent to the pool: {exc}",
                    submitted_at=now,
                    resolved_at=now,
                )
            )
        return self._flush(events)

    # -- input -------------------------------------------------------------------------

    def receive_data(
        self, data: bytes, now: float, wall: float | None = None
    ) -> list[up.UpstreamEvent]:
        """The connection's bytes (the shell routes them with ``Sv2PoolConnection`` instead);
        the other channels' events wait in their inboxes.  Raises Sv2ProtocolError."""
        events = self._take_inbox()
        for channel, routed in self.conn.receive_data(data, now, wall):
            if channel is self:
                events += routed
            else:
                channel.inbox += routed
        return self._flush(events)

    def get_timer(self) -> float | None:
        if self.inbox:
            return 0.0
        deadline = self.conn.get_timer()
        setup = self._setup_deadline
        if setup is None:
            return deadline
        return setup if deadline is None else min(deadline, setup)

    def handle_timer(self, now: float) -> list[up.UpstreamEvent]:
        deadline = self.conn.get_timer()
        if deadline is not None and deadline <= now:
            self.conn.handle_timer(now)
        events = self._take_inbox()
        if self._setup_deadline is not None and self._setup_deadline <= now:
            self._setup_deadline = None
            if not self._ready:
                reason = f"no open channel from the pool within {self._setup_timeout:g} s"
                events.append(up.UpstreamRefused(reason=reason))
        return self._flush(events)

    def connection_lost(self, now: float, reason: str) -> list[up.UpstreamEvent]:
        """The core drops this channel: the connection is gone, or only the channel is
        (its CloseChannel then waits in the client for the shell to send)."""
        if self.conn.lost:
            self.conn.connection_lost(now, reason)
            return self._take_inbox()
        return self._take_inbox() + self.conn.leave(self, now, reason)

    def _take_inbox(self) -> list[up.UpstreamEvent]:
        events, self.inbox = self.inbox, []
        return events

    # -- the client's events -------------------------------------------------------------

    def _flush(self, events: list[up.UpstreamEvent]) -> list[up.UpstreamEvent]:
        data = self.client.data_to_send()
        if data:
            events.append(up.SendToPool(data))
        return events

    def on_event(self, event: cev.ClientEvent, events: list[up.UpstreamEvent]) -> None:
        if isinstance(event, cev.ShareVerdict):
            events.append(
                up.ShareVerdict(
                    token=event.token,
                    status=event.status,
                    reason=event.error_code,
                    submitted_at=event.submitted_at,
                    resolved_at=event.resolved_at,
                )
            )
        elif isinstance(event, cev.JobActivated):
            if event.channel_id == self.channel_id:
                self._on_job(event, events)
        elif isinstance(event, cev.TargetChanged):
            if event.channel_id == self.channel_id:
                self._difficulty = target_to_difficulty(event.target)
                events.append(up.PoolDifficulty(difficulty=self._difficulty))
        elif isinstance(event, cev.ChannelOpened):
            self._on_opened(event, events)
        elif isinstance(event, cev.ExtranoncePrefixChanged):
            if event.channel_id == self.channel_id:
                events.append(
                    up.ExtranonceChanged(
                        extranonce1=event.extranonce_prefix,
                        extranonce2_size=self._extranonce2_size,
                    )
                )
        elif isinstance(event, cev.ChannelOpenFailed):
            self._refused(f"pool refused the channel: {event.error_code}", events)
        elif isinstance(event, cev.SetupFailed):
            reason = f"pool refused the setup: {event.error_code}"
            events.append(up.UpstreamRefused(reason=reason))
        elif isinstance(event, cev.ChannelClosed):
            if event.channel_id == self.channel_id:
                self._refused(f"pool closed the channel: {event.reason_code}", events)
        elif isinstance(event, cev.ReconnectRequested):
            events.append(
                up.PoolReconnect(host=event.host or None, port=event.port or None, wait_s=0.0)
            )
        elif isinstance(event, cev.EndpointChanged):
            # Shares in flight on the channel will not be answered: start afresh.
            events.append(up.PoolReconnect(host=None, port=None, wait_s=0.0))
        elif isinstance(event, cev.ProtocolNotice):
            events.append(up.PoolNotice(level="warning", text=event.text))
        # ConnectionReady: nothing to do, the queued channel open goes out with it.

    def _refused(self, reason: str, events: list[up.UpstreamEvent]) -> None:
        """The channel is refused or gone: a worker's name, or the pool for everyone."""
        if self._worker_channel:
            events.append(up.WorkerAuthorized(worker=self.user, accepted=False, reason=reason))
        else:
            events.append(up.UpstreamRefused(reason=reason))

    def _on_opened(self, event: cev.ChannelOpened, events: list[up.UpstreamEvent]) -> None:
        if self.channel_id is not None:
            return
        if event.extranonce_size < self._min_extranonce_size:
            events.append(
                up.UpstreamRefused(
                    reason=f"channel extranonce_size {event.extranonce_size} < "
                    f"{self._min_extranonce_size} asked for"
                )
            )
            return
        self.channel_id = event.channel_id
        self._setup_deadline = None
        self._extranonce2_size = event.extranonce_size
        self._difficulty = target_to_difficulty(event.target)
        self._ready = True
        events.append(
            up.UpstreamReady(
                extranonce1=event.extranonce_prefix,
                extranonce2_size=event.extranonce_size,
                version_mask=DEFAULT_VERSION_MASK,
            )
        )
        events.append(up.PoolDifficulty(difficulty=self._difficulty))

    def _on_job(self, event: cev.JobActivated, events: list[up.UpstreamEvent]) -> None:
        try:
            view = share_job(event.job, event.prev_hash, b"", self._difficulty)
        except InvalidJobError as exc:
            text = f"job {event.job.job_id} skipped: {exc}"
            events.append(up.PoolNotice(level="warning", text=text))
            return
        notify = m.Notify(
            id=None,
            job_id=view.job_id,
            prevhash=swap_prevhash_words(view.prevhash),
            coinb1=view.coinb1,
            coinb2=view.coinb2,
            merkle_branch=tuple(view.merkle_branch),
            version=view.version,
            nbits=view.nbits,
            ntime=view.ntime,
            clean_jobs=event.clean,
        )
        events.append(up.PoolJob(notify=notify, difficulty=self._difficulty))
