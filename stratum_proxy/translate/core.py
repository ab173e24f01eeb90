"""Translate mode, sans-I/O: SV1 miners on the extended channels of one SV2 connection.

    tr = Translator(client=Sv2Client(...), settings=..., upstream="pool", proxy_id="p1", ...)
    act(tr.connection_made())                      # act 1 of the Noise handshake
    act(tr.add_miner(7, "10.0.0.7:4028", now))
    act(tr.miner_data(7, line_bytes, now, wall=time_of_day))
    act(tr.pool_data(bytes_from_pool, now, wall=time_of_day))
    # act: SendToPool -> pool socket, SendToMiner -> miner socket, ShareRecorded ->
    # store, CloseMiner -> close, PoolReady / SetupRefused -> the connection's fate, ...
    # wake at tr.get_timer(), act(tr.handle_timer(now)); on EOF or error
    # act(tr.connection_lost(now, reason)) for the last rows.

The contract every protocol core follows: every input returns the list of what
happened (events.py says in which order), and ``get_timer()`` /
``handle_timer(now)`` carry deadlines.  ``now`` is the monotonic clock (submit
timeouts, round trips, the UpdateChannel debounce); ``wall`` is the time of day
for row timestamps and the pool certificate check (None: same as ``now``).

Rules (README, translate mode); extranonce and channels: see upstream_channels.py.

* difficulty: every miner works at the channel's own target, so every share a
  miner finds is a share the pool credits (a higher miner difficulty would
  lose credit, a lower one would send shares the pool refuses).
* verdicts: a submit that passes the local checks is forwarded and the miner's
  answer waits for the pool's SubmitShares.Success/Error; no verdict within
  ``submit_timeout_s`` is a no_response row and an error to the miner.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from stratum_proxy.shares.math import DIFF1_TARGET
from stratum_proxy.sv1.downstream import (
    LineIgnored,
    MalformedSubmit,
    MinerAuthorized,
    MinerSubscribed,
    SubmitReceived,
    Sv1Downstream,
)
from stratum_proxy.sv1.messages import RpcId, Submit
from stratum_proxy.sv2 import client_events as cev
from stratum_proxy.sv2.client import Sv2Client
from stratum_proxy.sv2.settings import Sv2Settings
from stratum_proxy.translate import events as tev
from stratum_proxy.translate.channels import Miner
from stratum_proxy.translate.miners import Miners
from stratum_proxy.translate.shares import (
    FORWARDED_AT,
    LocalReject,
    ShareDraft,
    judge_locally,
    local_verdict,
    new_draft,
    row_template,
    settle,
)
from stratum_proxy.translate.upstream_channels import Out, UpstreamChannels


class _Pending(NamedTuple):
    """A forwarded share's token in the client: whose it is and its row so far.

    A tuple made with ``tuple.__new__`` (once per share, see ``_on_submit``).
    """

    miner_id: int
    msg_id: RpcId
    draft: ShareDraft
    sent_at: float


_new_tuple = tuple.__new__


class Translator:
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
        self._client = client
        self.settings = settings
        self.upstream = upstream
        self.proxy_id = proxy_id
        self.max_line_bytes = max_line_bytes
        self.miners = Miners()
        self.channels = UpstreamChannels(
            client=client, settings=settings, miners=self.miners, max_jobs=max_jobs
        )
        self._pending_by_miner: dict[int, int] = {}
        ch = self.channels
        # One table from client event to its handler, each taking (event, now, out).
        self._on_client_event: dict[type[Any], Callable[[Any, float, Out], None]] = {
            cev.ShareVerdict: self._on_verdict,
            cev.JobActivated: ch.on_job,
            cev.TargetChanged: ch.on_target,
            cev.ChannelOpened: ch.on_opened,
            cev.ChannelOpenFailed: ch.on_open_failed,
            cev.ExtranoncePrefixChanged: ch.on_prefix,
            cev.ChannelClosed: ch.on_closed,
            cev.ConnectionReady: _on_ready,
            cev.SetupFailed: _on_setup_failed,
            cev.ReconnectRequested: _on_reconnect,
            cev.ProtocolNotice: _on_protocol_notice,
            cev.EndpointChanged: _on_endpoint_changed,
        }

    # --- queries ----------------------------------------------------------------

    def pending_for(self, miner_id: int) -> int:
        return self._pending_by_miner.get(miner_id, 0)

    def pending_count(self) -> int:
        """Submits on the wire without a verdict, every miner's."""
        return self._client.pending_count()

    def get_timer(self) -> float | None:
        """Never later than the next deadline (it may be earlier; see Sv2Client.get_timer)."""
        submit, update = self._client.get_timer(), self.channels.next_update()
        if submit is None or (update is not None and update < submit):
            return update
        return submit

    # --- inputs: the pool -------------------------------------------------------------

    def connection_made(self) -> list[tev.TranslateEvent]:
        """The TCP connection is up: act 1 of the handshake."""
        return self._output([])

    def pool_data(
        self, data: bytes, now: float, *, wall: float | None = None
    ) -> list[tev.TranslateEvent]:
        """Raises Sv2ProtocolError (fatal): the caller then calls connection_lost."""
        out: Out = []
        handlers = self._on_client_event
        for event in self._client.receive_data(data, now, wall=wall):
            handlers[type(event)](event, now, out)
        self.channels.close_drained(now)
        return self._output(out)

    def pool_eof(self) -> None:
        """The pool closed its side; raises Sv2ProtocolError if that cut the handshake short."""
        self._client.receive_eof()

    def connection_lost(self, now: float, reason: str) -> list[tev.TranslateEvent]:
        """Pending shares become no_response rows; every miner is told to go."""
        out: Out = []
        for event in self._client.connection_lost(now, reason):
            self._on_client_event[type(event)](event, now, out)
        for miner_id in self.miners:
            out.append(tev.CloseMiner(miner_id=miner_id, reason=f"pool connection lost: {reason}"))
        return self._output(out)

    def handle_timer(self, now: float) -> list[tev.TranslateEvent]:
        out: Out = []
        for event in self._client.handle_timer(now):
            self._on_client_event[type(event)](event, now, out)
        self.channels.handle_timer(now)
        self.channels.close_drained(now)
        return self._output(out)

    # --- inputs: miners ----------------------------------------------------------------

    def add_miner(self, miner_id: int, miner_addr: str, now: float) -> list[tev.TranslateEvent]:
        session = Sv1Downstream(
            max_line_bytes=self.max_line_bytes, version_mask=self.settings.version_mask
        )
        row = row_template(
            proxy_id=self.proxy_id,
            upstream=self.upstream,
            miner_addr=miner_addr,
            connection_id=miner_id,
        )
        miner = Miner(miner_id=miner_id, addr=miner_addr, session=session, row=row)
        self.miners.add(miner)
        out: Out = []
        self.channels.place(miner, now, out)
        return self._output(out)

    def remove_miner(self, miner_id: int, now: float) -> list[tev.TranslateEvent]:
        """The miner's connection is gone; its pending shares still get their rows."""
        miner = self.miners.pop(miner_id)
        if miner is not None:
            self.channels.release(miner, now)
        return self._output([])

    def miner_data(
        self, miner_id: int, data: bytes, now: float, *, wall: float | None = None
    ) -> list[tev.TranslateEvent]:
        """Raises LineTooLongError (fatal): the caller closes and removes the miner."""
        miner = self.miners.get(miner_id)
        if miner is None:
            return []
        out: Out = []
        for event in miner.session.receive_data(data):
            if isinstance(event, SubmitReceived):
                self._on_submit(miner, event.submit, now, now if wall is None else wall, out)
            elif isinstance(event, MalformedSubmit):
                stamp = now if wall is None else wall
                self._on_submit(miner, event.submit, now, stamp, out, malformed=event.error)
            elif isinstance(event, MinerSubscribed):
                self.channels.welcome(miner)
            elif isinstance(event, MinerAuthorized):
                miner.worker = event.worker
                out.append(tev.WorkerAuthorized(miner_id=miner_id, worker=event.worker))
            elif isinstance(event, LineIgnored):
                out.append(
                    tev.MinerLineIgnored(
                        miner_id=miner_id, reason=event.reason, excerpt=event.excerpt
                    )
                )
        self.miners.owe(miner_id)
        return self._output(out)

    def reconnect_miner(self, miner_id: int) -> list[tev.TranslateEvent]:
        """Tell the miner to reconnect to us (client.reconnect, no params); [] if it left."""
        miner = self.miners.get(miner_id)
        if miner is None:
            return []
        miner.session.send_reconnect()
        self.miners.owe(miner_id)
        return self._output([])

    # --- output -------------------------------------------------------------------

    def _output(self, happened: Out) -> list[tev.TranslateEvent]:
        """Bytes first (pool, then miners), then what happened (see events.py)."""
        out: Out = []
        data = self._client.data_to_send()
        if data:
            out.append(tev.SendToPool(data=data))
        self.miners.take_output(out)
        if happened:
            out += happened
        return out

    # --- shares -----------------------------------------------------------------

    def _on_submit(
        self, miner: Miner, submit: Submit, now: float, wall: float, out: Out, malformed: str = ""
    ) -> None:
        channel = self.channels.channel_of(miner)
        draft = new_draft(
            submit,
            miner.row,
            now=wall,
            channel_id=miner.channel_id or 0,
            extranonce1=miner.session.extranonce1 or b"",
            pool_difficulty=DIFF1_TARGET / channel.target if channel and channel.target else 0.0,
        )
        outcome = judge_locally(draft, submit, miner, channel, malformed)
        if isinstance(outcome, LocalReject):
            miner.session.answer_submit(submit.id, outcome.code, outcome.message)
            record = local_verdict(draft, outcome)
            out.append(tev.ShareRecorded(miner_id=miner.miner_id, record=record))
            return
        assert channel is not None
        draft[FORWARDED_AT] = True
        miner_id = miner.miner_id
        token = _new_tuple(_Pending, (miner_id, submit.id, draft, now))
        self._client.submit_share(
            channel_id=channel.channel_id,
            job_id=outcome.job_id,
            nonce=outcome.nonce,
            ntime=outcome.ntime,
            version=outcome.version,
            extranonce=outcome.extranonce,
            now=now,
            token=token,
        )
        pending = self._pending_by_miner
        pending[miner_id] = pending.get(miner_id, 0) + 1

    def _on_verdict(self, verdict: cev.ShareVerdict, now: float, out: Out) -> None:
        token = verdict.token
        assert isinstance(token, _Pending)
        record, code, text = settle(token.draft, verdict)
        miner_id = token.miner_id
        pending = self._pending_by_miner
        left = pending.get(miner_id, 0) - 1
        if left > 0:
            pending[miner_id] = left
        else:
            pending.pop(miner_id, None)
        miner = self.miners.get(miner_id)
        if miner is not None:
            miner.session.answer_submit(token.msg_id, code, text)
            self.miners.owe(miner_id)
        out.append(tev.ShareRecorded(miner_id=miner_id, record=record))


# --- client events that only become translator events ------------------------------------


def _on_ready(event: cev.ConnectionReady, now: float, out: Out) -> None:
    out.append(tev.PoolReady(used_version=event.used_version, flags=event.flags))


def _on_setup_failed(event: cev.SetupFailed, now: float, out: Out) -> None:
    out.append(tev.SetupRefused(error_code=event.error_code))


def _on_reconnect(event: cev.ReconnectRequested, now: float, out: Out) -> None:
    out.append(tev.PoolReconnect(host=event.host, port=event.port))


def _on_protocol_notice(event: cev.ProtocolNotice, now: float, out: Out) -> None:
    out.append(tev.Notice(level="warning", text=event.text))


def _on_endpoint_changed(event: cev.EndpointChanged, now: float, out: Out) -> None:
    text = f"pool changed endpoint of channel {event.channel_id}"
    out.append(tev.Notice(level="info", text=text))
