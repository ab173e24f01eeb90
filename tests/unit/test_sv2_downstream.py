"""An SV2 miner's connection seen by the aggregate core as an SV1 session (sans-I/O).

The test plays the firmware: a Noise initiator pinned to the proxy's authority
key, SetupConnection, a channel, shares hashed for real on the jobs it gets.
What the core would see (events, SV1 submits) must describe the very header
the miner hashed, and the core's verdicts must come back as SV2 messages.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
from helpers.sv2_strategies import any_message
from hypothesis import HealthCheck, given, settings

from stratum_proxy.shares.math import merkle_root, sha256d, swap_prevhash_words
from stratum_proxy.sim.chain import header_hash_int
from stratum_proxy.sim.hasher import search
from stratum_proxy.sv1 import codes
from stratum_proxy.sv1.downstream import (
    MinerAuthorized,
    MinerSubscribed,
    SubmitReceived,
    SuggestedDifficulty,
)
from stratum_proxy.sv2.crypto import xonly_pubkey
from stratum_proxy.sv2.downstream import (
    ChannelClosed,
    ChannelEvent,
    ChannelRequested,
    Sv2Channel,
    Sv2Downstream,
)
from stratum_proxy.sv2.errors import Sv2ProtocolError
from stratum_proxy.sv2.framing import FRAME_HEADER_SIZE, Header
from stratum_proxy.sv2.jobs import (
    block_header,
    extended_merkle_root,
    target_from_difficulty,
    target_to_int,
)
from stratum_proxy.sv2.messages import (
    CloseChannel,
    Message,
    NewExtendedMiningJob,
    NewMiningJob,
    OpenExtendedMiningChannel,
    OpenExtendedMiningChannelSuccess,
    OpenMiningChannelError,
    OpenStandardMiningChannel,
    OpenStandardMiningChannelSuccess,
    SetNewPrevHash,
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

SECRET = bytes(range(1, 33))
PREFIX = bytes.fromhex("0000a001")  # the proxy's extranonce1 for this miner
SIZE = 4  # extranonce2 size the core grants
COINB1 = bytes.fromhex(
    "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff20"
)
COINB2 = bytes.fromhex(
    "ffffffff0100f2052a010000001976a914000000000000000000000000000000000000000088ac00000000"
)
BRANCH = [sha256d(b"tx1"), sha256d(b"tx2")]
PREVHASH_SV1 = bytes(range(32))  # stratum's word-swapped form
NOTIFY = ["a1", PREVHASH_SV1.hex(), COINB1.hex(), COINB2.hex(), [n.hex() for n in BRANCH],
          "20000000", "207fffff", "66000000", True]  # fmt: skip


def setup(flags: int = 0b100) -> SetupConnection:
    return SetupConnection(
        protocol=0, min_version=2, max_version=2, flags=flags, endpoint_host="proxy",
        endpoint_port=3336, vendor="bitaxe", hardware_version="", firmware="", device_id="",
    )  # fmt: skip


class Firmware:
    """The miner's end, and the shell's: the connection's events unwrapped for the core."""

    def __init__(self, max_channels: int = 64) -> None:
        now = time.time()
        self.connection = Sv2Downstream(
            authority_secret=SECRET, cert_validity_s=3600, now=now, rng=os.urandom,
            version_mask=0x1FFFE000, shares_per_minute=12, max_channels=max_channels,
        )  # fmt: skip
        initiator = NoiseInitiator(xonly_pubkey(SECRET), now, os.urandom)
        assert self.connection.receive_data(initiator.first_message()) == []
        transport = initiator.receive(self.connection.data_to_send(), now=now)
        assert transport is not None
        self.transport = transport
        self.channels: list[Sv2Channel] = []
        self.closed: list[ChannelClosed] = []

    @property
    def session(self) -> Sv2Channel:
        """The latest channel opened: what the core would hold as the miner."""
        return self.channels[-1]

    def send(self, msg: Message) -> list[Any]:
        wire = self.transport.encrypt_frame(encode_message(msg))
        events: list[Any] = []
        for item in self.connection.receive_data(wire):
            if isinstance(item, ChannelRequested):
                self.channels.append(item.channel)
                events.append(MinerAuthorized(worker=item.worker))
            elif isinstance(item, ChannelEvent):
                events.append(item.event)
            else:
                self.closed.append(item)
                events.append(item)
        return events

    def received(self) -> list[Any]:
        frames = self.transport.feed(self.connection.data_to_send())
        return [decode_message(Header.decode(f), f[FRAME_HEADER_SIZE:]) for f in frames]


def _open(firmware: Firmware, channel: Message) -> list[Any]:
    firmware.send(setup())
    assert [type(m) for m in firmware.received()] == [SetupConnectionSuccess]
    events = firmware.send(channel)
    assert events == [MinerAuthorized(worker="farm.rig9")]
    assert firmware.received() == []  # answered once the core assigns an extranonce
    assert firmware.session.assign(PREFIX, SIZE) == MinerSubscribed(
        extranonce1=PREFIX, extranonce2_size=SIZE
    )
    firmware.session.send_difficulty(1e-6)
    firmware.session.send_notify(list(NOTIFY))
    return firmware.received()


STANDARD = OpenStandardMiningChannel(
    request_id=5, user_identity="farm.rig9", nominal_hash_rate=5e11, max_target=b"\xff" * 32
)
EXTENDED = OpenExtendedMiningChannel(
    request_id=5, user_identity="farm.rig9", nominal_hash_rate=5e11, max_target=b"\xff" * 32,
    min_extranonce_size=4,
)  # fmt: skip


MASK = 0x1FFFE000


def _sv1_hash(extranonce2: bytes, submit: Any) -> int:
    """The header hash the core rebuilds from an SV1 submit (coinbase with extranonce1+2,
    the job's version with the BIP310 bits of ``version_bits`` rolled in)."""
    root = merkle_root(sha256d(COINB1 + PREFIX + extranonce2 + COINB2), BRANCH)
    prefix = swap_prevhash_words(PREVHASH_SV1) + root
    version = (0x20000000 & ~MASK) | (int(submit.version_bits, 16) & MASK)
    return header_hash_int(prefix, version, int(submit.ntime, 16), 0x207FFFFF,
                           int(submit.nonce, 16))  # fmt: skip


def _mine(root: bytes, prev: SetNewPrevHash, version: int, target: int) -> tuple[int, int]:
    header = block_header(version, prev.prev_hash, root, prev.min_ntime, prev.nbits, 0)
    nonce = search(header[:76], target, 0, 1 << 22)
    assert nonce is not None
    full = block_header(version, prev.prev_hash, root, prev.min_ntime, prev.nbits, nonce)
    return nonce, int.from_bytes(sha256d(full), "little")


def test_a_standard_channel_mines_the_cores_jobs_and_gets_its_verdicts() -> None:
    firmware = Firmware()
    success, job, prev = _open(firmware, STANDARD)
    assert isinstance(success, OpenStandardMiningChannelSuccess)
    assert success.extranonce_prefix == PREFIX + bytes(SIZE)  # the whole extranonce
    assert isinstance(job, NewMiningJob)
    # The open is answered with the first difficulty the core sets: its target.
    assert target_to_int(success.target) == target_from_difficulty(1e-6)
    assert isinstance(prev, SetNewPrevHash) and prev.job_id == job.job_id
    assert job.min_ntime is None and prev.prev_hash == swap_prevhash_words(PREVHASH_SV1)
    root = merkle_root(sha256d(COINB1 + PREFIX + bytes(SIZE) + COINB2), BRANCH)
    assert job.merkle_root == root
    nonce, hash_int = _mine(job.merkle_root, prev, job.version, target_to_int(success.target))
    events = firmware.send(
        SubmitSharesStandard(channel_id=success.channel_id, sequence_number=1, job_id=job.job_id,
                             nonce=nonce, ntime=prev.min_ntime, version=job.version)
    )  # fmt: skip
    (received,) = events
    assert isinstance(received, SubmitReceived)
    submit = received.submit
    assert (submit.worker, submit.job_id, submit.extranonce2) == ("farm.rig9", "a1", "00000000")
    assert _sv1_hash(bytes(SIZE), submit) == hash_int  # the core judges the header hashed
    firmware.session.answer_submit(submit.id, None)
    firmware.session.answer_submit(2, codes.DUPLICATE)
    firmware.session.answer_submit(3, codes.OTHER)
    ok, duplicate, other = firmware.received()
    assert isinstance(ok, SubmitSharesSuccess) and ok.last_sequence_number == 1
    assert isinstance(duplicate, SubmitSharesError) and duplicate.error_code == "duplicate-share"
    assert isinstance(other, SubmitSharesError) and other.error_code == "invalid-share"
    # The same block again: a job active at once, no new prev hash.
    firmware.session.send_notify(["a2", *NOTIFY[1:]])
    (second,) = firmware.received()
    assert isinstance(second, NewMiningJob) and second.min_ntime == 0x66000000
    assert second.job_id != job.job_id


def test_an_extended_channel_builds_the_same_header_with_its_own_extranonce() -> None:
    firmware = Firmware()
    success, job, prev = _open(firmware, EXTENDED)
    assert isinstance(success, OpenExtendedMiningChannelSuccess)
    assert (success.extranonce_prefix, success.extranonce_size) == (PREFIX, SIZE)
    assert isinstance(job, NewExtendedMiningJob) and job.version_rolling_allowed
    mine = bytes.fromhex("deadbeef")
    root = extended_merkle_root(job, success.extranonce_prefix, mine)
    nonce, hash_int = _mine(root, prev, job.version, target_to_int(success.target))
    (received,) = firmware.send(
        SubmitSharesExtended(channel_id=success.channel_id, sequence_number=7, job_id=job.job_id,
                             nonce=nonce, ntime=prev.min_ntime, version=job.version,
                             extranonce=mine)
    )  # fmt: skip
    assert received.submit.extranonce2 == "deadbeef" and received.submit.id == 7
    assert _sv1_hash(mine, received.submit) == hash_int
    # A nominal hashrate becomes the difficulty for the vardiff's share rate (12/min).
    (suggested,) = firmware.send(
        UpdateChannel(channel_id=success.channel_id, nominal_hash_rate=2.0**31,
                      maximum_target=b"\xff" * 32)
    )  # fmt: skip
    assert suggested == SuggestedDifficulty(difficulty=2.5)  # 2^31 H/s x 5 s per share / 2^32


def test_what_the_proxy_does_not_serve_is_refused_out_loud() -> None:
    early = Firmware()
    with pytest.raises(Sv2ProtocolError, match="before SetupConnection"):
        early.send(STANDARD)
    selection = Firmware()
    selection.send(setup(flags=0b010))
    (refused,) = selection.received()
    assert isinstance(refused, SetupConnectionError)
    assert (refused.flags, refused.error_code) == (0b010, "unsupported-feature-flags")
    greedy = Firmware()
    greedy.send(setup())
    greedy.received()
    greedy.send(
        OpenExtendedMiningChannel(
            request_id=1,
            user_identity="farm.rig9",
            nominal_hash_rate=1.0,
            max_target=b"\xff" * 32,
            min_extranonce_size=8,
        )
    )
    assert greedy.session.assign(PREFIX, SIZE) is None  # 8 bytes asked, 4 to give
    (too_big,) = greedy.received()
    assert isinstance(too_big, OpenMiningChannelError)
    assert too_big.error_code == "min-extranonce-size-too-large"
    twice = Firmware(max_channels=1)
    _open(twice, STANDARD)
    twice.send(STANDARD)
    (second,) = twice.received()
    assert (
        isinstance(second, OpenMiningChannelError) and second.error_code == "max-channels-reached"
    )
    with pytest.raises(Sv2ProtocolError, match="second SetupConnection"):
        twice.send(setup())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(msg=any_message)
def test_any_message_is_answered_handed_to_the_core_or_closes(msg: Message) -> None:
    """Never silence: an SV2 answer, an event for the core to answer, or a close with a reason."""
    firmware = Firmware()
    _open(firmware, STANDARD)
    try:
        events = firmware.send(msg)
    except Sv2ProtocolError as exc:
        assert str(exc)
        return
    assert events or firmware.received(), f"{type(msg).__name__} went unanswered"


def test_a_corrupted_frame_or_an_oversized_one_closes_the_connection() -> None:
    corrupted = Firmware()
    wire = bytearray(corrupted.transport.encrypt_frame(encode_message(setup())))
    wire[-1] ^= 0x01  # breaks the payload's MAC
    with pytest.raises(Sv2ProtocolError):
        corrupted.connection.receive_data(bytes(wire))
    huge = Firmware()
    huge.send(setup())
    frame = encode_message(
        SubmitSharesExtended(channel_id=1, sequence_number=1, job_id=1, nonce=0, ntime=0,
                             version=0, extranonce=b"", extensions=())
    )  # fmt: skip
    payload = frame[6:] + bytes(20_000 - len(frame) + 6)
    oversized = frame[:3] + len(payload).to_bytes(3, "little") + payload
    with pytest.raises(Sv2ProtocolError, match="limit is 16384"):
        huge.connection.receive_data(huge.transport.encrypt_frame(oversized))


def test_acceptances_of_consecutive_shares_go_out_as_one_batched_success() -> None:
    firmware = Firmware()
    success, *_ = _open(firmware, STANDARD)
    # Verdicts in the order the core gives them: 3 and 4 are judged by the proxy at
    # once, 1 and 2 come back from the pool later; 5 is refused, 6..8 accepted.
    for sequence in (3, 4):
        firmware.session.answer_submit(sequence, None)
    for sequence in (1, 2):
        firmware.session.answer_submit(sequence, None)
    firmware.session.answer_submit(5, codes.LOW_DIFFICULTY)
    for sequence in (6, 7, 8):
        firmware.session.answer_submit(sequence, None)
    sent = firmware.received()
    summary = [
        (m.last_sequence_number, m.new_submits_accepted_count, m.new_shares_sum)
        if isinstance(m, SubmitSharesSuccess)
        else ("error", m.sequence_number, m.error_code)
        for m in sent
    ]
    # A batch never spans a share that waits or was refused: 3-4, then 1-2, then 6-8.
    assert summary == [
        (4, 2, 2),
        (2, 2, 2),
        ("error", 5, "difficulty-too-low"),
        (8, 3, 3),
    ]
    assert all(m.channel_id == success.channel_id for m in sent)
    # Nothing is held back: a batch goes out with the bytes it was answered in.
    firmware.session.answer_submit(9, None)
    assert [type(m) for m in firmware.received()] == [SubmitSharesSuccess]


def test_channels_of_one_connection_are_miners_of_their_own() -> None:
    """A downstream proxy (or a multi-board machine) opens several channels on one
    connection: each is its own miner for the core, its messages routed by channel id."""
    firmware = Firmware(max_channels=2)
    firmware.send(setup())
    firmware.received()
    firmware.send(STANDARD)
    firmware.send(EXTENDED)
    standard, extended = firmware.channels
    assert standard.channel_id != extended.channel_id
    standard.assign(PREFIX, SIZE)
    extended.assign(bytes.fromhex("0000a002"), SIZE)
    assert firmware.received() == []  # answered with the first difficulty
    standard.send_difficulty(1e-6)
    extended.send_difficulty(1e-6)
    opened = firmware.received()
    assert [type(m) for m in opened] == [
        OpenStandardMiningChannelSuccess,
        OpenExtendedMiningChannelSuccess,
    ]
    # Standard channels are in the connection's group, whose id is no channel's.
    assert opened[0].group_channel_id not in (0, standard.channel_id, extended.channel_id)
    assert opened[1].group_channel_id == 0
    # A third channel is past the limit.
    firmware.send(STANDARD)
    (refused,) = firmware.received()
    assert isinstance(refused, OpenMiningChannelError)
    assert refused.error_code == "max-channels-reached"
    # Each channel's submits reach the core as its own, with its own verdicts.
    standard.send_notify(list(NOTIFY))
    extended.send_notify(["b1", *NOTIFY[1:]])
    sent = firmware.received()
    jobs = {m.channel_id: m for m in sent if isinstance(m, NewMiningJob | NewExtendedMiningJob)}
    assert set(jobs) == {standard.channel_id, extended.channel_id}
    for channel, seq in ((standard, 3), (extended, 9)):
        (event,) = firmware.send(
            SubmitSharesExtended(
                channel_id=channel.channel_id, sequence_number=seq,
                job_id=jobs[channel.channel_id].job_id, nonce=1, ntime=0x66000000,
                version=0x20000000, extranonce=bytes(SIZE),
            )
            if channel is extended
            else SubmitSharesStandard(
                channel_id=channel.channel_id, sequence_number=seq,
                job_id=jobs[channel.channel_id].job_id, nonce=1, ntime=0x66000000,
                version=0x20000000,
            )
        )  # fmt: skip
        assert isinstance(event, SubmitReceived) and event.submit.id == seq
        assert event.submit.job_id == ("a1" if channel is standard else "b1")
    standard.answer_submit(3, None)
    extended.answer_submit(9, codes.DUPLICATE)
    ok, dup = firmware.received()
    assert isinstance(ok, SubmitSharesSuccess) and ok.channel_id == standard.channel_id
    assert isinstance(dup, SubmitSharesError) and dup.channel_id == extended.channel_id
    # The miner closes one channel: the other mines on; an unknown one closes all.
    closed = firmware.send(CloseChannel(channel_id=standard.channel_id, reason_code="bye"))
    assert [c.channel for c in closed] == [standard]
    assert list(firmware.connection.channels) == [extended.channel_id]
    with pytest.raises(Sv2ProtocolError, match="unknown channel"):
        firmware.send(CloseChannel(channel_id=standard.channel_id, reason_code="again"))


def test_a_share_with_extensions_takes_the_generic_path_to_the_same_submit() -> None:
    """Shares go to their channel straight from the payload; one with TLVs (a worker
    name, extension 0x0002) is decoded as a message: the core gets the same submit."""
    from stratum_proxy.sv2.messages.base import EXTENSION_WORKER_HASHRATE_TRACKING
    from stratum_proxy.sv2.messages.tlv import TLV_FIELD_USER_IDENTITY, Tlv

    firmware = Firmware()
    success, job, prev = _open(firmware, EXTENDED)
    fields: dict[str, Any] = {
        "channel_id": success.channel_id, "job_id": job.job_id, "nonce": 7,
        "ntime": prev.min_ntime, "version": job.version, "extranonce": b"\x01\x02\x03\x04",
    }  # fmt: skip
    tlv = Tlv(
        extension_type=EXTENSION_WORKER_HASHRATE_TRACKING,
        field_type=TLV_FIELD_USER_IDENTITY,
        value=b"rig9.a",
    )
    (plain,) = firmware.send(SubmitSharesExtended(sequence_number=1, **fields))
    (tagged,) = firmware.send(SubmitSharesExtended(sequence_number=1, extensions=(tlv,), **fields))
    assert plain == tagged and plain.submit.extranonce2 == "01020304"
    # A share on a channel that is not open is answered, by either path.
    firmware.send(SubmitSharesStandard(channel_id=99, sequence_number=3, job_id=1, nonce=0,
                                       ntime=0, version=0))  # fmt: skip
    (error,) = firmware.received()
    assert isinstance(error, SubmitSharesError) and error.error_code == "invalid-channel-id"
    assert error.sequence_number == 3


def test_a_share_read_with_a_corrupted_frame_behind_it_still_reaches_the_core() -> None:
    """One read: a whole share, then a frame that fails its MAC.  The connection closes
    (the error), and the share comes with it, for the core (its row)."""
    from stratum_proxy.sv2.downstream import Sv2FrameError

    firmware = Firmware()
    success, job, prev = _open(firmware, STANDARD)
    share = SubmitSharesStandard(channel_id=success.channel_id, sequence_number=4,
                                 job_id=job.job_id, nonce=9, ntime=prev.min_ntime,
                                 version=job.version)  # fmt: skip
    wire = firmware.transport.encrypt_frame(encode_message(share))
    bad = bytearray(firmware.transport.encrypt_frame(encode_message(share)))
    bad[-1] ^= 0x01
    with pytest.raises(Sv2FrameError, match="failed authentication") as info:
        firmware.connection.receive_data(wire + bytes(bad))
    (event,) = info.value.events
    assert isinstance(event, ChannelEvent) and event.channel is firmware.session
    assert event.event.submit.id == 4 and event.event.submit.nonce == "00000009"
