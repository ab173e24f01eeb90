"""Translate mode, sans-I/O: SV1 miners on the extended channels of one SV2 connection.

    tr = Translator(client=Sv2Client(...), settings=..., upstream="pool", proxy_id="p1", ...)
    tr.add_miner(7, "10.0.0.7:4028", now); tr.miner_data(7, line_bytes, now)
    tr.pool_data(bytes_from_pool, now)
    pool.write(tr.client.data_to_send()); for id, data in tr.take_miner_output(): ...
    for event in tr.take_events(): ShareRecorded -> store, CloseMiner -> close, ...

Rules (README, translate mode):

* extranonce: ``per_miner`` opens one extended channel per miner (extranonce1 =
  the channel's prefix, padded with zero bytes if the pool granted more than
  ``extranonce2_size``); ``aggregated`` opens one channel for all miners and
  gives each ``prefix ‖ local index`` (``aggregated_local_bytes`` wide).
* difficulty: every miner works at the channel's own target, so every share a
  miner finds is a share the pool credits (a higher miner difficulty would
  lose credit, a lower one would send shares the pool refuses).
* verdicts: a submit that passes the local checks is forwarded and the miner's
  answer waits for the pool's SubmitShares.Success/Error; no verdict within
  ``submit_timeout_s`` is a no_response row and an error to the miner.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stratum_proxy.shares.math import DIFF1_TARGET
from stratum_proxy.store.record import STATUS_ACCEPTED, ShareRecord
from stratum_proxy.sv1.messages import RpcId, Submit
from stratum_proxy.sv2 import client_events as cev
from stratum_proxy.sv2.client import Sv2Client
from stratum_proxy.sv2.settings import Sv2Settings
from stratum_proxy.translate import events as tev
from stratum_proxy.translate.channels import Channel, Miner
from stratum_proxy.translate.jobs import SV1_OTHER, parse_job_id, sv1_error_code
from stratum_proxy.translate.pool_events import PoolEventHandlers
from stratum_proxy.translate.shares import (
    JOB_NOT_FOUND,
    NOT_SUBSCRIBED,
    Forward,
    LocalReject,
    check_submit,
    new_record,
)
from stratum_proxy.translate.sv1_downstream import (
    LineIgnored,
    MalformedSubmit,
    MinerAuthorized,
    MinerSubscribed,
    SubmitReceived,
    Sv1Downstream,
)

# Aggregated mode tells the pool the channel's hash rate when miners come and
# go, at most this often (spec: UpdateChannel debounced to about 1/s).
_UPDATE_INTERVAL_S = 1.0


@dataclass(slots=True, eq=False)
class _Pending:
    miner_id: int
    msg_id: RpcId
    record: ShareRecord
    sent_at: float = field(default=0.0)


class Translator(PoolEventHandlers):
    """The translation core for one SV2 connection."""

    def __init__(
        self,
        *,
        client: Sv2Client,
        settings: Sv2Settings,
        upstream: str,
        proxy_id: str,
        max_line_bytes: int,
        max_jobs: int,
    ) -> None:
        self.client = client
        self.settings = settings
        self.upstream = upstream
        self.proxy_id = proxy_id
        self.max_line_bytes = max_line_bytes
        self.max_jobs = max_jobs
        self.aggregated = settings.extranonce_mode == "aggregated"
        self.miners: dict[int, Miner] = {}
        self.channels: dict[int, Channel] = {}
        self._opening: dict[int, list[int]] = {}  # request id -> miner ids waiting
        self._aggregate_request: int | None = None
        self._pending_by_miner: dict[int, int] = {}
        self._orphan_channels: set[int] = set()  # per-miner channels whose miner left
        self._update_due: float | None = None
        self._events: list[tev.TranslateEvent] = []
        self._dirty: set[int] = set()

    # --- outputs ----------------------------------------------------------------

    def take_events(self) -> list[tev.TranslateEvent]:
        events, self._events = self._events, []
        return events

    def take_miner_output(self) -> list[tuple[int, bytes]]:
        out = []
        for miner_id in self._dirty:
            miner = self.miners.get(miner_id)
            if miner is not None:
                data = miner.session.data_to_send()
                if data:
                    out.append((miner_id, data))
        self._dirty.clear()
        return out

    def pending_for(self, miner_id: int) -> int:
        return self._pending_by_miner.get(miner_id, 0)

    # --- miners -----------------------------------------------------------------

    def add_miner(self, miner_id: int, miner_addr: str, now: float) -> None:
        session = Sv1Downstream(
            max_line_bytes=self.max_line_bytes, version_mask=self.settings.version_mask
        )
        miner = Miner(miner_id=miner_id, addr=miner_addr, session=session)
        self.miners[miner_id] = miner
        if not self.aggregated:
            identity = f"{self.settings.user_identity or 'stratum-proxy'}.miner{miner_id}"
            request = self._open_channel(identity, self.settings.extranonce2_size)
            self._opening[request] = [miner_id]
            return
        channel = next(iter(self.channels.values()), None)
        if channel is not None:
            self._attach(miner, channel)
            self._update_due = self._update_due or now + _UPDATE_INTERVAL_S
            return
        if self._aggregate_request is None:
            identity = self.settings.user_identity or "stratum-proxy"
            size = self.settings.extranonce2_size + self.settings.aggregated_local_bytes
            self._aggregate_request = self._open_channel(identity, size)
            self._opening[self._aggregate_request] = []
        self._opening[self._aggregate_request].append(miner_id)

    def _open_channel(self, identity: str, min_extranonce_size: int) -> int:
        return self.client.open_extended_channel(
            user_identity=identity,
            nominal_hash_rate=self.settings.nominal_hashrate_hs,
            min_extranonce_size=min_extranonce_size,
        )

    def remove_miner(self, miner_id: int, now: float) -> None:
        """The miner's connection is gone; its pending shares still get their rows."""
        miner = self.miners.pop(miner_id, None)
        if miner is None or miner.channel_id is None:
            return
        channel = self.channels.get(miner.channel_id)
        if channel is None:
            return
        channel.detach(miner)
        if self.aggregated:
            self._update_due = self._update_due or now + _UPDATE_INTERVAL_S
        else:
            self._orphan_channels.add(channel.channel_id)
            self._close_drained(now)

    def miner_data(self, miner_id: int, data: bytes, now: float) -> None:
        """Raises LineTooLongError (fatal): the caller closes and removes the miner."""
        miner = self.miners.get(miner_id)
        if miner is None:
            return
        try:
            events = miner.session.receive_data(data)
        finally:
            self._dirty.add(miner_id)
        for event in events:
            if isinstance(event, SubmitReceived):
                self._on_submit(miner, event.submit, now)
            elif isinstance(event, MalformedSubmit):
                self._on_submit(miner, event.submit, now, malformed=event.error)
            elif isinstance(event, MinerSubscribed):
                self._welcome(miner)
            elif isinstance(event, MinerAuthorized):
                miner.worker = event.worker
                self._events.append(tev.WorkerAuthorized(miner_id=miner_id, worker=event.worker))
            elif isinstance(event, LineIgnored):
                self._events.append(
                    tev.MinerLineIgnored(
                        miner_id=miner_id, reason=event.reason, excerpt=event.excerpt
                    )
                )

    # --- shares -----------------------------------------------------------------

    def _on_submit(self, miner: Miner, submit: Submit, now: float, malformed: str = "") -> None:
        channel = self.channels.get(miner.channel_id) if miner.channel_id is not None else None
        record = new_record(
            submit,
            now=now,
            proxy_id=self.proxy_id,
            upstream=self.upstream,
            channel_id=miner.channel_id or 0,
            connection_id=miner.miner_id,
            miner_addr=miner.addr,
            extranonce1=miner.session.extranonce1 or b"",
            pool_difficulty=DIFF1_TARGET / channel.target if channel and channel.target else 0.0,
        )
        outcome: Forward | LocalReject
        if channel is None or not miner.session.subscribed:
            outcome = NOT_SUBSCRIBED
        elif malformed:
            outcome = LocalReject(
                code=SV1_OTHER, message=malformed, reason="proxy: malformed submit"
            )
        else:
            job_id = parse_job_id(submit.job_id)
            job = channel.jobs.get(job_id) if job_id is not None else None
            if job is None:
                outcome = JOB_NOT_FOUND
            else:
                record, outcome = check_submit(
                    record,
                    submit,
                    job,
                    local=miner.local,
                    extranonce2_size=miner.session.extranonce2_size,
                    version_mask=miner.session.version_mask,
                    channel_target=channel.target,
                )
        if isinstance(outcome, LocalReject):
            record = record._replace(status="rejected", reject_reason=outcome.reason)
            miner.session.answer_submit(submit.id, outcome.code, outcome.message)
            self._events.append(tev.ShareRecorded(miner_id=miner.miner_id, record=record))
            return
        assert channel is not None
        token = _Pending(miner_id=miner.miner_id, msg_id=submit.id, record=record, sent_at=now)
        self.client.submit_share(
            channel_id=channel.channel_id,
            job_id=outcome.job_id,
            nonce=outcome.nonce,
            ntime=outcome.ntime,
            version=outcome.version,
            extranonce=outcome.extranonce,
            now=now,
            token=token,
        )
        self._pending_by_miner[miner.miner_id] = self.pending_for(miner.miner_id) + 1

    def _on_verdict(self, verdict: cev.ShareVerdict) -> None:
        token = verdict.token
        assert isinstance(token, _Pending)
        record = token.record._replace(
            status=verdict.status,
            reject_reason="" if verdict.status == STATUS_ACCEPTED else verdict.error_code,
        )
        if verdict.status != "no_response":
            record = record._replace(
                response_ms=max(0.0, (verdict.resolved_at - verdict.submitted_at) * 1000.0)
            )
        left = self.pending_for(token.miner_id) - 1
        if left > 0:
            self._pending_by_miner[token.miner_id] = left
        else:
            self._pending_by_miner.pop(token.miner_id, None)
        miner = self.miners.get(token.miner_id)
        if miner is not None:
            if verdict.status == STATUS_ACCEPTED:
                miner.session.answer_submit(token.msg_id, None)
            elif verdict.status == "rejected":
                code = sv1_error_code(verdict.error_code)
                miner.session.answer_submit(token.msg_id, code, verdict.error_code)
            else:
                miner.session.answer_submit(token.msg_id, SV1_OTHER, "no response from pool")
            self._dirty.add(token.miner_id)
        self._events.append(tev.ShareRecorded(miner_id=token.miner_id, record=record))

    # --- pool -------------------------------------------------------------------

    def pool_data(self, data: bytes, now: float) -> None:
        """Raises Sv2ProtocolError (fatal): the caller then calls connection_lost."""
        for event in self.client.receive_data(data, now):
            self._on_client_event(event, now)
        self._close_drained(now)

    def connection_lost(self, now: float, reason: str) -> None:
        """Pending shares become no_response rows; every miner is told to go."""
        for event in self.client.connection_lost(now, reason):
            self._on_client_event(event, now)
        for miner_id in list(self.miners):
            self._events.append(
                tev.CloseMiner(miner_id=miner_id, reason=f"pool connection lost: {reason}")
            )

    def get_timer(self) -> float | None:
        timers = [t for t in (self.client.get_timer(), self._update_due) if t is not None]
        return min(timers) if timers else None

    def handle_timer(self, now: float) -> None:
        for event in self.client.handle_timer(now):
            self._on_client_event(event, now)
        if self._update_due is not None and self._update_due <= now:
            self._update_due = None
            for channel in self.channels.values():
                rate = max(1, len(channel.miners)) * self.settings.nominal_hashrate_hs
                self.client.update_channel(channel.channel_id, rate)
        self._close_drained(now)

    def _close_drained(self, now: float) -> None:
        for channel_id in list(self._orphan_channels):
            client_channel = self.client.channels.get(channel_id)
            if client_channel is None or not client_channel.pending:
                self._orphan_channels.discard(channel_id)
                self.channels.pop(channel_id, None)
                self.client.close_channel(channel_id, "miner disconnected", now)

    # --- client events ----------------------------------------------------------

    def _on_client_event(self, event: cev.ClientEvent, now: float) -> None:
        if isinstance(event, cev.ShareVerdict):
            self._on_verdict(event)
        elif isinstance(event, cev.JobActivated):
            self._on_job(event)
        elif isinstance(event, cev.TargetChanged):
            self._on_target(event)
        elif isinstance(event, cev.ChannelOpened):
            self._on_opened(event, now)
        elif isinstance(event, cev.ChannelOpenFailed):
            reason = f"pool refused to open a channel: {event.error_code}"
            self._fail_waiting(self._opening.pop(event.request_id, []), reason)
            if event.request_id == self._aggregate_request:
                self._aggregate_request = None
        elif isinstance(event, cev.ExtranoncePrefixChanged):
            self._on_prefix(event)
        elif isinstance(event, cev.ChannelClosed):
            self._on_channel_closed(event)
        elif isinstance(event, cev.ReconnectRequested):
            self._events.append(tev.PoolReconnect(host=event.host, port=event.port))
        elif isinstance(event, cev.SetupFailed):
            self._events.append(
                tev.Notice(level="error", text=f"pool refused setup: {event.error_code}")
            )
        elif isinstance(event, cev.ProtocolNotice):
            self._events.append(tev.Notice(level="warning", text=event.text))
        elif isinstance(event, cev.EndpointChanged):
            self._events.append(
                tev.Notice(
                    level="info", text=f"pool changed endpoint of channel {event.channel_id}"
                )
            )
