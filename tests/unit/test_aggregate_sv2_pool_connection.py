"""Channels sharing one SV2 pool connection, wired in memory to the sans-I/O test pool.

``Sv2PoolConnection`` decodes the pool's bytes once and hands each channel
(one of the aggregate core's upstreams) its own events: its open, jobs,
target and verdicts; what timers and the connection's loss produce waits in
each channel's inbox until the core asks that channel.
"""

from __future__ import annotations

import os

from stratum_proxy.aggregate import upstream as up
from stratum_proxy.aggregate.sv2_pool import Sv2PoolConnection, Sv2PoolUpstream
from stratum_proxy.sim.sv2_pool_config import TEST_AUTHORITY_SECRET, Sv2PoolConfig
from stratum_proxy.sim.sv2_pool_core import Sv2PoolState
from stratum_proxy.sv2.client import Sv2Client
from stratum_proxy.sv2.crypto import xonly_pubkey

NOW = 1_800_000_000.0
TIMEOUT_S = 5.0


class Wire:
    """One pool connection carrying the channels the test opens."""

    def __init__(self, config: Sv2PoolConfig) -> None:
        self.pool = Sv2PoolState(config)
        self.pool_conn = self.pool.new_connection(NOW, os.urandom)
        self.session = Sv2PoolConnection(
            Sv2Client(
                authority_pubkey=xonly_pubkey(TEST_AUTHORITY_SECRET),
                now=NOW,
                rng=os.urandom,
                endpoint_host="pool.example",
                endpoint_port=3336,
                submit_timeout_s=TIMEOUT_S,
            )
        )
        self.events: dict[str, list[up.UpstreamEvent]] = {}
        self.names: dict[int, str] = {}

    def channel(self, name: str, user: str) -> Sv2PoolUpstream:
        channel = self.session.channel(
            user=user, nominal_hash_rate=1e12, min_extranonce_size=6, worker_channel=bool(name)
        )
        self.names[id(channel)] = name
        self.take(name, channel.start(NOW))
        return channel

    def take(self, name: str, events: list[up.UpstreamEvent], now: float = NOW) -> None:
        """A channel's events; the bytes it sends (SendToPool) go to the pool."""
        for event in events:
            if isinstance(event, up.SendToPool):
                self.pool_conn.receive_data(event.data, now)
        self.events.setdefault(name, []).extend(events)

    def pump(self, now: float = NOW) -> None:
        """Bytes both ways until both sides are quiet; each channel's events by its name."""
        while True:
            out = self.session.client.data_to_send()
            if out:
                self.pool_conn.receive_data(out, now)
            back = self.pool_conn.data_to_send()
            if back:
                for channel, events in self.session.receive_data(back, now):
                    self.take(self.names[id(channel)], events)
            if not out and not back:
                return

    def of(self, name: str, kind: type) -> list[object]:
        return [e for e in self.events.get(name, []) if isinstance(e, kind)]


def _submit(channel: Sv2PoolUpstream, wire: Wire, name: str, token: str) -> None:
    job = wire.of(name, up.PoolJob)[-1]
    assert isinstance(job, up.PoolJob)
    wire.take(
        name,
        channel.submit(
            worker="",
            job_id=job.notify.job_id,
            extranonce2=bytes(channel.extranonce2_size).hex(),
            ntime=f"{job.notify.ntime:08x}",
            nonce="00000001",
            version_bits=None,
            version=job.notify.version,
            token=token,
            now=NOW,
        ),
    )


def _verdicts(wire: Wire, name: str) -> list[tuple[object, str]]:
    return [(v.token, v.status) for v in wire.of(name, up.ShareVerdict)]  # type: ignore[attr-defined]


def _two_channels(config: Sv2PoolConfig) -> tuple[Wire, Sv2PoolUpstream, Sv2PoolUpstream]:
    wire = Wire(config)
    farm = wire.channel("", "farm1")
    rig = wire.channel("rig", "farm1.rig")
    wire.pump()
    return wire, farm, rig


def test_each_channel_gets_its_own_open_target_and_jobs() -> None:
    wire, farm, rig = _two_channels(Sv2PoolConfig())
    for name, channel in (("", farm), ("rig", rig)):
        (ready,) = wire.of(name, up.UpstreamReady)
        assert isinstance(ready, up.UpstreamReady) and channel.ready
        assert ready.extranonce1 == wire.pool_conn.channels[channel.channel_id or 0].prefix
        assert wire.of(name, up.PoolJob) and wire.of(name, up.PoolDifficulty)
    assert farm.channel_id != rig.channel_id
    users = {c.user_identity for c in wire.pool_conn.channels.values()}
    assert users == {"farm1", "farm1.rig"}  # one connection, each channel its own identity


def test_verdicts_go_to_the_channel_that_sent_the_share() -> None:
    wire, farm, rig = _two_channels(Sv2PoolConfig(accept_any=True))
    _submit(farm, wire, "", "f1")
    _submit(rig, wire, "rig", "r1")
    _submit(rig, wire, "rig", "r2")
    assert (farm.pending(), rig.pending()) == (1, 2)
    wire.pump(NOW + 1)
    wire.pool_conn.handle_timer(NOW + 1)  # the pool's batched Success
    wire.pump(NOW + 1)
    assert _verdicts(wire, "") == [("f1", "accepted")]
    assert _verdicts(wire, "rig") == [("r1", "accepted"), ("r2", "accepted")]
    assert (farm.pending(), rig.pending()) == (0, 0)
    judged = {(j.user_identity, j.channel_id) for j in wire.pool.judged}
    assert judged == {("farm1", farm.channel_id), ("farm1.rig", rig.channel_id)}


def test_a_timeout_reaches_every_channel_through_its_inbox() -> None:
    wire, farm, rig = _two_channels(Sv2PoolConfig(answer_shares=False))
    _submit(farm, wire, "", "f1")
    _submit(rig, wire, "rig", "r1")
    wire.pump()
    later = NOW + TIMEOUT_S + 1
    assert farm.get_timer() == rig.get_timer() == NOW + TIMEOUT_S
    wire.take("", farm.handle_timer(later))
    assert _verdicts(wire, "") == [("f1", "no_response")]
    assert rig.get_timer() == 0.0  # its verdict waits in its inbox: due at once
    wire.take("rig", rig.handle_timer(later))
    assert _verdicts(wire, "rig") == [("r1", "no_response")]
    assert rig.get_timer() is None and farm.get_timer() is None


def test_a_lost_connection_answers_each_channels_shares_once() -> None:
    wire, farm, rig = _two_channels(Sv2PoolConfig(answer_shares=False))
    _submit(farm, wire, "", "f1")
    _submit(rig, wire, "rig", "r1")
    wire.session.connection_lost(NOW, "pool closed the connection")
    wire.take("rig", rig.connection_lost(NOW, "pool closed the connection"))
    wire.take("", farm.connection_lost(NOW, "pool closed the connection"))
    assert _verdicts(wire, "") == [("f1", "no_response")]
    assert _verdicts(wire, "rig") == [("r1", "no_response")]


def test_a_channel_the_core_drops_is_closed_upstream_and_its_sibling_carries_on() -> None:
    wire, farm, rig = _two_channels(Sv2PoolConfig(accept_any=True, answer_shares=False))
    _submit(rig, wire, "rig", "r1")
    wire.pump()
    wire.take("rig", rig.connection_lost(NOW, "worker refused"))  # the connection lives on
    assert _verdicts(wire, "rig") == [("r1", "no_response")]
    wire.pump()
    assert list(wire.pool_conn.channels) == [farm.channel_id]  # CloseChannel reached the pool
    assert list(wire.session.members.values()) == [farm]
    _submit(farm, wire, "", "f1")
    wire.pump()
    assert [j.channel_id for j in wire.pool.judged] == [rig.channel_id, farm.channel_id]


def test_a_channel_that_left_before_its_open_was_answered_is_closed_when_it_opens() -> None:
    wire = Wire(Sv2PoolConfig())
    farm = wire.channel("", "farm1")
    gone = wire.channel("gone", "farm1.gone")
    wire.session.leave(gone, NOW, "not wanted any more")
    wire.pump()
    assert wire.of("gone", up.UpstreamReady) == [] and gone.channel_id is None
    assert list(wire.pool_conn.channels) == [farm.channel_id]


def test_a_refused_setup_reaches_every_channel() -> None:
    wire = Wire(Sv2PoolConfig(refuse_setup="unsupported-protocol"))
    wire.channel("", "farm1")
    wire.channel("rig", "farm1.rig")
    wire.pump()
    for name in ("", "rig"):
        (refused,) = wire.of(name, up.UpstreamRefused)
        assert "unsupported-protocol" in refused.reason  # type: ignore[attr-defined]


def test_a_refused_worker_channel_is_a_refused_name_not_a_refused_pool() -> None:
    wire = Wire(Sv2PoolConfig(refuse_users=("farm1.bad",)))
    wire.channel("", "farm1")
    wire.channel("bad", "farm1.bad")
    wire.pump()
    assert wire.of("", up.UpstreamReady) and not wire.of("", up.UpstreamRefused)
    (refused,) = wire.of("bad", up.WorkerAuthorized)
    assert isinstance(refused, up.WorkerAuthorized)
    assert refused.worker == "farm1.bad" and not refused.accepted
    assert "unknown-user" in refused.reason and not wire.of("bad", up.UpstreamRefused)


def test_bytes_fed_through_one_channel_leave_the_siblings_events_in_their_inboxes() -> None:
    """``receive_data`` on a channel (the core's ``upstream_data``) also serves the others."""
    wire = Wire(Sv2PoolConfig())
    farm = wire.channel("", "farm1")
    rig = wire.channel("rig", "farm1.rig")
    while True:  # the same exchange as pump(), all of it fed through ``farm``
        out = wire.session.client.data_to_send()
        if out:
            wire.pool_conn.receive_data(out, NOW)
        back = wire.pool_conn.data_to_send()
        if back:
            wire.take("", farm.receive_data(back, NOW))
        if not out and not back:
            break
    assert wire.of("", up.UpstreamReady) and not wire.of("rig", up.UpstreamReady)
    assert rig.get_timer() == 0.0
    wire.take("rig", rig.handle_timer(NOW))
    assert wire.of("rig", up.UpstreamReady) and wire.of("rig", up.PoolJob)
    assert rig.inbox == [] and rig.get_timer() is None
