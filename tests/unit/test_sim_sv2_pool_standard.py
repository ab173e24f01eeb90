"""The SV2 test pool, sans-I/O: standard channels, and no message left unanswered.

A real SV2 miner opens a *standard* channel (header-only mining).  The pool
answers with the channel's whole extranonce and a NewMiningJob carrying the
merkle root of that channel's coinbase; a share hashed on it is judged like
any other.  Messages the pool does not serve get the spec's error, or close
the connection with the reason kept: never silence.
"""

from __future__ import annotations

import dataclasses
import os
import time

import pytest

from stratum_proxy.sim.chain import header_hash_int
from stratum_proxy.sim.sv2_pool_config import Sv2PoolConfig
from stratum_proxy.sim.sv2_pool_conn import Sv2PoolConnection
from stratum_proxy.sim.sv2_pool_core import Sv2PoolState
from stratum_proxy.sv2.crypto import xonly_pubkey
from stratum_proxy.sv2.errors import Sv2ProtocolError
from stratum_proxy.sv2.framing import FRAME_HEADER_SIZE, Header
from stratum_proxy.sv2.messages import (
    AnyMessage,
    Message,
    NewMiningJob,
    OpenStandardMiningChannel,
    OpenStandardMiningChannelSuccess,
    RequestExtensions,
    RequestExtensionsSuccess,
    SetCustomMiningJob,
    SetCustomMiningJobError,
    SetNewPrevHash,
    SetupConnection,
    SetupConnectionSuccess,
    SubmitSharesError,
    SubmitSharesStandard,
    SubmitSharesSuccess,
    UpdateChannel,
    UpdateChannelError,
    decode_message,
    encode_message,
)
from stratum_proxy.sv2.noise import NoiseInitiator
from stratum_proxy.sv2.transport import NoiseTransport

SETUP = SetupConnection(
    protocol=0, min_version=2, max_version=2, flags=0b101, endpoint_host="pool",
    endpoint_port=3336, vendor="test", hardware_version="", firmware="", device_id="rig1",
)  # fmt: skip


class Client:
    """The miner's end: a Noise initiator talking to one pool connection in memory."""

    def __init__(self, config: Sv2PoolConfig | None = None) -> None:
        self.state = Sv2PoolState(config or Sv2PoolConfig())
        now = time.time()
        self.conn: Sv2PoolConnection = self.state.new_connection(now, os.urandom)
        initiator = NoiseInitiator(
            xonly_pubkey(self.state.config.authority_secret), now, os.urandom
        )
        self.conn.receive_data(initiator.first_message(), now)
        transport = initiator.receive(self.conn.data_to_send(), now=now)
        assert isinstance(transport, NoiseTransport)
        self.transport = transport

    def send(self, msg: Message) -> list[AnyMessage]:
        self.conn.receive_data(self.transport.encrypt_frame(encode_message(msg)), time.time())
        self.conn.handle_timer(time.time() + 1)  # flush batched verdicts
        return [
            decode_message(Header.decode(frame), frame[FRAME_HEADER_SIZE:])
            for frame in self.transport.feed(self.conn.data_to_send())
        ]


def _open(client: Client) -> tuple[OpenStandardMiningChannelSuccess, NewMiningJob, SetNewPrevHash]:
    (ok,) = client.send(SETUP)
    assert isinstance(ok, SetupConnectionSuccess)
    opened = client.send(
        OpenStandardMiningChannel(
            request_id=7, user_identity="farm.rig1", nominal_hash_rate=1e6, max_target=b"\xff" * 32
        )
    )
    success, job, prevhash = opened
    assert isinstance(success, OpenStandardMiningChannelSuccess)
    assert isinstance(job, NewMiningJob) and isinstance(prevhash, SetNewPrevHash)
    return success, job, prevhash


def _mine(job: NewMiningJob, prevhash: SetNewPrevHash, target: int) -> tuple[int, int]:
    """(nonce, hash) of the first header below ``target``, hashed for real."""
    prefix = prevhash.prev_hash + job.merkle_root
    for nonce in range(1 << 24):
        hash_int = header_hash_int(prefix, job.version, prevhash.min_ntime, prevhash.nbits, nonce)
        if hash_int <= target:
            return nonce, hash_int
    raise AssertionError("no share in 2^24 nonces")


def test_a_standard_channel_mines_header_only_and_gets_verdicts() -> None:
    client = Client()
    success, job, prevhash = _open(client)
    cfg = client.state.config
    assert success.request_id == 7 and success.group_channel_id == 0
    assert len(success.extranonce_prefix) == cfg.extranonce_prefix_size + cfg.extranonce_size
    assert job.channel_id == success.channel_id and job.min_ntime is None  # a future job
    assert prevhash.job_id == job.job_id
    # The root is that of the coinbase with the channel's extranonce in it.
    template = client.state.jobs[job.job_id].template
    assert job.merkle_root == template.header_prefix(success.extranonce_prefix, b"")[32:]
    target = int.from_bytes(success.target, "little")
    nonce, hash_int = _mine(job, prevhash, target)
    submit = SubmitSharesStandard(
        channel_id=success.channel_id, sequence_number=1, job_id=job.job_id, nonce=nonce,
        ntime=prevhash.min_ntime, version=job.version,
    )  # fmt: skip
    (accepted,) = client.send(submit)
    assert isinstance(accepted, SubmitSharesSuccess) and accepted.last_sequence_number == 1
    (again,) = client.send(struct_replace(submit, sequence_number=2))
    assert isinstance(again, SubmitSharesError) and again.error_code == "duplicate-share"
    (judged, duplicate) = client.state.judged
    assert judged.accepted and judged.hash_hex == hash_int.to_bytes(32, "big").hex()
    assert judged.user_identity == "farm.rig1" and not duplicate.accepted


def struct_replace(msg: SubmitSharesStandard, **change: int) -> SubmitSharesStandard:
    return dataclasses.replace(msg, **change)


def test_each_standard_channel_has_its_own_extranonce_and_merkle_root() -> None:
    client = Client()
    first, job1, _ = _open(client)
    opened = client.send(
        OpenStandardMiningChannel(
            request_id=8, user_identity="farm.rig2", nominal_hash_rate=1e6, max_target=b"\xff" * 32
        )
    )
    second, job2 = opened[0], opened[1]
    assert isinstance(second, OpenStandardMiningChannelSuccess)
    assert isinstance(job2, NewMiningJob)
    assert second.extranonce_prefix != first.extranonce_prefix
    assert job2.merkle_root != job1.merkle_root


def test_messages_the_pool_does_not_serve_get_the_specs_error() -> None:
    client = Client()
    success, _, _ = _open(client)
    (custom,) = client.send(
        SetCustomMiningJob(
            channel_id=success.channel_id,
            request_id=3,
            mining_job_token=b"t",
            version=0,
            prev_hash=bytes(32),
            min_ntime=0,
            nbits=0,
            coinbase_tx_version=2,
            coinbase_prefix=b"",
            coinbase_tx_input_n_sequence=0,
            coinbase_tx_outputs=b"",
            coinbase_tx_locktime=0,
            merkle_path=(),
        )
    )
    assert isinstance(custom, SetCustomMiningJobError) and custom.error_code == "jd-not-supported"
    (update,) = client.send(
        UpdateChannel(channel_id=99, nominal_hash_rate=1.0, maximum_target=b"\xff" * 32)
    )
    assert isinstance(update, UpdateChannelError) and update.error_code == "invalid-channel-id"
    (extensions,) = client.send(RequestExtensions(request_id=1, requested_extensions=(2,)))
    assert isinstance(extensions, RequestExtensionsSuccess)
    assert tuple(extensions.supported_extensions) == ()


def test_a_message_before_setup_or_a_second_setup_closes_with_the_reason() -> None:
    early = Client()
    opening = OpenStandardMiningChannel(
        request_id=1, user_identity="x", nominal_hash_rate=1.0, max_target=b"\xff" * 32
    )
    with pytest.raises(Sv2ProtocolError, match="OpenStandardMiningChannel before SetupConnection"):
        early.send(opening)
    twice = Client()
    twice.send(SETUP)
    with pytest.raises(Sv2ProtocolError, match="second SetupConnection"):
        twice.send(SETUP)
    server_only = Client()
    server_only.send(SETUP)
    with pytest.raises(Sv2ProtocolError, match="NewMiningJob is not a message a pool expects"):
        server_only.send(
            NewMiningJob(channel_id=1, job_id=1, min_ntime=None, version=0, merkle_root=bytes(32))
        )


def test_a_wrong_job_on_a_standard_channel_is_refused() -> None:
    client = Client()
    success, job, prevhash = _open(client)
    (refused,) = client.send(
        SubmitSharesStandard(
            channel_id=success.channel_id,
            sequence_number=1,
            job_id=job.job_id + 1000,
            nonce=1,
            ntime=prevhash.min_ntime,
            version=job.version,
        )
    )
    assert isinstance(refused, SubmitSharesError) and refused.error_code == "invalid-job-id"
