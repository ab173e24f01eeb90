"""The sans-I/O SV2 mining client against the sans-I/O test pool, wired in memory."""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stratum_proxy.errors import LocalProtocolError
from stratum_proxy.shares import sha256d
from stratum_proxy.sim.chain import share_target
from stratum_proxy.sim.sv2_pool_config import TEST_AUTHORITY_SECRET, Sv2PoolConfig
from stratum_proxy.sim.sv2_pool_conn import GROUP_CHANNEL_ID
from stratum_proxy.sim.sv2_pool_core import Sv2PoolState
from stratum_proxy.sv2 import client_events as ev
from stratum_proxy.sv2.channel import seq_at_or_before
from stratum_proxy.sv2.client import Sv2Client
from stratum_proxy.sv2.crypto import xonly_pubkey
from stratum_proxy.sv2.errors import Sv2ProtocolError
from stratum_proxy.sv2.jobs import block_header, extended_merkle_root
from stratum_proxy.sv2.messages import SubmitSharesError, SubmitSharesSuccess, UnknownMessage

NOW = 1_800_000_000.0


class Pair:
    """Client and pool connection exchanging bytes in memory."""

    def __init__(self, config: Sv2PoolConfig | None = None, *, split: bool = False) -> None:
        self.pool = Sv2PoolState(config or Sv2PoolConfig())
        self.conn = self.pool.new_connection(NOW, os.urandom)
        self.client = Sv2Client(
            authority_pubkey=xonly_pubkey(TEST_AUTHORITY_SECRET),
            now=NOW,
            rng=os.urandom,
            endpoint_host="pool.example",
            endpoint_port=3336,
            submit_timeout_s=5.0,
        )
        self.split = split
        self.events: list[ev.ClientEvent] = []

    def pump(self, now: float = NOW) -> list[ev.ClientEvent]:
        new: list[ev.ClientEvent] = []
        while True:
            up, down = self.client.data_to_send(), b""
            if up:
                self.conn.receive_data(up, now)
            down = self.conn.data_to_send()
            if down:
                chunks = [down[i : i + 1] for i in range(len(down))] if self.split else [down]
                for chunk in chunks:
                    new.extend(self.client.receive_data(chunk, now))
            if not up and not down:
                break
        self.events.extend(new)
        return new

    def open(self, count: int = 1, size: int = 4) -> list[ev.ChannelOpened]:
        self.pump()
        for i in range(count):
            self.client.open_extended_channel(
                user_identity=f"acct.m{i}", nominal_hash_rate=1e12, min_extranonce_size=size
            )
        return [e for e in self.pump() if isinstance(e, ev.ChannelOpened)]

    def valid_share(self, channel: ev.ChannelOpened, job: ev.JobActivated, start: int = 0) -> int:
        """A nonce the pool will accept, found with the proxy's own SV2 header code."""
        extranonce = bytes(channel.extranonce_size)
        root = extended_merkle_root(job.job, channel.extranonce_prefix, extranonce)
        ntime = job.prev_hash.min_ntime
        target = self.client.channels[channel.channel_id].target
        for nonce in range(start, start + 10**6):
            header = block_header(
                job.job.version, job.prev_hash.prev_hash, root, ntime, job.prev_hash.nbits, nonce
            )
            if int.from_bytes(sha256d(header), "little") <= target:
                return nonce
        raise AssertionError("no share found")

    def submit(
        self, channel: ev.ChannelOpened, job: ev.JobActivated, nonce: int, token: object
    ) -> int:
        return self.client.submit_share(
            channel_id=channel.channel_id,
            job_id=job.job.job_id,
            nonce=nonce,
            ntime=job.prev_hash.min_ntime,
            version=job.job.version,
            extranonce=bytes(channel.extranonce_size),
            now=NOW,
            token=token,
        )


def _jobs(events: list[ev.ClientEvent]) -> list[ev.JobActivated]:
    return [e for e in events if isinstance(e, ev.JobActivated)]


@pytest.mark.parametrize("split", [False, True], ids=["whole", "byte_by_byte"])
def test_handshake_setup_channel_and_first_job(split: bool) -> None:
    pair = Pair(split=split)
    ready = [e for e in pair.pump() if isinstance(e, ev.ConnectionReady)]
    assert ready == [ev.ConnectionReady(used_version=2, flags=0)]
    (opened,) = pair.open(size=6)
    assert opened.extranonce_size == 8 and len(opened.extranonce_prefix) == 4
    assert opened.group_channel_id == GROUP_CHANNEL_ID
    (job,) = _jobs(pair.events)
    assert job.clean and job.job.min_ntime is None  # future job activated by SetNewPrevHash
    assert pair.conn.channels[opened.channel_id].user_identity == "acct.m0"


def test_requests_made_before_setup_are_queued() -> None:
    pair = Pair()
    pair.client.open_extended_channel(
        user_identity="a", nominal_hash_rate=1.0, min_extranonce_size=4
    )
    events = pair.pump()
    kinds = [type(e) for e in events]
    assert kinds.index(ev.ConnectionReady) < kinds.index(ev.ChannelOpened)


def test_batched_success_accepts_every_waiting_submit() -> None:
    pair = Pair(Sv2PoolConfig(batch_size=3))
    (opened,) = pair.open()
    (job,) = _jobs(pair.events)
    nonce = -1
    seqs = []
    for token in ("a", "b", "c"):
        nonce = pair.valid_share(opened, job, nonce + 1)
        seqs.append(pair.submit(opened, job, nonce, token))
        verdicts = [e for e in pair.pump() if isinstance(e, ev.ShareVerdict)]
    assert seqs == [0, 1, 2]
    assert [(v.token, v.status) for v in verdicts] == [
        ("a", "accepted"),
        ("b", "accepted"),
        ("c", "accepted"),
    ]
    assert pair.client.pending_count() == 0


def test_error_inside_a_batch_is_not_accepted_by_the_later_success() -> None:
    pair = Pair(Sv2PoolConfig(batch_size=2))
    (opened,) = pair.open()
    (job,) = _jobs(pair.events)
    nonces = []
    for _ in range(3):
        nonces.append(pair.valid_share(opened, job, (nonces[-1] + 1) if nonces else 0))
    pair.submit(opened, job, nonces[0], "first")
    pair.pump()
    pair.pool.force_errors("duplicate-share")
    pair.submit(opened, job, nonces[1], "second")
    (rejected,) = [e for e in pair.pump() if isinstance(e, ev.ShareVerdict)]
    assert (rejected.token, rejected.status, rejected.error_code) == (
        "second",
        "rejected",
        "duplicate-share",
    )
    pair.submit(opened, job, nonces[2], "third")
    verdicts = [e for e in pair.pump() if isinstance(e, ev.ShareVerdict)]
    assert [(v.token, v.status) for v in verdicts] == [("first", "accepted"), ("third", "accepted")]
    assert not [e for e in pair.events if isinstance(e, ev.ProtocolNotice)]


def test_unanswered_submit_times_out_as_no_response() -> None:
    pair = Pair(Sv2PoolConfig(answer_shares=False))
    (opened,) = pair.open()
    (job,) = _jobs(pair.events)
    pair.submit(opened, job, pair.valid_share(opened, job), "t")
    pair.pump()
    assert pair.client.get_timer() == NOW + 5.0
    assert pair.client.handle_timer(NOW + 4.9) == []
    (verdict,) = pair.client.handle_timer(NOW + 5.0)
    assert isinstance(verdict, ev.ShareVerdict)
    assert (verdict.status, verdict.token) == ("no_response", "t")
    assert pair.client.get_timer() is None


def test_group_job_and_target_reach_every_member() -> None:
    pair = Pair()
    opened = pair.open(count=2)
    pair.pool.new_block(NOW)
    pair.pool.set_difficulty(2e-6)
    events = pair.pump()
    assert sorted(j.channel_id for j in _jobs(events)) == sorted(o.channel_id for o in opened)
    targets = [e for e in events if isinstance(e, ev.TargetChanged)]
    assert {t.channel_id for t in targets} == {o.channel_id for o in opened}
    assert all(t.target == share_target(2e-6) for t in targets)


def test_job_on_current_prev_hash_is_active_at_once_and_not_clean() -> None:
    pair = Pair(Sv2PoolConfig(group_channels=False))
    pair.open()
    pair.pool.new_job(NOW)
    (job,) = _jobs(pair.pump())
    assert job.job.min_ntime is not None and not job.clean


def test_old_open_success_shape_has_no_group() -> None:
    pair = Pair(Sv2PoolConfig(old_open_success=True, group_channels=False))
    (opened,) = pair.open()
    assert opened.group_channel_id is None


def test_pool_messages_become_events() -> None:
    pair = Pair(Sv2PoolConfig(answer_shares=False))
    (opened,) = pair.open()
    (job,) = _jobs(pair.events)
    pair.submit(opened, job, 1, "pending")
    pair.pump()
    pair.conn.endpoint_changed(opened.channel_id)
    pair.conn.send_reconnect("other.example", 3337)
    pair.conn.close_channel(opened.channel_id, "bye")
    events = pair.pump()
    assert [type(e) for e in events] == [
        ev.ShareVerdict,
        ev.EndpointChanged,
        ev.ReconnectRequested,
        ev.ChannelClosed,
    ]
    assert events[0].status == "no_response"  # type: ignore[union-attr]
    assert events[2] == ev.ReconnectRequested(host="other.example", port=3337)
    with pytest.raises(LocalProtocolError):
        pair.submit(opened, job, 2, "closed channel")


def test_setup_error_closes_the_client() -> None:
    pair = Pair(Sv2PoolConfig(refuse_setup="unsupported-feature-flags"))
    events = pair.pump()
    assert events == [ev.SetupFailed(error_code="unsupported-feature-flags", flags=0)]
    assert pair.client.state == "closed"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (Sv2PoolConfig(sign_with=bytes(range(2, 34))), "not signed by the configured authority"),
        (Sv2PoolConfig(tamper_act2=True), "static key failed authentication"),
        (Sv2PoolConfig(cert_age_s=3700), "expired"),
        (Sv2PoolConfig(corrupt_frame=1), "failed authentication at nonce"),
    ],
    ids=["wrong_key", "tampered_act2", "expired", "corrupt_frame"],
)
def test_handshake_and_frame_faults_raise_a_clear_error(
    config: Sv2PoolConfig, message: str
) -> None:
    pair = Pair(config)
    with pytest.raises(Sv2ProtocolError, match=message) as info:
        pair.pump()
    assert info.value.fatal
    assert pair.client.connection_lost(NOW, "closed") == []


def test_connection_lost_resolves_pending_as_no_response() -> None:
    pair = Pair(Sv2PoolConfig(answer_shares=False))
    (opened,) = pair.open()
    (job,) = _jobs(pair.events)
    pair.submit(opened, job, 7, "x")
    pair.pump()
    (verdict,) = pair.client.connection_lost(NOW + 1, "pool went away")
    assert isinstance(verdict, ev.ShareVerdict)
    assert (verdict.status, verdict.error_code) == ("no_response", "pool went away")


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**31 - 1))
def test_sequence_numbers_compare_across_wraparound(last: int, back: int) -> None:
    earlier = (last - back) % 2**32
    assert seq_at_or_before(earlier, last)
    assert not seq_at_or_before((last + 1 + back) % 2**32, last) or back == 2**31 - 1


def test_random_splits_of_the_pool_stream() -> None:
    rng = random.Random(7)
    pair = Pair()
    pair.pump()
    pair.client.open_extended_channel(
        user_identity="a", nominal_hash_rate=1.0, min_extranonce_size=4
    )
    pair.conn.receive_data(pair.client.data_to_send(), NOW)
    stream = pair.conn.data_to_send()
    events: list[ev.ClientEvent] = []
    at = 0
    while at < len(stream):
        step = rng.randint(1, 40)
        events.extend(pair.client.receive_data(stream[at : at + step], NOW))
        at += step
    assert [type(e) for e in events] == [ev.ChannelOpened, ev.JobActivated]


def test_certificate_is_checked_on_the_wall_clock_not_on_now() -> None:
    """``now`` is monotonic (any origin); the certificate's validity is about ``wall``."""
    pair = Pair()
    pair.conn.receive_data(pair.client.data_to_send(), NOW)
    act2 = pair.conn.data_to_send()
    pair.client.receive_data(act2, 12.5, wall=NOW)
    assert pair.client.state == "setup"
    late = Pair()
    late.conn.receive_data(late.client.data_to_send(), NOW)
    with pytest.raises(Sv2ProtocolError, match="expired"):
        late.client.receive_data(late.conn.data_to_send(), NOW, wall=NOW + 10 * 86400)


def test_timer_may_be_early_after_a_verdict_but_never_late() -> None:
    pair = Pair(Sv2PoolConfig(batch_size=1))
    (opened,) = pair.open()
    (job,) = _jobs(pair.events)
    pair.submit(opened, job, pair.valid_share(opened, job), "answered")
    pair.pump()
    assert pair.client.pending_count() == 0
    # Nothing is pending; the timer may still fire once, and then it is exact.
    assert pair.client.get_timer() in (None, NOW + 5.0)
    assert pair.client.handle_timer(NOW + 5.0) == []
    assert pair.client.get_timer() is None


def test_verdicts_taken_from_the_payload_match_the_messages() -> None:
    """Success and Error reach their channel straight from the payload (the per-share
    path); one for a channel we do not have is a notice, as a decoded message was."""
    pair = Pair()
    (opened,) = pair.open()
    (job,) = _jobs(pair.events)
    pair.submit(opened, job, 1, "a")
    pair.submit(opened, job, 2, "b")
    pair.client.data_to_send()  # the pool never sees them: it answers by hand below
    pair.conn.send(
        SubmitSharesError(channel_id=opened.channel_id, sequence_number=1, error_code="stale-share")
    )
    pair.conn.send(
        SubmitSharesSuccess(
            channel_id=opened.channel_id,
            last_sequence_number=1,
            new_submits_accepted_count=1,
            new_shares_sum=5,
        )
    )
    pair.conn.send(
        SubmitSharesSuccess(
            channel_id=999, last_sequence_number=0, new_submits_accepted_count=1, new_shares_sum=1
        )
    )
    events = pair.client.receive_data(pair.conn.data_to_send(), NOW + 0.5)
    rejected, accepted, unknown = events
    assert isinstance(rejected, ev.ShareVerdict) and isinstance(accepted, ev.ShareVerdict)
    assert (rejected.token, rejected.status, rejected.error_code) == (
        "b",
        "rejected",
        "stale-share",
    )
    assert (accepted.token, accepted.status, accepted.sequence_number) == ("a", "accepted", 0)
    assert accepted.resolved_at - accepted.submitted_at == 0.5
    assert unknown == ev.ProtocolNotice(text="share verdict for unknown channel 999")


@pytest.mark.parametrize(
    ("msg_type", "payload", "error"),
    [
        (0x1C, bytes(21), "SubmitSharesSuccess: 1 unexpected trailing bytes"),
        (0x1C, bytes(19), "SubmitSharesSuccess.new_shares_sum: short buffer"),
        (0x1D, bytes(8) + b"\x02\xff\xfe", "SubmitSharesError.error_code: STR0_255 is not valid"),
        (0x1D, bytes(8) + b"\x05ab", "SubmitSharesError.error_code: short buffer"),
    ],
)
def test_a_malformed_verdict_is_a_protocol_error(msg_type: int, payload: bytes, error: str) -> None:
    pair = Pair()
    pair.open()
    pair.conn.send(
        UnknownMessage(extension_type=0, msg_type=msg_type, channel_msg=True, payload=payload)
    )
    with pytest.raises(Sv2ProtocolError, match=error):
        pair.client.receive_data(pair.conn.data_to_send(), NOW)
