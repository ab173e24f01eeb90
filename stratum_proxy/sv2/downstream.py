"""The pool side of one SV2 miner connection, where the proxy is the miner's pool. Sans-I/O.

``Sv2Downstream`` is the connection: the Noise handshake as responder, signed
with the proxy's authority key (a certificate per connection: renewed with
every handshake), SetupConnection (mining protocol, version 2;
REQUIRES_WORK_SELECTION is refused with ``unsupported-feature-flags``), the
frames, and up to ``max_channels`` channels.  Each channel is an
``Sv2Channel``: a miner for the aggregate core, with the interface of
``sv1.downstream.Sv1Downstream`` (``assign``, ``send_notify``,
``send_difficulty``, ``answer_submit``, ...), so the core serves SV2 firmware
with the machinery it has for SV1 miners: the proxy's extranonce prefixes,
vardiff, shared pool connections, failover, verdicts and rows.

``receive_data`` returns what the shell hands the core: ``ChannelRequested``
(add the channel as a miner; its open is the SV1 authorize, the user identity
is the worker, and it is answered once the core assigns an extranonce),
``ChannelEvent`` (a submit or a suggested difficulty for one channel) and
``ChannelClosed`` (the miner closed it: remove that miner).  What a channel
translates:

* an extended channel gets the proxy's prefix and the extranonce2 size; a
  standard one gets prefix + zeros as its whole extranonce, so its jobs are
  NewMiningJob with the root of that coinbase.  Every standard channel is in
  the connection's group (``GROUP_ID``), as the spec has it; messages still
  go to each channel, since channels of one connection may sit on different
  pool connections with different jobs;
* notify -> NewExtendedMiningJob / NewMiningJob (a new prev hash: a future
  job, then SetNewPrevHash), SV1 job ids mapped to U32; difficulty ->
  SetTarget; a verdict -> SubmitShares.Success (acceptances of consecutive
  sequence numbers batched) or .Error with the code miners understand;
  set_extranonce -> SetExtranoncePrefix; reconnect -> Reconnect;
* UpdateChannel -> a suggested difficulty from the nominal hashrate.

Nothing goes unanswered: a message the proxy does not serve gets the spec's
error (SetCustomMiningJob.Error, OpenMiningChannel.Error past the channel
limit, an Error for an unknown channel) or raises Sv2ProtocolError, which
closes the connection with the reason (a message before SetupConnection, a
second SetupConnection, one only a pool sends).
"""

from __future__ import annotations

from dataclasses import dataclass

from stratum_proxy.errors import LocalProtocolError
from stratum_proxy.shares.math import merkle_root, sha256d, swap_prevhash_words
from stratum_proxy.sv1 import codes
from stratum_proxy.sv1 import messages as m
from stratum_proxy.sv1.downstream import (
    DownstreamEvent,
    MinerSubscribed,
    SubmitReceived,
    SuggestedDifficulty,
)
from stratum_proxy.sv2.crypto import Rng
from stratum_proxy.sv2.errors import Sv2ProtocolError
from stratum_proxy.sv2.framing import encode_header
from stratum_proxy.sv2.jobs import target_from_difficulty, target_to_difficulty
from stratum_proxy.sv2.messages import (
    PROTOCOL_MINING,
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
    UpdateChannelError,
    encode_message,
)
from stratum_proxy.sv2.messages.base import decode_frame
from stratum_proxy.sv2.messages.mining import (
    decode_submit_shares_extended,
    decode_submit_shares_standard,
    encode_submit_shares_success,
)
from stratum_proxy.sv2.noise import NoiseResponder
from stratum_proxy.sv2.serving import answer_unserved, check_order
from stratum_proxy.sv2.transport import NoiseTransport, take_chunks

REQUIRES_WORK_SELECTION = 1 << 1
GROUP_ID = 1  # the connection's group of standard channels; channel ids start at 2
# Miners' messages are a few hundred bytes (SubmitSharesExtended carries at
# most a 32-byte extranonce and some TLVs).
DEFAULT_MAX_FRAME_BYTES = 16 * 1024
DEFAULT_MAX_CHANNELS = 64
HASHES_PER_DIFFICULTY = 2**32
# SV1 error codes (what the core answers with) -> the SV2 codes miners know.
_ERROR_CODES = {
    codes.JOB_NOT_FOUND: "stale-share",
    codes.DUPLICATE: "duplicate-share",
    codes.LOW_DIFFICULTY: "difficulty-too-low",
}
# The per-share messages go straight between struct and fields, without message
# objects (messages/mining.py's fast codec, byte-identical to the generic one).
_STANDARD_TYPE = SubmitSharesStandard.MSG_TYPE
_EXTENDED_TYPE = SubmitSharesExtended.MSG_TYPE
_SUCCESS_HEAD = encode_header(0, SubmitSharesSuccess.MSG_TYPE, 20, True)


# -- what the connection hands the shell ---------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class ChannelRequested:
    """A channel to add to the core as a miner (then ``MinerAuthorized(worker)``).

    ``difficulty``: what its nominal hashrate and max_target ask for (0: nothing).
    """

    channel: Sv2Channel
    worker: str
    difficulty: float = 0.0


@dataclass(slots=True, eq=False)  # one per share: a frozen __init__ takes twice as long
class ChannelEvent:
    """Something for the core from one channel (a submit, a suggested difficulty)."""

    channel: Sv2Channel
    event: DownstreamEvent


@dataclass(frozen=True, slots=True, eq=False)
class ChannelClosed:
    """The miner closed the channel (CloseChannel): the core forgets that miner."""

    channel: Sv2Channel
    reason: str


ConnectionEvent = ChannelRequested | ChannelEvent | ChannelClosed


class Sv2FrameError(Sv2ProtocolError):
    """A corrupted frame after whole ones in the same read: ``events`` is what the whole
    ones gave (shares among them), for the shell to hand the core before it closes."""

    def __init__(self, message: str, events: list[ConnectionEvent]) -> None:
        super().__init__(message)
        self.events = events


class Sv2Downstream:
    """One SV2 miner connection: handshake, setup, frames and its channels."""

    def __init__(
        self,
        *,
        authority_secret: bytes,
        cert_validity_s: int,
        now: float,
        rng: Rng,
        version_mask: int,
        shares_per_minute: float,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        max_channels: int = DEFAULT_MAX_CHANNELS,
    ) -> None:
        # A frame larger than any message a miner sends closes the connection
        # before its payload is buffered.
        self._responder = NoiseResponder(
            authority_secret, cert_validity_s, now, rng, max_payload=max_frame_bytes
        )
        self._transport: NoiseTransport | None = None
        # Wire bytes not taken yet, in order: most calls have one chunk (a share's
        # verdict), handed over as it is, without joining or copying it.
        self._out: list[bytes] = []
        self.setup_done = False
        self.version_mask = version_mask  # SV2 miners roll the BIP320 bits
        self.shares_per_minute = shares_per_minute
        self.max_channels = max_channels
        self.channels: dict[int, Sv2Channel] = {}
        self._next_channel = GROUP_ID + 1
        self.opened = 0  # channels ever opened on this connection
        # Channels with an acceptance batched, and with an open to answer: looked at
        # on every read and write, so only those are, not every channel.
        self.batched: dict[int, Sv2Channel] = {}
        self.answers_due: dict[int, Sv2Channel] = {}

    @property
    def ready(self) -> bool:
        """Handshake, SetupConnection and a channel's open are done: the miner mines."""
        return any(channel.open for channel in self.channels.values())

    # --- bytes -----------------------------------------------------------------

    def data_to_send(self) -> bytes:
        if self.answers_due:
            for channel in list(self.answers_due.values()):
                if channel.difficulty:  # else with its first difficulty
                    channel.answer_open()
        if self.batched:
            self.flush_batches()
        return take_chunks(self._out)

    def send(self, msg: Message) -> None:
        """Encrypt ``msg`` after the acceptances still batched: the order they were given."""
        self.flush_batches()
        self.send_now(msg)

    def send_now(self, msg: Message) -> None:
        if self._transport is not None:
            self._out.append(self._transport.encrypt_frame(encode_message(msg)))

    def send_success(self, channel_id: int, last: int, count: int, shares: int) -> None:
        """SubmitShares.Success from its fields (once per batch of shares)."""
        payload = encode_submit_shares_success(channel_id, last, count, shares)
        if payload is None:  # a value out of range: the generic codec says which
            self.send_now(
                SubmitSharesSuccess(
                    channel_id=channel_id,
                    last_sequence_number=last,
                    new_submits_accepted_count=count,
                    new_shares_sum=shares,
                )
            )
        elif self._transport is not None:
            self._out.append(self._transport.encrypt_parts(_SUCCESS_HEAD, payload))

    def receive_data(self, data: bytes) -> list[ConnectionEvent]:
        """Events for the shell; raises Sv2ProtocolError when the connection must close."""
        events: list[ConnectionEvent] = []
        if self._transport is None:
            answer = self._responder.receive(data)
            if answer is None:
                return events
            act2, self._transport = answer
            self._out.append(act2)
            data = b""
        frames, error = self._transport.feed_parts_until_error(data)
        for header, payload in frames:
            # A share (the core extension, bytes 0-1 of the header beside the
            # channel_msg bit) goes to its channel straight from the payload; anything
            # else, a malformed share included, is decoded as a message.
            if header[0] == 0 and header[1] & 0x7F == 0 and self.setup_done:
                kind = header[2]
                if kind == _EXTENDED_TYPE:
                    extended = decode_submit_shares_extended(payload)
                    if extended is not None:
                        self._on_submit(*extended, events)
                        continue
                elif kind == _STANDARD_TYPE:
                    standard = decode_submit_shares_standard(payload)
                    if standard is not None:
                        self._on_submit(*standard, None, events)
                        continue
            self._dispatch(decode_frame(header, payload), events)
        if error is not None:
            # The frames before the corrupted one count (their shares get rows); the
            # shell hands the events over, then closes with this error.
            raise Sv2FrameError(str(error), events)
        return events

    def _on_submit(
        self,
        channel_id: int,
        sequence: int,
        job_id: int,
        nonce: int,
        ntime: int,
        version: int,
        extranonce: bytes | None,
        events: list[ConnectionEvent],
    ) -> None:
        """A share; ``extranonce`` None: a standard channel's (its extranonce is fixed)."""
        channel = self.channels.get(channel_id)
        if channel is None or not channel.open:
            self.send(
                SubmitSharesError(
                    channel_id=channel_id,
                    sequence_number=sequence,
                    error_code="invalid-channel-id",
                )
            )
            return
        submit = channel.on_submit(sequence, job_id, nonce, ntime, version, extranonce)
        events.append(ChannelEvent(channel, submit))

    # --- what the miner says -------------------------------------------------------

    def _dispatch(self, msg: AnyMessage, events: list[ConnectionEvent]) -> None:
        check_order(msg, self.setup_done)
        if isinstance(msg, SubmitSharesStandard | SubmitSharesExtended):  # with TLVs
            extranonce = msg.extranonce if isinstance(msg, SubmitSharesExtended) else None
            self._on_submit(msg.channel_id, msg.sequence_number, msg.job_id, msg.nonce,
                            msg.ntime, msg.version, extranonce, events)  # fmt: skip
        elif isinstance(msg, SetupConnection):
            self._on_setup(msg)
        elif isinstance(msg, OpenStandardMiningChannel | OpenExtendedMiningChannel):
            self._on_open(msg, events)
        elif isinstance(msg, UpdateChannel):
            self._on_update(msg, events)
        elif isinstance(msg, CloseChannel):
            channel = self.channels.pop(msg.channel_id, None)
            if channel is None:
                # CloseChannel has no answer message: an unknown channel closes the connection.
                raise Sv2ProtocolError(f"CloseChannel for unknown channel {msg.channel_id}")
            channel.flush_success()
            channel.open = False
            self.answers_due.pop(channel.channel_id, None)
            events.append(ChannelClosed(channel, msg.reason_code))
        else:
            self.send(answer_unserved(msg, "a miner sends"))

    def flush_batches(self) -> None:
        """Every batched acceptance out, in the order the channels' batches began."""
        for channel in list(self.batched.values()):
            channel.flush_success()

    def _on_setup(self, msg: SetupConnection) -> None:
        if msg.protocol != PROTOCOL_MINING:
            self.send(SetupConnectionError(flags=0, error_code="unsupported-protocol"))
        elif not msg.min_version <= 2 <= msg.max_version:
            self.send(SetupConnectionError(flags=0, error_code="protocol-version-mismatch"))
        elif msg.flags & REQUIRES_WORK_SELECTION:
            self.send(
                SetupConnectionError(
                    flags=REQUIRES_WORK_SELECTION, error_code="unsupported-feature-flags"
                )
            )
        else:
            self.setup_done = True
            self.send(SetupConnectionSuccess(used_version=2, flags=0))

    def _on_open(
        self,
        msg: OpenStandardMiningChannel | OpenExtendedMiningChannel,
        events: list[ConnectionEvent],
    ) -> None:
        error = ""
        if len(self.channels) >= self.max_channels:
            error = "max-channels-reached"
        elif not msg.user_identity:
            error = "invalid-user-identity"
        if error:
            self.send(OpenMiningChannelError(request_id=msg.request_id, error_code=error))
            return
        extended = isinstance(msg, OpenExtendedMiningChannel)
        channel = Sv2Channel(
            self,
            channel_id=self._next_channel,
            kind="extended" if extended else "standard",
            request_id=msg.request_id,
            user_identity=msg.user_identity,
            min_extranonce_size=msg.min_extranonce_size if extended else 0,  # type: ignore[union-attr]
        )
        self._next_channel += 1
        self.opened += 1
        self.channels[channel.channel_id] = channel
        difficulty = self.difficulty_for(msg.nominal_hash_rate, msg.max_target)
        events.append(ChannelRequested(channel, msg.user_identity, difficulty))

    def difficulty_for(self, nominal_hash_rate: float, max_target: bytes) -> float:
        """The difficulty that gives the vardiff's share rate at that hashrate, never
        easier than the miner's max target (the core keeps its own bounds)."""
        per_share = 60.0 / self.shares_per_minute
        difficulty = max(0.0, nominal_hash_rate) * per_share / HASHES_PER_DIFFICULTY
        floor = target_to_difficulty(max_target) if any(max_target) else 0.0
        return max(difficulty, floor)

    def _on_update(self, msg: UpdateChannel, events: list[ConnectionEvent]) -> None:
        channel = self.channels.get(msg.channel_id)
        error = ""
        if channel is None or not channel.open:
            error = "invalid-channel-id"
        elif not msg.nominal_hash_rate > 0:
            error = "invalid-nominal-hashrate"
        if error or channel is None:
            self.send(UpdateChannelError(channel_id=msg.channel_id, error_code=error))
            return
        difficulty = self.difficulty_for(msg.nominal_hash_rate, msg.maximum_target)
        events.append(ChannelEvent(channel, SuggestedDifficulty(difficulty=difficulty)))


class Sv2Channel:
    """One channel of an SV2 miner connection, seen by the aggregate core as a miner."""

    protocol = "sv2"  # the rows' protocol column
    difficulty_at_once = True  # UpdateChannel is answered with SetTarget (and a job)

    def __init__(
        self,
        connection: Sv2Downstream,
        *,
        channel_id: int,
        kind: str,
        request_id: int,
        user_identity: str,
        min_extranonce_size: int,
    ) -> None:
        self.connection = connection
        self.channel_id = channel_id
        self.kind = kind  # "standard" or "extended"
        self.request_id = request_id
        self.user_identity = user_identity
        self.min_extranonce_size = min_extranonce_size
        self.version_mask = connection.version_mask
        self.open = False
        self.answer_due = False  # assigned, the open not answered yet
        self.miner_id = 0  # the core's id for it, set by the shell
        self._assigned: tuple[bytes, int] | None = None  # (extranonce1, extranonce2 size)
        self._zeros = ""  # a standard channel's extranonce2 as the core reads it: zeros in hex
        self._difficulty = 0.0
        self._prev_hash: bytes | None = None
        self._job_ids: dict[str, int] = {}  # the core's job id -> the U32 sent
        self._job_names: dict[int, str] = {}
        self._next_job = 1
        self._held_notify: list[object] | None = None
        # Acceptances not sent yet: (last_sequence_number, count, shares sum).
        self._success: tuple[int, int, int] | None = None

    @property
    def ready(self) -> bool:
        return self.open

    @property
    def extranonce_subscribed(self) -> bool:
        """Whether a new extranonce2 size can be given without a reconnect.

        A standard channel's whole extranonce is the proxy's: SetExtranoncePrefix
        gives it any length.  An extended channel rolls the extranonce_size it
        was opened with, and no message changes that: the core sends Reconnect.
        """
        return self.kind == "standard"

    @property
    def difficulty(self) -> float:
        """The difficulty the core set for this channel (0: none yet)."""
        return self._difficulty

    @property
    def extranonce1(self) -> bytes | None:
        return self._assigned[0] if self._assigned is not None else None

    @property
    def extranonce2_size(self) -> int:
        return self._assigned[1] if self._assigned is not None else 0

    # --- bytes (the connection's) ----------------------------------------------------

    def data_to_send(self) -> bytes:
        return self.connection.data_to_send()

    def receive_data(self, data: bytes) -> list[DownstreamEvent]:
        raise LocalProtocolError("an SV2 miner's bytes go to its connection, not a channel")

    def _send(self, msg: Message) -> None:
        self.connection.send(msg)

    @property
    def batched(self) -> bool:
        return self._success is not None

    def flush_success(self) -> None:
        batch, self._success = self._success, None
        if batch is not None:
            self.connection.batched.pop(self.channel_id, None)
            self.connection.send_success(self.channel_id, *batch)

    # --- what the miner says -------------------------------------------------------

    def on_submit(
        self,
        sequence: int,
        job_id: int,
        nonce: int,
        ntime: int,
        version: int,
        extranonce: bytes | None,
    ) -> SubmitReceived:
        """The share as the core reads an SV1 submit; ``extranonce`` None: a standard
        channel's, whose extranonce is fixed (the proxy's prefix and zeros).

        The U32 fields become 8 hex digits through ``to_bytes(4, "big").hex()``: the
        same text as ``f"{value:08x}"`` for any U32, in half the time.
        """
        mask = self.version_mask
        submit = m.Submit(
            id=sequence,
            worker=self.user_identity,
            job_id=self._job_names.get(job_id, ""),  # unknown: the core says "job not found"
            extranonce2=self._zeros if extranonce is None else extranonce.hex(),
            ntime=ntime.to_bytes(4, "big").hex(),
            nonce=nonce.to_bytes(4, "big").hex(),
            # BIP310: only the rolled bits go to the pool; the rest is the job's.
            version_bits=(version & mask).to_bytes(4, "big").hex() if mask else None,
        )
        return SubmitReceived(submit=submit)

    def _set_extranonce(self, extranonce1: bytes, extranonce2_size: int) -> None:
        self._assigned = (extranonce1, extranonce2_size)
        self._zeros = "00" * extranonce2_size

    # --- what the core says ------------------------------------------------------------

    def assign(self, extranonce1: bytes, extranonce2_size: int) -> MinerSubscribed | None:
        """The core's extranonce for this channel.  The open is answered with the first
        difficulty the core sets (so its target is the miner's): with the first job, or
        when the connection's bytes are taken if the core set one before."""
        self._set_extranonce(extranonce1, extranonce2_size)
        if self.open:
            return None
        if self.kind == "extended" and self.min_extranonce_size > extranonce2_size:
            self._send(
                OpenMiningChannelError(
                    request_id=self.request_id, error_code="min-extranonce-size-too-large"
                )
            )
            self.connection.channels.pop(self.channel_id, None)
            return None
        self.answer_due = True
        self.connection.answers_due[self.channel_id] = self
        return MinerSubscribed(extranonce1=extranonce1, extranonce2_size=extranonce2_size)

    def answer_open(self) -> None:
        """OpenMiningChannel.Success, then the job the core sent before it (if any)."""
        self.answer_due = False
        self.connection.answers_due.pop(self.channel_id, None)
        assert self._assigned is not None
        extranonce1, extranonce2_size = self._assigned
        if self.kind == "extended":
            self._send(
                OpenExtendedMiningChannelSuccess(
                    request_id=self.request_id,
                    channel_id=self.channel_id,
                    target=self._target(),
                    extranonce_size=extranonce2_size,
                    extranonce_prefix=extranonce1,
                    group_channel_id=0,
                )
            )
        else:
            self._send(
                OpenStandardMiningChannelSuccess(
                    request_id=self.request_id,
                    channel_id=self.channel_id,
                    target=self._target(),
                    extranonce_prefix=extranonce1 + bytes(extranonce2_size),
                    group_channel_id=GROUP_ID,
                )
            )
        self.open = True
        held, self._held_notify = self._held_notify, None
        if held is not None:
            self.send_notify(held)

    def _target(self) -> bytes:
        difficulty = self._difficulty or 1.0
        return target_from_difficulty(difficulty).to_bytes(32, "little")

    def send_difficulty(self, difficulty: float) -> None:
        self._difficulty = difficulty
        if self.answer_due:
            self.answer_open()  # with this target
        elif self.open:
            self._send(SetTarget(channel_id=self.channel_id, maximum_target=self._target()))

    def send_notify(self, params: list[object]) -> None:
        if self.answer_due:
            self.answer_open()
        if not self.open or self._assigned is None:
            # The core sends work as soon as it places the channel, before its open
            # is answered: the latest job goes out with the answer.
            self._held_notify = list(params)
            return
        name, prevhash_hex, coinb1, coinb2, branch, version, nbits, ntime, _clean = params[:9]
        job_id = self._job_ids.get(str(name))
        if job_id is None:
            job_id = self._job_ids[str(name)] = self._next_job
            self._job_names[job_id] = str(name)
            self._next_job += 1
            if len(self._job_ids) > 256:  # the core keeps far fewer jobs per miner
                old = next(iter(self._job_ids))
                self._job_names.pop(self._job_ids.pop(old), None)
        prev_hash = swap_prevhash_words(bytes.fromhex(str(prevhash_hex)))
        fresh_block = prev_hash != self._prev_hash
        min_ntime = None if fresh_block else int(str(ntime), 16)
        head, tail = bytes.fromhex(str(coinb1)), bytes.fromhex(str(coinb2))
        path = tuple(bytes.fromhex(str(node)) for node in branch)  # type: ignore[attr-defined]
        if self.kind == "extended":
            self._send(
                NewExtendedMiningJob(
                    channel_id=self.channel_id,
                    job_id=job_id,
                    min_ntime=min_ntime,
                    version=int(str(version), 16),
                    version_rolling_allowed=bool(self.version_mask),
                    merkle_path=path,
                    coinbase_tx_prefix=head,
                    coinbase_tx_suffix=tail,
                )
            )
        else:
            extranonce1, size = self._assigned
            root = merkle_root(sha256d(head + extranonce1 + bytes(size) + tail), path)
            self._send(
                NewMiningJob(
                    channel_id=self.channel_id,
                    job_id=job_id,
                    min_ntime=min_ntime,
                    version=int(str(version), 16),
                    merkle_root=root,
                )
            )
        if fresh_block:
            self._prev_hash = prev_hash
            self._send(
                SetNewPrevHash(
                    channel_id=self.channel_id,
                    job_id=job_id,
                    prev_hash=prev_hash,
                    min_ntime=int(str(ntime), 16),
                    nbits=int(str(nbits), 16),
                )
            )

    def answer_submit(self, msg_id: m.RpcId, code: int | None, message: str = "") -> None:
        sequence = int(msg_id) if isinstance(msg_id, int) else 0
        if code is None:
            # Acceptances of consecutive sequence numbers that go out together are one
            # batched Success (spec §5.3.15): up to last_sequence_number, count of them.
            shares = max(1, round(self._difficulty))
            batch = self._success
            if batch is not None and sequence == (batch[0] + 1) & 0xFFFFFFFF:
                self._success = (sequence, batch[1] + 1, batch[2] + shares)
                return
            connection = self.connection
            if connection.batched:
                connection.flush_batches()  # every answer leaves in the order given
            self._success = (sequence, 1, shares)
            connection.batched[self.channel_id] = self
        else:
            self._send(
                SubmitSharesError(
                    channel_id=self.channel_id,
                    sequence_number=sequence,
                    error_code=_ERROR_CODES.get(code, "invalid-share"),
                )
            )

    def send_set_extranonce(self, extranonce1: bytes, extranonce2_size: int) -> None:
        if not self.open or self._assigned is None:
            return
        self._set_extranonce(extranonce1, extranonce2_size)
        prefix = extranonce1 if self.kind == "extended" else extranonce1 + bytes(extranonce2_size)
        self._send(SetExtranoncePrefix(channel_id=self.channel_id, extranonce_prefix=prefix))
        self._prev_hash = None  # the next job starts over: a future job and its prev hash

    def send_version_mask(self, mask: int) -> None:
        self.version_mask = mask  # SV2 has no message for it: jobs say whether to roll

    def send_reconnect(self) -> None:
        self._send(Reconnect(new_host="", new_port=0))
