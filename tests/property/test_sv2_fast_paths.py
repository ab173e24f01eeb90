"""The per-share fast paths of the SV2 stack against the generic code they stand in for.

SubmitSharesStandard, SubmitSharesExtended, SubmitShares.Success and
SubmitShares.Error have a struct-based codec (messages/mining.py); frames
are decoded from their header bytes (``decode_frame``), encrypted as header
and payload apart (``encrypt_parts``) and received as (header, payload)
pairs (``feed_parts``); a channel finds the submits a Success accepts by a
prefix scan; the cipher state encrypts two messages in one call and decrypts
without associated data; a channel writes a share's fields as hex without
format strings.  Each must give
exactly what the generic path gives: the same bytes, the same message, or the
same error with the same text, and only the project's protocol errors on any
input.
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import pytest
from helpers.sv2_strategies import messages_of, tlv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stratum_proxy.errors import LocalProtocolError
from stratum_proxy.sv1 import messages as m
from stratum_proxy.sv2.channel import ClientChannel, seq_at_or_before
from stratum_proxy.sv2.crypto import MAX_NONCE, CipherState, CryptoError
from stratum_proxy.sv2.downstream import Sv2Channel, Sv2Downstream
from stratum_proxy.sv2.errors import Sv2ProtocolError
from stratum_proxy.sv2.framing import Header, encode_header
from stratum_proxy.sv2.messages import (
    Message,
    SubmitSharesError,
    SubmitSharesExtended,
    SubmitSharesStandard,
    SubmitSharesSuccess,
    decode_message,
)
from stratum_proxy.sv2.messages.base import decode_frame, generic_decode, generic_encode
from stratum_proxy.sv2.messages.mining import (
    decode_submit_shares_error,
    decode_submit_shares_extended,
    decode_submit_shares_standard,
    decode_submit_shares_success,
    encode_submit_shares_extended,
    encode_submit_shares_success,
)
from stratum_proxy.sv2.transport import NoiseTransport

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HOT = [SubmitSharesStandard, SubmitSharesExtended, SubmitSharesSuccess, SubmitSharesError]
K1, K2 = bytes(range(32)), bytes(range(32, 64))

# Values around and beyond each integer type's range, to reach the fallbacks.
wide_int = st.one_of(
    st.integers(0, 0xFFFFFFFF),
    st.integers(-(2**33), 2**66),
    st.sampled_from([-1, 0, 2**32 - 1, 2**32, 2**64 - 1, 2**64]),
)


def _outcome(fn: Any, *args: Any) -> tuple[str, Any]:
    """('ok', value) or (exception type name, its text)."""
    try:
        return "ok", fn(*args)
    except (Sv2ProtocolError, LocalProtocolError, UnicodeEncodeError) as exc:
        return type(exc).__name__, str(exc)


def _mutations(payload: bytes, data: st.DataObject) -> bytes:
    """A valid payload cut, extended or with bytes flipped: near the fast path's edges."""
    kind = data.draw(st.sampled_from(["cut", "extend", "flip", "same"]))
    if kind == "cut" and payload:
        return payload[: data.draw(st.integers(0, len(payload) - 1))]
    if kind == "extend":
        return payload + data.draw(st.binary(min_size=1, max_size=12))
    if kind == "flip" and payload:
        raw = bytearray(payload)
        raw[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
        return bytes(raw)
    return payload


# --- encoding -------------------------------------------------------------------------


@pytest.mark.parametrize("cls", HOT, ids=lambda c: c.__name__)
@FAST
@given(data=st.data())
def test_fast_encode_is_byte_identical_to_the_generic_codec(
    cls: type[Message], data: st.DataObject
) -> None:
    msg = data.draw(messages_of(cls))
    assert msg.encode() == generic_encode(msg)


@FAST
@given(
    fields=st.tuples(wide_int, wide_int, wide_int, wide_int, wide_int, wide_int),
    extranonce=st.binary(max_size=40),
    extensions=st.lists(tlv, max_size=2).map(tuple),
)
def test_submit_extended_encode_fits_or_fails_as_the_generic_codec(
    fields: tuple[int, ...], extranonce: bytes, extensions: tuple[Any, ...]
) -> None:
    channel_id, seq, job_id, nonce, ntime, version = fields
    msg = SubmitSharesExtended(
        channel_id=channel_id,
        sequence_number=seq,
        job_id=job_id,
        nonce=nonce,
        ntime=ntime,
        version=version,
        extranonce=extranonce,
        extensions=extensions,
    )
    expected = _outcome(generic_encode, msg)
    assert _outcome(msg.encode) == expected
    # The function the client calls: the payload exactly when there are no TLVs.
    direct = encode_submit_shares_extended(
        channel_id, seq, job_id, nonce, ntime, version, extranonce
    )
    if expected[0] == "ok" and not extensions:
        assert direct == expected[1]
    elif expected[0] != "ok":
        assert direct is None


@FAST
@given(fields=st.tuples(wide_int, wide_int, wide_int, st.integers(-1, 2**65)))
def test_success_encode_fits_or_fails_as_the_generic_codec(fields: tuple[int, ...]) -> None:
    channel_id, last, count, total = fields
    msg = SubmitSharesSuccess(
        channel_id=channel_id,
        last_sequence_number=last,
        new_submits_accepted_count=count,
        new_shares_sum=total,
    )
    expected = _outcome(generic_encode, msg)
    assert _outcome(msg.encode) == expected
    # The function an SV2 miner's connection calls: the payload, or None where the
    # generic codec refuses a value.
    direct = encode_submit_shares_success(channel_id, last, count, total)
    assert direct == (expected[1] if expected[0] == "ok" else None)


@FAST
@given(
    channel_id=wide_int,
    seq=wide_int,
    code=st.one_of(st.text(max_size=300), st.sampled_from(["", "stale-share", "\ud800"])),
)
def test_error_encode_fits_or_fails_as_the_generic_codec(
    channel_id: int, seq: int, code: str
) -> None:
    msg = SubmitSharesError(channel_id=channel_id, sequence_number=seq, error_code=code)
    assert _outcome(msg.encode) == _outcome(generic_encode, msg)


@FAST
@given(
    ext=st.integers(-2, 0x8001),
    msg_type=st.integers(-1, 0x100),
    length=st.integers(-1, 2**24),
    channel_msg=st.booleans(),
)
def test_encode_header_matches_the_spec_layout(
    ext: int, msg_type: int, length: int, channel_msg: bool
) -> None:
    outcome = _outcome(encode_header, ext, msg_type, length, channel_msg)
    if 0 <= ext <= 0x7FFF and 0 <= msg_type <= 0xFF and 0 <= length < 2**24:
        word = ext | (0x8000 if channel_msg else 0)
        reference = word.to_bytes(2, "little") + bytes([msg_type]) + length.to_bytes(3, "little")
        assert outcome == ("ok", reference)
        assert Header.decode(reference) == Header(ext, msg_type, length, channel_msg)
    else:
        assert outcome[0] == "LocalProtocolError"


# --- decoding -------------------------------------------------------------------------


@pytest.mark.parametrize("cls", HOT, ids=lambda c: c.__name__)
@FAST
@given(data=st.data())
def test_fast_decode_equals_the_generic_codec_on_any_bytes(
    cls: type[Message], data: st.DataObject
) -> None:
    if data.draw(st.booleans()):
        payload = data.draw(st.binary(max_size=80))
    else:
        payload = _mutations(data.draw(messages_of(cls)).encode(), data)
    expected = _outcome(generic_decode, cls, payload)
    assert expected[0] in ("ok", "Sv2ProtocolError")
    assert _outcome(cls.decode, payload) == expected
    assert _outcome(cls.decode, memoryview(payload)) == expected


@FAST
@given(data=st.data())
def test_direct_decoders_agree_with_the_messages(data: st.DataObject) -> None:
    cls = data.draw(st.sampled_from(HOT))
    payload = _mutations(data.draw(messages_of(cls)).encode(), data)
    kind, value = _outcome(generic_decode, cls, payload)
    if cls is SubmitSharesSuccess:
        fields: Any = decode_submit_shares_success(payload)
        if kind == "ok":
            assert fields == (
                value.channel_id,
                value.last_sequence_number,
                value.new_submits_accepted_count,
                value.new_shares_sum,
            )
        else:
            assert fields is None
    elif cls is SubmitSharesStandard:
        fields = decode_submit_shares_standard(payload)
        if kind == "ok":
            assert fields == (
                value.channel_id,
                value.sequence_number,
                value.job_id,
                value.nonce,
                value.ntime,
                value.version,
            )
        else:
            assert fields is None
    elif cls is SubmitSharesError:
        fields = decode_submit_shares_error(payload)
        if kind == "ok":
            assert fields == (value.channel_id, value.sequence_number, value.error_code)
        else:
            assert fields is None
    else:
        fields = decode_submit_shares_extended(payload)
        if kind == "ok" and not value.extensions:
            assert fields == (
                value.channel_id,
                value.sequence_number,
                value.job_id,
                value.nonce,
                value.ntime,
                value.version,
                value.extranonce,
            )
        else:
            assert fields is None  # TLVs and malformed payloads take the generic path


@FAST
@given(header=st.binary(max_size=8), payload=st.binary(max_size=60), data=st.data())
def test_decode_frame_equals_decode_message(
    header: bytes, payload: bytes, data: st.DataObject
) -> None:
    if len(header) >= 6 and data.draw(st.booleans()):
        # A hot message type with a consistent length, so the fast dispatch is taken.
        ext_byte = data.draw(st.sampled_from([0x00, 0x80, 0x01]))
        msg_type = data.draw(st.sampled_from([0x1B, 0x1C, 0x1D, header[2]]))
        header = bytes([0, ext_byte, msg_type]) + len(payload).to_bytes(3, "little")
    expected = _outcome(lambda: decode_message(Header.decode(header), payload))
    assert expected[0] in ("ok", "Sv2ProtocolError")
    assert _outcome(decode_frame, header, payload) == expected


# --- the encrypted transport ------------------------------------------------------------


def _pair() -> tuple[NoiseTransport, NoiseTransport]:
    return (
        NoiseTransport(CipherState(K1), CipherState(K2)),
        NoiseTransport(CipherState(K2), CipherState(K1)),
    )


@FAST
@given(
    frames=st.lists(
        st.tuples(st.integers(0, 255), st.binary(max_size=200) | st.just(b"x" * 70000)),
        max_size=4,
    ),
    cuts=st.lists(st.integers(0, 80000), max_size=6),
)
def test_encrypt_parts_and_feed_parts_equal_the_whole_frame_forms(
    frames: list[tuple[int, bytes]], cuts: list[int]
) -> None:
    by_parts, by_frame = _pair()[0], _pair()[0]
    receiver, whole_receiver = _pair()[1], _pair()[1]
    plain = [(encode_header(0, t, len(p), True), p) for t, p in frames]
    wire = b"".join(by_parts.encrypt_parts(h, p) for h, p in plain)
    assert wire == b"".join(by_frame.encrypt_frame(h + p) for h, p in plain)
    received: list[tuple[bytes, bytes]] = []
    whole: list[bytes] = []
    edges = [0, *sorted(c for c in cuts if c < len(wire)), len(wire)]
    for start, end in itertools.pairwise(edges):
        received += receiver.feed_parts(wire[start:end])
        whole += whole_receiver.feed(bytearray(wire[start:end]))
    assert received == plain
    assert whole == [h + p for h, p in plain]
    assert receiver.buffered == 0


@FAST
@given(
    first=st.binary(max_size=40),
    second=st.binary(max_size=300),
    nonce=st.integers(0, 50) | st.integers(MAX_NONCE - 3, MAX_NONCE + 1),
    flip=st.integers(0, 400),
)
def test_cipher_state_shortcuts_equal_encrypt_and_decrypt_with_empty_ad(
    first: bytes, second: bytes, nonce: int, flip: int
) -> None:
    """``encrypt_two`` and ``decrypt_no_ad`` (what the transport calls) give the bytes,
    the nonces and the errors of ``encrypt``/``decrypt`` with empty associated data."""
    fast, slow = CipherState(K1, nonce), CipherState(K1, nonce)
    try:
        expected: Any = slow.encrypt(b"", first) + slow.encrypt(b"", second)
    except CryptoError:
        expected = CryptoError
    try:
        got: Any = fast.encrypt_two(first, second)
    except CryptoError:
        got = CryptoError
    assert got == expected
    if expected is CryptoError:
        return
    assert fast.nonce == slow.nonce == nonce + 2
    tampered = bytearray(expected)
    if flip < len(tampered):
        tampered[flip] ^= 1
    for ciphertext in (expected, bytes(tampered)):
        by_ad, no_ad = CipherState(K1, nonce), CipherState(K1, nonce)
        head = memoryview(ciphertext)[: len(first) + 16]
        assert _outcome_crypto(by_ad.decrypt, b"", head) == _outcome_crypto(
            no_ad.decrypt_no_ad, head
        )
        assert by_ad.nonce == no_ad.nonce


def _outcome_crypto(fn: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "ok", fn(*args)
    except CryptoError as exc:
        return "CryptoError", str(exc)


@FAST
@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=5))
def test_feed_parts_on_random_bytes_raises_only_protocol_errors(
    data: bytes, cuts: list[int]
) -> None:
    receiver = _pair()[1]
    edges = [0, *sorted(c for c in cuts if c < len(data)), len(data)]
    try:
        for start, end in itertools.pairwise(edges):
            assert receiver.feed_parts(data[start:end]) == []
    except Sv2ProtocolError as exc:
        assert exc.fatal


# --- the client's verdict scan ----------------------------------------------------------


@FAST
@given(
    start=st.integers(0, 2**32 - 1),
    count=st.integers(0, 40),
    removed=st.sets(st.integers(0, 39)),
    last=st.one_of(st.integers(0, 2**32 - 1), st.integers(-45, 45)),
    relative=st.booleans(),
    reported=st.integers(0, 50),
)
def test_success_accepts_exactly_the_submits_at_or_before_last(
    start: int, count: int, removed: set[int], last: int, relative: bool, reported: int
) -> None:
    """The prefix scan equals judging every pending submit, wrap-around included."""
    channel = ClientChannel(
        channel_id=7, target=1, extranonce_prefix=b"", extranonce_size=4, group_channel_id=None
    )
    channel._next_seq = start
    for index in range(count):
        channel.add_pending(index, float(index))
    for index in removed:
        channel.pending.pop((start + index) % 2**32, None)
    last_seq = (start + last) % 2**32 if relative else last % 2**32
    expected = [s for s in channel.pending if seq_at_or_before(s, last_seq)]
    verdicts: list[Any] = []
    notice = channel.on_success(last_seq, reported, 9.0, verdicts)
    assert [v.sequence_number for v in verdicts] == expected
    assert [v.token for v in verdicts] == [(s - start) % 2**32 for s in expected]
    assert all(v.status == "accepted" and v.resolved_at == 9.0 for v in verdicts)
    assert not set(expected) & set(channel.pending)
    assert (notice == "") == (reported == len(expected))


# --- an SV2 share as the SV1 submit the core reads ------------------------------------------

u32 = st.integers(0, 0xFFFFFFFF)


@FAST
@given(
    fields=st.tuples(u32, u32, u32, u32, u32),
    mask=st.sampled_from([0, 0x1FFFE000]) | u32,
    extranonce=st.none() | st.binary(max_size=32),
    size=st.integers(0, 16),
)
def test_a_share_becomes_the_submit_the_format_strings_give(
    fields: tuple[int, int, int, int, int], mask: int, extranonce: bytes | None, size: int
) -> None:
    """The hex a channel writes for a share's U32 fields (``to_bytes(4).hex()``) is
    ``f"{value:08x}"``; a standard channel's extranonce2 is its size in zero bytes."""
    connection = Sv2Downstream(
        authority_secret=bytes(range(1, 33)), cert_validity_s=60, now=0.0, rng=os.urandom,
        version_mask=mask, shares_per_minute=12,
    )  # fmt: skip
    channel = Sv2Channel(
        connection, channel_id=2, kind="extended", request_id=1, user_identity="farm.w",
        min_extranonce_size=0,
    )  # fmt: skip
    channel.assign(b"\x00\x01", size)
    sequence, job_id, nonce, ntime, version = fields
    received = channel.on_submit(sequence, job_id, nonce, ntime, version, extranonce)
    assert received.submit == m.Submit(
        id=sequence,
        worker="farm.w",
        job_id="",  # a job the channel never sent
        extranonce2=(bytes(size) if extranonce is None else extranonce).hex(),
        ntime=f"{ntime:08x}",
        nonce=f"{nonce:08x}",
        version_bits=f"{version & mask:08x}" if mask else None,
    )
