"""Server side of one connection to the simulated SV2 pool. Sans-I/O.

Handshake as a Noise responder (with fault knobs), SetupConnection, extended
channels (in a group by default, as SRI pools do) and standard channels
(header-only mining: a NewMiningJob with the merkle root of the channel's own
coinbase), jobs, and a verdict for every submit, acknowledged in batches like
SRI's ``share_batch_size``.  Every judged share goes into the pool's oracle
list.

Nothing is ignored: a message the pool does not serve gets the spec's error
(SetCustomMiningJob.Error, UpdateChannel.Error, SubmitShares.Error) or, when
the spec has none (a message before SetupConnection, a second SetupConnection,
a message the pool never expects), a Sv2ProtocolError that closes the
connection and is kept in the pool's ``errors``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from stratum_proxy.sim.sv2_pool_config import MAX_TARGET, PoolJob, Sv2Judged
from stratum_proxy.sv2.crypto import Rng
from stratum_proxy.sv2.framing import UnknownMessage, encode_header
from stratum_proxy.sv2.jobs import target_to_int
from stratum_proxy.sv2.messages import (
    AnyMessage,
    ChannelEndpointChanged,
    CloseChannel,
    Message,
    NewExtendedMiningJob,
    NewMiningJob,
    OpenExtendedMiningChannel,
    OpenExtendedMiningChannelSuccess,
    OpenMiningChannelError,
    OpenStandardMiningChannel,
    OpenStandardMiningChannelSuccess,
    Reconnect,
    SetNewPrevHash,
    SetTarget,
    SetupConnection,
    SetupConnectionError,
    SetupConnectionSuccess,
    SubmitSharesError,
    SubmitSharesExtended,
    SubmitSharesStandard,
    SubmitSharesSuccess,
    UpdateChannel,
    UpdateChannelError,
)
from stratum_proxy.sv2.messages.base import decode_frame
from stratum_proxy.sv2.noise import NoiseResponder
from stratum_proxy.sv2.serving import answer_unserved, check_order
from stratum_proxy.sv2.transport import NoiseTransport

if TYPE_CHECKING:
    from stratum_proxy.sim.sv2_pool_core import Sv2PoolState

GROUP_CHANNEL_ID = 1_000_000  # outside the channel ids we hand out


@dataclass(slots=True, kw_only=True)
class PoolChannel:
    channel_id: int
    prefix: bytes
    extranonce_size: int
    user_identity: str
    target: int
    seen: set[tuple[int, bytes, int, int, int]] = field(default_factory=set)
    unacked: int = 0
    unacked_work: int = 0
    last_accepted: int = 0
    first_unacked_at: float | None = None
    standard: bool = False  # header-only: its prefix is the whole extranonce


class Sv2PoolConnection:
    def __init__(self, pool: Sv2PoolState, conn_id: int, now: float, rng: Rng) -> None:
        cfg = pool.config
        self.pool = pool
        self.config = cfg
        self.conn_id = conn_id
        self._responder = NoiseResponder(
            cfg.sign_with or cfg.authority_secret, cfg.cert_validity_s, now - cfg.cert_age_s, rng
        )
        self._transport: NoiseTransport | None = None
        self._out = bytearray()
        self._frames_sent = 0
        self.setup_done = False
        self.channels: dict[int, PoolChannel] = {}
        self.closed_channels: list[int] = []
        self.updates = 0  # UpdateChannel messages received
        self._next_channel = 1

    # --- bytes ------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def send(self, msg: Message | UnknownMessage) -> None:
        if self._transport is None:
            return
        payload = msg.encode()
        header = encode_header(msg.extension_type, msg.msg_type, len(payload), msg.channel_msg)
        wire = self._transport.encrypt_parts(header, payload)
        self._frames_sent += 1
        if self._frames_sent == self.config.corrupt_frame:
            wire = wire[:-1] + bytes([wire[-1] ^ 0x01])  # breaks the last MAC
        self._out += wire

    def receive_data(self, data: bytes, now: float) -> None:
        """Raises Sv2ProtocolError (handshake or frame); the shell then closes."""
        if self._transport is None:
            answer = self._responder.receive(data)
            if answer is None:
                return
            act2, self._transport = answer
            if self.config.tamper_act2:
                act2 = act2[:70] + bytes([act2[70] ^ 0x80]) + act2[71:]
            self._out += act2
            return
        for header, payload in self._transport.feed_parts(data):
            self._dispatch(decode_frame(header, payload), now)

    # --- timers -----------------------------------------------------------------

    def get_timer(self) -> float | None:
        times = [c.first_unacked_at for c in self.channels.values() if c.first_unacked_at]
        return min(times) + self.config.batch_delay_s if times else None

    def handle_timer(self, now: float) -> None:
        for channel in self.channels.values():
            started = channel.first_unacked_at
            if started is not None and started + self.config.batch_delay_s <= now:
                self._flush(channel)

    # --- pool-initiated messages ------------------------------------------------------

    def _destinations(self) -> list[int]:
        """Where jobs, prevhashes and targets go: the group (or each extended
        channel), and every standard channel on its own."""
        extended = [i for i, c in self.channels.items() if not c.standard]
        standard = [i for i, c in self.channels.items() if c.standard]
        if self.config.group_channels and extended:
            return [GROUP_CHANNEL_ID, *standard]
        return extended + standard

    def send_job(self, job: PoolJob, destinations: list[int] | None = None) -> None:
        prefix, suffix = self.pool.coinbase_parts(job.template)
        for channel_id in destinations if destinations is not None else self._destinations():
            channel = self.channels.get(channel_id)
            if channel is not None and channel.standard:
                # The merkle root of this channel's coinbase: the device hashes headers only.
                root = job.template.header_prefix(channel.prefix, b"")[32:]
                self.send(
                    NewMiningJob(
                        channel_id=channel_id,
                        job_id=job.job_id,
                        min_ntime=None if job.future else job.template.ntime,
                        version=job.template.version,
                        merkle_root=root,
                    )
                )
            else:
                self.send(
                    NewExtendedMiningJob(
                        channel_id=channel_id,
                        job_id=job.job_id,
                        min_ntime=None if job.future else job.template.ntime,
                        version=job.template.version,
                        version_rolling_allowed=self.config.version_rolling_allowed,
                        merkle_path=job.template.branch,
                        coinbase_tx_prefix=prefix,
                        coinbase_tx_suffix=suffix,
                    )
                )
            if job.future:
                self.send(
                    SetNewPrevHash(
                        channel_id=channel_id,
                        job_id=job.job_id,
                        prev_hash=job.template.prevhash,
                        min_ntime=job.template.ntime,
                        nbits=job.template.nbits,
                    )
                )

    def send_target(self, target: int) -> None:
        for channel in self.channels.values():
            channel.target = target
        for channel_id in self._destinations():
            self.send(
                SetTarget(channel_id=channel_id, maximum_target=target.to_bytes(32, "little"))
            )

    def send_reconnect(self, host: str, port: int) -> None:
        self.send(Reconnect(new_host=host, new_port=port))

    def close_channel(self, channel_id: int, reason: str) -> None:
        self.channels.pop(channel_id, None)
        self.send(CloseChannel(channel_id=channel_id, reason_code=reason))

    def endpoint_changed(self, channel_id: int) -> None:
        self.send(ChannelEndpointChanged(channel_id=channel_id))

    # --- client messages --------------------------------------------------------

    def _dispatch(self, msg: AnyMessage, now: float) -> None:
        if isinstance(msg, SubmitSharesExtended) and self.setup_done:
            self._on_submit(msg, now)  # the one message that comes per share: first
            return
        check_order(msg, self.setup_done)
        if isinstance(msg, SetupConnection):
            self._on_setup(msg)
        elif isinstance(msg, OpenExtendedMiningChannel):
            self._on_open(msg)
        elif isinstance(msg, OpenStandardMiningChannel):
            self._on_open_standard(msg)
        elif isinstance(msg, SubmitSharesExtended):
            self._on_submit(msg, now)
        elif isinstance(msg, SubmitSharesStandard):
            self._on_submit(_as_extended(msg), now)
        elif isinstance(msg, CloseChannel):
            self.channels.pop(msg.channel_id, None)
            self.closed_channels.append(msg.channel_id)
        elif isinstance(msg, UpdateChannel):
            self.updates += 1
            channel = self.channels.get(msg.channel_id)
            if channel is not None:
                # Spec: a smaller maximum_target is honoured, and said with SetTarget.
                channel.target = min(self.pool.target, target_to_int(msg.maximum_target))
                self.send(
                    SetTarget(
                        channel_id=msg.channel_id,
                        maximum_target=channel.target.to_bytes(32, "little"),
                    )
                )
            else:
                self.send(
                    UpdateChannelError(channel_id=msg.channel_id, error_code="invalid-channel-id")
                )
        else:
            self.send(answer_unserved(msg, "a pool expects"))

    def _on_setup(self, msg: SetupConnection) -> None:
        if self.config.refuse_setup or msg.protocol != 0:
            code = self.config.refuse_setup or "unsupported-protocol"
            self.send(SetupConnectionError(flags=0, error_code=code))
            return
        self.setup_done = True
        self.send(SetupConnectionSuccess(used_version=2, flags=0))

    def _unknown(self, msg: OpenExtendedMiningChannel | OpenStandardMiningChannel) -> bool:
        return msg.user_identity in self.config.refuse_users

    def _on_open(self, msg: OpenExtendedMiningChannel) -> None:
        cfg = self.config
        size = cfg.grant_extranonce_size or max(cfg.extranonce_size, msg.min_extranonce_size)
        if cfg.refuse_open or cfg.extranonce_prefix_size + size > 32 or self._unknown(msg):
            code = cfg.refuse_open or (
                "unknown-user" if self._unknown(msg) else "min-extranonce-size-too-large"
            )
            self.send(OpenMiningChannelError(request_id=msg.request_id, error_code=code))
            return
        channel_id = self._next_channel
        self._next_channel += 1
        prefix = ((self.conn_id << 16) | channel_id).to_bytes(cfg.extranonce_prefix_size, "big")
        target = min(self.pool.target, int.from_bytes(msg.max_target, "little"), MAX_TARGET)
        self.channels[channel_id] = PoolChannel(
            channel_id=channel_id,
            prefix=prefix,
            extranonce_size=size,
            user_identity=msg.user_identity,
            target=target,
        )
        success = OpenExtendedMiningChannelSuccess(
            request_id=msg.request_id,
            channel_id=channel_id,
            target=target.to_bytes(32, "little"),
            extranonce_size=size,
            extranonce_prefix=prefix,
            group_channel_id=GROUP_CHANNEL_ID if cfg.group_channels else 0,
        )
        if cfg.old_open_success:  # pre-2025-10 shape: no group_channel_id at all
            payload = success.encode()[:-4]
            self.send(
                UnknownMessage(extension_type=0, msg_type=0x14, channel_msg=False, payload=payload)
            )
        else:
            self.send(success)
        self.send_job(_as_future(self.pool.current_job()), [channel_id])

    def _on_open_standard(self, msg: OpenStandardMiningChannel) -> None:
        cfg = self.config
        if cfg.refuse_open or self._unknown(msg):
            code = cfg.refuse_open or "unknown-user"
            self.send(OpenMiningChannelError(request_id=msg.request_id, error_code=code))
            return
        channel_id = self._next_channel
        self._next_channel += 1
        # The whole extranonce is the pool's: unique per channel, padded to the
        # length an extended channel's prefix and extranonce would have.
        head = ((self.conn_id << 16) | channel_id).to_bytes(cfg.extranonce_prefix_size, "big")
        prefix = head + bytes(cfg.extranonce_size)
        target = min(self.pool.target, int.from_bytes(msg.max_target, "little"), MAX_TARGET)
        self.channels[channel_id] = PoolChannel(
            channel_id=channel_id,
            prefix=prefix,
            extranonce_size=0,
            user_identity=msg.user_identity,
            target=target,
            standard=True,
        )
        self.send(
            OpenStandardMiningChannelSuccess(
                request_id=msg.request_id,
                channel_id=channel_id,
                target=target.to_bytes(32, "little"),
                extranonce_prefix=prefix,
                group_channel_id=0,  # jobs come to the channel itself, as NewMiningJob
            )
        )
        self.send_job(_as_future(self.pool.current_job()), [channel_id])

    def _on_submit(self, msg: SubmitSharesExtended, now: float) -> None:
        channel = self.channels.get(msg.channel_id)
        code, hash_int = self._judge(channel, msg)
        if self.config.record_judged:
            self.pool.judged.append(self._judged(channel, msg, code, hash_int))
        if not self.config.answer_shares:
            return
        if code or channel is None:
            self.send(
                SubmitSharesError(
                    channel_id=msg.channel_id, sequence_number=msg.sequence_number, error_code=code
                )
            )
            return
        channel.unacked += 1
        channel.unacked_work += max(1, int(self.pool.difficulty_of(channel.target)))
        channel.last_accepted = msg.sequence_number
        if channel.first_unacked_at is None:
            channel.first_unacked_at = now
        if channel.unacked >= self.config.batch_size:
            self._flush(channel)

    def _flush(self, channel: PoolChannel) -> None:
        if not channel.unacked:
            return
        self.send(
            SubmitSharesSuccess(
                channel_id=channel.channel_id,
                last_sequence_number=channel.last_accepted,
                new_submits_accepted_count=channel.unacked,
                new_shares_sum=channel.unacked_work,
            )
        )
        channel.unacked = channel.unacked_work = 0
        channel.first_unacked_at = None

    def _judge(self, channel: PoolChannel | None, msg: SubmitSharesExtended) -> tuple[str, int]:
        """(error code or '', hash as int or -1 when the header was not built)."""
        pool = self.pool
        job = pool.jobs.get(msg.job_id)
        hash_int = -1
        if channel is not None and job is not None and not self.config.accept_any:
            full = channel.prefix + msg.extranonce
            hash_int = pool.share_hash(job, full, msg.version, msg.ntime, msg.nonce)
        if pool.forced_errors:
            return pool.forced_errors.pop(0), hash_int
        if channel is None:
            return "invalid-channel-id", hash_int
        if len(msg.extranonce) != channel.extranonce_size:
            return "bad-extranonce-size", hash_int
        if job is None:
            return "invalid-job-id", hash_int
        if job.epoch != pool.epoch:
            return "stale-share", hash_int
        if not self.config.version_rolling_allowed and msg.version != job.template.version:
            return "version-rolling-not-allowed", hash_int
        if self.config.accept_any:
            return "", hash_int
        key = (msg.job_id, msg.extranonce, msg.nonce, msg.ntime, msg.version)
        if key in channel.seen:
            return "duplicate-share", hash_int
        channel.seen.add(key)
        if hash_int > channel.target:
            return "difficulty-too-low", hash_int
        return "", hash_int

    def _judged(
        self, channel: PoolChannel | None, msg: SubmitSharesExtended, code: str, hash_int: int
    ) -> Sv2Judged:
        built = hash_int >= 0
        return Sv2Judged(
            connection=self.conn_id,
            channel_id=msg.channel_id,
            sequence_number=msg.sequence_number,
            job_id=msg.job_id,
            extranonce=msg.extranonce.hex(),
            ntime=msg.ntime,
            nonce=msg.nonce,
            version=msg.version,
            hash_hex=hash_int.to_bytes(32, "big").hex() if built else "",
            difficulty=self.pool.difficulty_of(hash_int) if built else 0.0,
            pool_difficulty=self.pool.difficulty_of(channel.target) if channel else 0.0,
            accepted=not code,
            error_code=code,
            user_identity=channel.user_identity if channel else "",
        )


def _as_extended(msg: SubmitSharesStandard) -> SubmitSharesExtended:
    """A standard share is an extended one with no extranonce of the miner's own."""
    return SubmitSharesExtended(
        channel_id=msg.channel_id,
        sequence_number=msg.sequence_number,
        job_id=msg.job_id,
        nonce=msg.nonce,
        ntime=msg.ntime,
        version=msg.version,
        extranonce=b"",
    )


def _as_future(job: PoolJob) -> PoolJob:
    """A channel's first job always comes as a future job plus its SetNewPrevHash."""
    return PoolJob(job_id=job.job_id, template=job.template, epoch=job.epoch, future=True)
