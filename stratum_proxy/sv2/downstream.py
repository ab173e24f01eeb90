"""The pool side of one SV2 miner connection, where the proxy is the miner's pool. Sans-I/O.

It has the interface of ``sv1.downstream.Sv1Downstream`` (``assign``,
``send_notify``, ``send_difficulty``, ``answer_submit``, ``receive_data`` ->
the same events), so the aggregate core serves SV2 firmware with the machinery
it has for SV1 miners: the proxy's extranonce prefixes, vardiff, shared pool
connections, failover, verdicts and rows.  What it translates:

* the Noise handshake as responder, signed with the proxy's authority key
  (a certificate per connection: renewed with every handshake);
* SetupConnection (mining protocol, version 2; REQUIRES_WORK_SELECTION is
  refused with ``unsupported-feature-flags``);
* one channel per connection, standard or extended.  Its open is the SV1
  authorize (the user identity is the worker) and is answered once the core
  assigns an extranonce: an extended channel gets the proxy's prefix and the
  extranonce2 size; a standard one gets prefix + zeros as its whole
  extranonce, so its jobs are NewMiningJob with the root of that coinbase;
* notify -> NewExtendedMiningJob / NewMiningJob (a new prev hash: a future
  job, then SetNewPrevHash), SV1 job ids mapped to U32; difficulty ->
  SetTarget; a verdict -> SubmitShares.Success (one per share) or .Error with
  the code miners understand; set_extranonce -> SetExtranoncePrefix;
  reconnect -> Reconnect;
* UpdateChannel -> a suggested difficulty from the nominal hashrate.

Nothing goes unanswered: a message the proxy does not serve gets the spec's
error (SetCustomMiningJob.Error, OpenMiningChannel.Error for a second
channel) or raises Sv2ProtocolError, which closes the connection with the
reason (a message before SetupConnection, a second SetupConnection, one only
a pool sends).
"""

from __future__ import annotations

from dataclasses import dataclass

from stratum_proxy.shares.math import merkle_root, sha256d, swap_prevhash_words
from stratum_proxy.sv1 import codes
from stratum_proxy.sv1 import messages as m
from stratum_proxy.sv1.downstream import (
    DownstreamEvent,
    MinerAuthorized,
    MinerSubscribed,
    SubmitReceived,
    SuggestedDifficulty,
)
from stratum_proxy.sv2.crypto import Rng
from stratum_proxy.sv2.errors import Sv2ProtocolError
from stratum_proxy.sv2.framing import FRAME_HEADER_SIZE, Header
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
    decode_message,
    encode_message,
)
from stratum_proxy.sv2.noise import NoiseResponder
from stratum_proxy.sv2.serving import answer_unserved, check_order
from stratum_proxy.sv2.transport import NoiseTransport

REQUIRES_WORK_SELECTION = 1 << 1
CHANNEL_ID = 1  # one channel per connection
# Miners' messages are a few hundred bytes (SubmitSharesExtended carries at
# most a 32-byte extranonce and some TLVs).
DEFAULT_MAX_FRAME_BYTES = 16 * 1024
HASHES_PER_DIFFICULTY = 2**32
# SV1 error codes (what the core answers with) -> the SV2 codes miners know.
_ERROR_CODES = {
    codes.JOB_NOT_FOUND: "stale-share",
    codes.DUPLICATE: "duplicate-share",
    codes.LOW_DIFFICULTY: "difficulty-too-low",
}


@dataclass(slots=True)
class _Channel:
    kind: str  # "standard" or "extended"
    request_id: int
    user_identity: str
    min_extranonce_size: int
    open: bool = False


class Sv2Downstream:
    """One SV2 miner connection seen by the aggregate core as if it were an SV1 session."""

    protocol = "sv2"  # the rows' protocol column
    difficulty_at_once = True  # UpdateChannel is answered with SetTarget (and a job)

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
    ) -> None:
        # A frame larger than any message a miner sends closes the connection
        # before its payload is buffered.
        self._responder = NoiseResponder(
            authority_secret, cert_validity_s, now, rng, max_payload=max_frame_bytes
        )
        self._transport: NoiseTransport | None = None
        self._out = bytearray()
        self.setup_done = False
        self.version_mask = version_mask  # SV2 miners roll the BIP320 bits
        self.extranonce_subscribed = True  # SetExtranoncePrefix is always understood
        self._shares_per_minute = shares_per_minute
        self._channel: _Channel | None = None
        self._assigned: tuple[bytes, int] | None = None  # (extranonce1, extranonce2 size)
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
        """Handshake, SetupConnection and the channel's open are done: the miner mines."""
        return self._channel is not None and self._channel.open

    @property
    def extranonce1(self) -> bytes | None:
        return self._assigned[0] if self._assigned is not None else None

    @property
    def extranonce2_size(self) -> int:
        return self._assigned[1] if self._assigned is not None else 0

    # --- bytes -----------------------------------------------------------------

    def data_to_send(self) -> bytes:
        self._flush_success()
        out = bytes(self._out)
        self._out.clear()
        return out

    def _send(self, msg: Message) -> None:
        self._flush_success()
        if self._transport is not None:
            self._out += self._transport.encrypt_frame(encode_message(msg))

    def _flush_success(self) -> None:
        batch, self._success = self._success, None
        if batch is not None and self._transport is not None:
            last, count, shares = batch
            msg = SubmitSharesSuccess(
                channel_id=CHANNEL_ID,
                last_sequence_number=last,
                new_submits_accepted_count=count,
                new_shares_sum=shares,
            )
            self._out += self._transport.encrypt_frame(encode_message(msg))

    def receive_data(self, data: bytes) -> list[DownstreamEvent]:
        """Events for the core; raises Sv2ProtocolError when the connection must close."""
        events: list[DownstreamEvent] = []
        if self._transport is None:
            answer = self._responder.receive(data)
            if answer is None:
                return events
            act2, self._transport = answer
            self._out += act2
            data = b""
        for frame in self._transport.feed(data):
            msg = decode_message(Header.decode(frame), frame[FRAME_HEADER_SIZE:])
            self._dispatch(msg, events)
        return events

    # --- what the miner says -------------------------------------------------------

    def _dispatch(self, msg: AnyMessage, events: list[DownstreamEvent]) -> None:
        check_order(msg, self.setup_done)
        if isinstance(msg, SetupConnection):
            self._on_setup(msg)
        elif isinstance(msg, OpenStandardMiningChannel | OpenExtendedMiningChannel):
            self._on_open(msg, events)
        elif isinstance(msg, SubmitSharesStandard | SubmitSharesExtended):
            self._on_submit(msg, events)
        elif isinstance(msg, UpdateChannel):
            if self._channel is None or msg.channel_id != CHANNEL_ID:
                self._send(
                    UpdateChannelError(channel_id=msg.channel_id, error_code="invalid-channel-id")
                )
            elif msg.nominal_hash_rate > 0:
                # The difficulty that gives the vardiff's share rate at that hashrate,
                # never easier than the miner's maximum_target (the core keeps its bounds).
                per_share = 60.0 / self._shares_per_minute
                difficulty = msg.nominal_hash_rate * per_share / HASHES_PER_DIFFICULTY
                floor = target_to_difficulty(msg.maximum_target) if any(msg.maximum_target) else 0
                events.append(SuggestedDifficulty(difficulty=max(difficulty, floor)))
            else:
                self._send(
                    UpdateChannelError(
                        channel_id=msg.channel_id, error_code="invalid-nominal-hashrate"
                    )
                )
        elif isinstance(msg, CloseChannel):
            raise Sv2ProtocolError(f"the miner closed its channel ({msg.reason_code}): closing")
        else:
            self._send(answer_unserved(msg, "a miner sends"))

    def _on_setup(self, msg: SetupConnection) -> None:
        if msg.protocol != PROTOCOL_MINING:
            self._send(SetupConnectionError(flags=0, error_code="unsupported-protocol"))
        elif not msg.min_version <= 2 <= msg.max_version:
            self._send(SetupConnectionError(flags=0, error_code="protocol-version-mismatch"))
        elif msg.flags & REQUIRES_WORK_SELECTION:
            self._send(
                SetupConnectionError(
                    flags=REQUIRES_WORK_SELECTION, error_code="unsupported-feature-flags"
                )
            )
        else:
            self.setup_done = True
            self._send(SetupConnectionSuccess(used_version=2, flags=0))

    def _on_open(
        self,
        msg: OpenStandardMiningChannel | OpenExtendedMiningChannel,
        events: list[DownstreamEvent],
    ) -> None:
        if self._channel is not None:
            self._send(
                OpenMiningChannelError(request_id=msg.request_id, error_code="max-channels-reached")
            )
            return
        if not msg.user_identity:
            self._send(
                OpenMiningChannelError(
                    request_id=msg.request_id, error_code="invalid-user-identity"
                )
            )
            return
        extended = isinstance(msg, OpenExtendedMiningChannel)
        self._channel = _Channel(
            kind="extended" if extended else "standard",
            request_id=msg.request_id,
            user_identity=msg.user_identity,
            min_extranonce_size=msg.min_extranonce_size
            if isinstance(msg, OpenExtendedMiningChannel)
            else 0,
        )
        events.append(MinerAuthorized(worker=msg.user_identity))
        if self._assigned is not None:
            event = self._answer_open()
            if event is not None:
                events.append(event)

    def _on_submit(
        self, msg: SubmitSharesStandard | SubmitSharesExtended, events: list[DownstreamEvent]
    ) -> None:
        channel = self._channel
        if channel is None or not channel.open or msg.channel_id != CHANNEL_ID:
            self._send(
                SubmitSharesError(
                    channel_id=msg.channel_id,
                    sequence_number=msg.sequence_number,
                    error_code="invalid-channel-id",
                )
            )
            return
        assert self._assigned is not None
        size = self._assigned[1]
        # A standard channel's extranonce is fixed: the proxy's prefix and zeros.
        extranonce2 = msg.extranonce if isinstance(msg, SubmitSharesExtended) else bytes(size)
        submit = m.Submit(
            id=msg.sequence_number,
            worker=channel.user_identity,
            job_id=self._job_names.get(msg.job_id, ""),  # unknown: the core says "job not found"
            extranonce2=extranonce2.hex(),
            ntime=f"{msg.ntime:08x}",
            nonce=f"{msg.nonce:08x}",
            # BIP310: only the rolled bits go to the pool; the rest is the job's.
            version_bits=f"{msg.version & self.version_mask:08x}" if self.version_mask else None,
        )
        events.append(SubmitReceived(submit=submit))

    # --- what the core says ------------------------------------------------------------

    def assign(self, extranonce1: bytes, extranonce2_size: int) -> MinerSubscribed | None:
        self._assigned = (extranonce1, extranonce2_size)
        return self._answer_open() if self._channel is not None else None

    def _answer_open(self) -> MinerSubscribed | None:
        channel = self._channel
        assert channel is not None and self._assigned is not None
        extranonce1, size = self._assigned
        if channel.kind == "extended":
            if channel.min_extranonce_size > size:
                self._send(
                    OpenMiningChannelError(
                        request_id=channel.request_id, error_code="min-extranonce-size-too-large"
                    )
                )
                self._channel = None
                return None
            self._send(
                OpenExtendedMiningChannelSuccess(
                    request_id=channel.request_id,
                    channel_id=CHANNEL_ID,
                    target=self._target(),
                    extranonce_size=size,
                    extranonce_prefix=extranonce1,
                    group_channel_id=0,
                )
            )
        else:
            self._send(
                OpenStandardMiningChannelSuccess(
                    request_id=channel.request_id,
                    channel_id=CHANNEL_ID,
                    target=self._target(),
                    extranonce_prefix=extranonce1 + bytes(size),
                    group_channel_id=0,
                )
            )
        channel.open = True
        held, self._held_notify = self._held_notify, None
        if held is not None:
            self.send_notify(held)
        return MinerSubscribed(extranonce1=extranonce1, extranonce2_size=size)

    def _target(self) -> bytes:
        difficulty = self._difficulty or 1.0
        return target_from_difficulty(difficulty).to_bytes(32, "little")

    def send_difficulty(self, difficulty: float) -> None:
        self._difficulty = difficulty
        if self._channel is not None and self._channel.open:
            self._send(SetTarget(channel_id=CHANNEL_ID, maximum_target=self._target()))

    def send_notify(self, params: list[object]) -> None:
        channel = self._channel
        if channel is None or not channel.open or self._assigned is None:
            # The core places a miner (and sends it work) as soon as it connects; an
            # SV2 miner opens its channel later: the latest job goes out then.
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
        if channel.kind == "extended":
            self._send(
                NewExtendedMiningJob(
                    channel_id=CHANNEL_ID,
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
                    channel_id=CHANNEL_ID,
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
                    channel_id=CHANNEL_ID,
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
            self._flush_success()
            self._success = (sequence, 1, shares)
        else:
            self._send(
                SubmitSharesError(
                    channel_id=CHANNEL_ID,
                    sequence_number=sequence,
                    error_code=_ERROR_CODES.get(code, "invalid-share"),
                )
            )

    def send_set_extranonce(self, extranonce1: bytes, extranonce2_size: int) -> None:
        channel = self._channel
        if channel is None or self._assigned is None:
            return
        self._assigned = (extranonce1, extranonce2_size)
        prefix = (
            extranonce1 if channel.kind == "extended" else extranonce1 + bytes(extranonce2_size)
        )
        self._send(SetExtranoncePrefix(channel_id=CHANNEL_ID, extranonce_prefix=prefix))
        self._prev_hash = None  # the next job starts over: a future job and its prev hash

    def send_version_mask(self, mask: int) -> None:
        self.version_mask = mask  # SV2 has no message for it: jobs say whether to roll

    def send_reconnect(self) -> None:
        self._send(Reconnect(new_host="", new_port=0))
