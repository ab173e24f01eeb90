"""A Stratum V2 test miner that hashes for real, on a standard or an extended channel.

    miner = Sv2TestMiner(Sv2MinerConfig(authority_key=pool_xonly, channel="standard",
                                        max_submits=10, bad_share_every=4))
    await miner.run("127.0.0.1", port)
    miner.submits      # every share sent, with the verdict that came back

It speaks as SV2 firmware does: the Noise handshake pinned to the authority
key, SetupConnection for the mining protocol (REQUIRES_STANDARD_JOBS on a
standard channel, REQUIRES_VERSION_ROLLING unless told otherwise), one
channel, then shares.  On a standard channel the pool's NewMiningJob carries
the merkle root (header-only mining); on an extended one the miner builds the
coinbase with its own extranonce and the merkle path of NewExtendedMiningJob.
Jobs follow the spec's rules: a future job waits for its SetNewPrevHash, a job
with min_ntime is active at once; jobs, prev hashes and targets addressed to
the channel's group apply to it.  A ``bad_share_every`` share is a nonce whose
hash misses the target, so the pool's refusal can be tested.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass, field
from typing import Literal

from stratum_proxy.shares import sha256d
from stratum_proxy.sim.hasher import search
from stratum_proxy.sv2.errors import Sv2ProtocolError
from stratum_proxy.sv2.framing import FRAME_HEADER_SIZE, Header
from stratum_proxy.sv2.jobs import block_header, extended_merkle_root, target_to_int
from stratum_proxy.sv2.messages import (
    PROTOCOL_MINING,
    REQUIRES_STANDARD_JOBS,
    REQUIRES_VERSION_ROLLING,
    AnyMessage,
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
    SetExtranoncePrefix,
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
    decode_message,
    encode_message,
)
from stratum_proxy.sv2.noise import NoiseInitiator
from stratum_proxy.sv2.transport import NoiseTransport

ChannelKind = Literal["standard", "extended"]
ACCEPTED = "accepted"


@dataclass(frozen=True, slots=True, kw_only=True)
class Sv2MinerConfig:
    authority_key: bytes  # the x-only public key the miner pins (32 bytes)
    channel: ChannelKind = "standard"
    user_identity: str = "sim.sv2"
    nominal_hash_rate: float = 1e6
    max_submits: int = 0  # stop after this many shares (0: no limit)
    duration: float = 0.0  # stop after this many seconds (0: no limit)
    bad_share_every: int = 0  # every Nth share misses the target on purpose
    min_extranonce_size: int = 4  # extended channels: what the miner asks for
    version_rolling: bool = True  # REQUIRES_VERSION_ROLLING in SetupConnection
    update_after: int = 0  # > 0: send UpdateChannel after this many shares
    answer_timeout: float = 5.0  # how long a finishing miner waits for verdicts
    # Load tests: > 0 submits the next nonce every this many seconds without
    # hashing (for a pool or proxy whose difficulty takes any hash).
    interval: float = 0.0
    idle: bool = False  # open the channel, then hold the connection without mining
    clock_offset_s: float = 0.0  # the miner's clock runs this far ahead (certificate checks)
    corrupt_frame: int = 0  # flip a bit in the MAC of the Nth encrypted frame sent (1-based)
    chunk: int = 2048  # nonces hashed between yields to the event loop


@dataclass(slots=True, kw_only=True)
class Sv2Submit:
    sequence_number: int
    job_id: int
    nonce: int
    ntime: int
    version: int
    extranonce: bytes
    meant_valid: bool
    hash_int: int
    verdict: str | None = None  # "accepted" or the pool's error code


@dataclass(slots=True)
class _Work:
    job_id: int
    version: int
    prev_hash: bytes
    merkle_root: bytes
    ntime: int
    nbits: int


@dataclass(slots=True)
class _State:
    channel_id: int | None = None
    group_id: int = 0
    target: int = 0
    extranonce_prefix: bytes = b""
    extranonce_size: int = 0
    jobs: dict[int, NewMiningJob | NewExtendedMiningJob] = field(default_factory=dict)
    prev_hash: SetNewPrevHash | None = None
    work: _Work | None = None


class Sv2TestMiner:
    __test__ = False  # not a pytest class

    def __init__(self, config: Sv2MinerConfig) -> None:
        self.config = config
        self.submits: list[Sv2Submit] = []
        self.errors: list[str] = []  # why the session ended early
        self.setup_error = ""
        self.open_error = ""
        self.closed_by_pool = ""  # CloseChannel reason
        self._frames_sent = 0
        self.updates_sent = 0
        self.set_targets: list[int] = []  # every SetTarget, in order
        self.prefix_changes = 0  # SetExtranoncePrefix received
        self.reconnect_requested = False
        self.opened_after: float | None = None  # seconds from connect to the open channel
        self._started = 0.0
        self.state = _State()
        self._transport: NoiseTransport | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._changed = asyncio.Event()
        self._stopping = False
        self._sequence = 0
        self._nonce = 0

    # --- the session ---------------------------------------------------------------

    async def run(self, host: str, port: int) -> None:
        self._started = time.monotonic()
        reader, writer = await asyncio.open_connection(host, port)
        self._writer = writer
        try:
            await self._handshake(reader, writer)
            self._send(self._setup())
            receiving = asyncio.create_task(self._receive(reader))
            try:
                await self._mine()
                await self._wait_verdicts()
            finally:
                receiving.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await receiving
        except (ConnectionError, Sv2ProtocolError, asyncio.IncompleteReadError) as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def stop(self) -> None:
        self._stopping = True
        self._changed.set()

    async def _handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        clock = self.config.clock_offset_s
        initiator = NoiseInitiator(self.config.authority_key, time.time() + clock, os.urandom)
        writer.write(initiator.first_message())
        transport = None
        while transport is None:
            data = await reader.read(4096)
            if not data:
                initiator.receive_eof()
                raise ConnectionError("the pool closed during the handshake")
            transport = initiator.receive(data, now=time.time() + clock)
        self._transport = transport
        self._handle_frames(transport.feed(b""))  # frames that came with act 2

    def _setup(self) -> SetupConnection:
        flags = REQUIRES_VERSION_ROLLING if self.config.version_rolling else 0
        if self.config.channel == "standard":
            flags |= REQUIRES_STANDARD_JOBS
        return SetupConnection(
            protocol=PROTOCOL_MINING, min_version=2, max_version=2, flags=flags,
            endpoint_host="127.0.0.1", endpoint_port=3336, vendor="stratum-proxy-sim",
            hardware_version="cpu", firmware="sim", device_id=self.config.user_identity,
        )  # fmt: skip

    def _send(self, msg: Message) -> None:
        assert self._transport is not None and self._writer is not None
        wire = self._transport.encrypt_frame(encode_message(msg))
        self._frames_sent += 1
        if self._frames_sent == self.config.corrupt_frame:
            wire = wire[:-1] + bytes([wire[-1] ^ 0x01])  # the frame's MAC no longer holds
        self._writer.write(wire)

    async def _receive(self, reader: asyncio.StreamReader) -> None:
        assert self._transport is not None
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    self.errors.append("EOF: the pool closed the connection")
                    break
                self._handle_frames(self._transport.feed(data))
        except (ConnectionError, Sv2ProtocolError) as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")
        self._stopping = True
        self._changed.set()

    def _handle_frames(self, frames: list[bytes]) -> None:
        for frame in frames:
            self._on_message(decode_message(Header.decode(frame), frame[FRAME_HEADER_SIZE:]))
        self._changed.set()

    # --- what the pool says ----------------------------------------------------------

    def _on_message(self, msg: AnyMessage) -> None:
        st = self.state
        if isinstance(msg, SetupConnectionSuccess):
            self._send(self._open())
        elif isinstance(msg, SetupConnectionError):
            self.setup_error = msg.error_code
            self._stopping = True
        elif isinstance(msg, OpenStandardMiningChannelSuccess):
            self.opened_after = time.monotonic() - self._started
            st.channel_id, st.group_id = msg.channel_id, msg.group_channel_id or 0
            st.target = target_to_int(msg.target)
            st.extranonce_prefix = msg.extranonce_prefix
        elif isinstance(msg, OpenExtendedMiningChannelSuccess):
            self.opened_after = time.monotonic() - self._started
            st.channel_id, st.group_id = msg.channel_id, msg.group_channel_id or 0
            st.target = target_to_int(msg.target)
            st.extranonce_prefix, st.extranonce_size = msg.extranonce_prefix, msg.extranonce_size
        elif isinstance(msg, OpenMiningChannelError):
            self.open_error = msg.error_code
            self._stopping = True
        elif isinstance(msg, NewMiningJob | NewExtendedMiningJob) and self._mine_to(msg):
            st.jobs[msg.job_id] = msg
            if msg.min_ntime is not None:
                self._activate(msg)
        elif isinstance(msg, SetNewPrevHash) and self._mine_to(msg):
            st.prev_hash = msg
            job = st.jobs.get(msg.job_id)
            st.jobs = {msg.job_id: job} if job is not None else {}  # older jobs are gone
            st.work = None
            if job is not None:
                self._activate(job)
        elif isinstance(msg, SetTarget) and self._mine_to(msg):
            st.target = target_to_int(msg.maximum_target)
            self.set_targets.append(st.target)
        elif isinstance(msg, SetExtranoncePrefix) and msg.channel_id == st.channel_id:
            st.extranonce_prefix = msg.extranonce_prefix
            self.prefix_changes += 1
        elif isinstance(msg, Reconnect):
            self.reconnect_requested = True  # firmware would reconnect; the test sees it
            self._stopping = True
        elif isinstance(msg, SubmitSharesSuccess) and msg.channel_id == st.channel_id:
            # A batch acknowledges new_submits_accepted_count shares up to
            # last_sequence_number: the latest ones still waiting (earlier ones may
            # still wait for their own verdict, e.g. at the pool behind a proxy).
            waiting = [
                s for s in self.submits
                if s.verdict is None and s.sequence_number <= msg.last_sequence_number
            ]  # fmt: skip
            count = msg.new_submits_accepted_count
            if count > len(waiting) or not waiting:
                self.errors.append(
                    f"Success for {count} shares up to {msg.last_sequence_number}, "
                    f"{len(waiting)} waiting"
                )
            for submit in waiting[-count:] if count else []:
                submit.verdict = ACCEPTED
        elif isinstance(msg, SubmitSharesError) and msg.channel_id == st.channel_id:
            for submit in self.submits:
                if submit.sequence_number == msg.sequence_number:
                    submit.verdict = msg.error_code
        elif isinstance(msg, CloseChannel) and self._mine_to(msg):
            self.closed_by_pool = msg.reason_code
            self._stopping = True

    def _mine_to(self, msg: AnyMessage) -> bool:
        """The message is for this miner's channel, or for the group it belongs to."""
        channel = getattr(msg, "channel_id", None)
        st = self.state
        return channel is not None and channel in (st.channel_id, st.group_id or -1)

    def _open(self) -> Message:
        cfg = self.config
        if cfg.channel == "standard":
            return OpenStandardMiningChannel(
                request_id=1, user_identity=cfg.user_identity,
                nominal_hash_rate=cfg.nominal_hash_rate, max_target=b"\xff" * 32,
            )  # fmt: skip
        return OpenExtendedMiningChannel(
            request_id=1, user_identity=cfg.user_identity, nominal_hash_rate=cfg.nominal_hash_rate,
            max_target=b"\xff" * 32, min_extranonce_size=cfg.min_extranonce_size,
        )  # fmt: skip

    def _activate(self, job: NewMiningJob | NewExtendedMiningJob) -> None:
        st = self.state
        if st.prev_hash is None:
            return
        if isinstance(job, NewMiningJob):
            root = job.merkle_root
        else:
            root = extended_merkle_root(job, st.extranonce_prefix, self._extranonce())
        ntime = job.min_ntime if job.min_ntime is not None else st.prev_hash.min_ntime
        st.work = _Work(job.job_id, job.version, st.prev_hash.prev_hash, root, ntime,
                        st.prev_hash.nbits)  # fmt: skip
        self._nonce = 0

    def _extranonce(self) -> bytes:
        return bytes(self.state.extranonce_size)  # one extranonce: nonces keep shares apart

    # --- hashing -------------------------------------------------------------------

    async def _mine(self) -> None:
        cfg = self.config
        deadline = time.monotonic() + cfg.duration if cfg.duration else None
        while not self._stopping:
            if cfg.max_submits and len(self.submits) >= cfg.max_submits:
                return
            if deadline is not None and time.monotonic() >= deadline:
                return
            work = self.state.work
            if work is None or not self.state.target or cfg.idle:
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), 1.0)
                continue
            if cfg.interval:
                self._nonce += 1
                self._submit(work, self._nonce, True)
                await asyncio.sleep(cfg.interval)
                continue
            want_valid = not (
                cfg.bad_share_every and (len(self.submits) + 1) % cfg.bad_share_every == 0
            )
            header = block_header(
                work.version, work.prev_hash, work.merkle_root, work.ntime, work.nbits, 0
            )
            nonce = search(header[:76], self.state.target, self._nonce, cfg.chunk,
                           want_valid=want_valid)  # fmt: skip
            self._nonce += cfg.chunk if nonce is None else nonce - self._nonce + 1
            if nonce is not None and self.state.work is work:
                self._submit(work, nonce, want_valid)
            await asyncio.sleep(0)  # let verdicts and new jobs in

    def _submit(self, work: _Work, nonce: int, meant_valid: bool) -> None:
        st = self.state
        assert st.channel_id is not None
        self._sequence += 1
        header = block_header(
            work.version, work.prev_hash, work.merkle_root, work.ntime, work.nbits, nonce
        )
        hash_int = int.from_bytes(sha256d(header), "little")
        extranonce = b"" if self.config.channel == "standard" else self._extranonce()
        self.submits.append(
            Sv2Submit(
                sequence_number=self._sequence,
                job_id=work.job_id,
                nonce=nonce,
                ntime=work.ntime,
                version=work.version,
                extranonce=extranonce,
                meant_valid=meant_valid,
                hash_int=hash_int,
            )
        )
        if self.config.channel == "standard":
            self._send(
                SubmitSharesStandard(
                    channel_id=st.channel_id,
                    sequence_number=self._sequence,
                    job_id=work.job_id,
                    nonce=nonce,
                    ntime=work.ntime,
                    version=work.version,
                )
            )
        else:
            self._send(
                SubmitSharesExtended(
                    channel_id=st.channel_id,
                    sequence_number=self._sequence,
                    job_id=work.job_id,
                    nonce=nonce,
                    ntime=work.ntime,
                    version=work.version,
                    extranonce=extranonce,
                )
            )
        if self.config.update_after and len(self.submits) == self.config.update_after:
            self._send(
                UpdateChannel(
                    channel_id=st.channel_id,
                    nominal_hash_rate=self.config.nominal_hash_rate * 2,
                    maximum_target=b"\xff" * 32,
                )
            )
            self.updates_sent += 1

    async def _wait_verdicts(self) -> None:
        deadline = time.monotonic() + self.config.answer_timeout
        while any(s.verdict is None for s in self.submits) and time.monotonic() < deadline:
            if self._stopping and self.errors:
                return  # the connection is gone: no verdict will come
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), 0.2)
