"""encode_batch: deterministic batches (JSON rows or RowBinary) that decode back to every value."""

from __future__ import annotations

import dataclasses
import enum
import math
import struct
import uuid
from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stratum_proxy.errors import StoreError
from stratum_proxy.store.backend import (
    JSON_ROWS,
    ROW_BINARY,
    EncodedBatch,
    decode_columns,
    encode_batch,
    encode_row_binary,
)
from stratum_proxy.store.record import COLUMNS, ShareRecord, record_values

_text = st.text(max_size=300)  # any unicode, incl. quotes, tabs, newlines, NUL
_uint32 = st.integers(min_value=0, max_value=0xFFFFFFFF)
_double = st.floats(allow_nan=False, allow_infinity=True)


@st.composite
def records(draw: st.DrawFn) -> ShareRecord:
    return ShareRecord(
        ts=draw(st.floats(min_value=0, max_value=4_000_000_000)),
        proxy_id=draw(_text),
        upstream=draw(_text),
        protocol=draw(st.sampled_from(["sv1", "sv2"])),
        channel_id=draw(_uint32),
        worker=draw(_text),
        miner_addr=draw(_text),
        job_id=draw(_text),
        extranonce2=draw(_text),
        ntime=draw(_text),
        nonce=draw(_text),
        version=draw(_uint32),
        share_hash=draw(_text),
        share_difficulty=draw(_double),
        pool_difficulty=draw(_double),
        network_difficulty=draw(_double),
        status=draw(st.sampled_from(["accepted", "rejected", "no_response"])),
        reject_reason=draw(_text),
        is_block=draw(st.booleans()),
        response_ms=draw(st.floats(width=32, allow_nan=False)),
        version_bits=draw(_text),
        extranonce1=draw(_text),
    )


def _expected(record: ShareRecord) -> list[object]:
    """What each column must hold, derived from the record without the codec."""
    out: list[object] = []
    for name, value in zip(COLUMNS, record_values(record), strict=True):
        if name == "ts":
            # DateTime64(3): integer ms, the decimal digits beyond them dropped
            out.append(int(Decimal(repr(value)) * 1000))
        elif isinstance(value, str):
            out.append(value.encode("utf-8", "surrogatepass"))
        elif name == "response_ms":
            out.append(struct.unpack("<f", struct.pack("<f", value))[0])  # Float32
        else:
            out.append(value)
    return out


Encoder = Callable[[list[ShareRecord], str], EncodedBatch]
ENCODERS = [encode_batch, encode_row_binary]


@pytest.mark.parametrize("encode", ENCODERS)
@settings(max_examples=200, deadline=None)
@given(st.lists(records(), max_size=20), st.text(min_size=1, max_size=40))
def test_round_trip_and_determinism(encode: Encoder, batch: list[ShareRecord], token: str) -> None:
    encoded = encode(batch, token)
    assert encoded.rows == len(batch) and encoded.token == token
    # Same records (fresh copies) and token give the same bytes.
    again = encode([ShareRecord(*r) for r in batch], token)
    assert again == encoded
    columns = decode_columns(encoded)
    rows = [list(row) for row in zip(*columns, strict=True)] if batch else []
    assert rows == [_expected(r) for r in batch]


@pytest.mark.parametrize("encode", ENCODERS)
def test_long_strings_use_multibyte_lengths(encode: Encoder) -> None:
    record = _one(worker="w" * 70_000, reject_reason="é" * 200)
    columns = decode_columns(encode([record], "t"))
    assert columns[COLUMNS.index("worker")] == [b"w" * 70_000]
    assert columns[COLUMNS.index("reject_reason")] == ["é".encode() * 200]


def test_lone_surrogate_is_kept_not_fatal() -> None:
    batch = encode_batch([_one(worker="a\ud800b")], "t")
    assert batch.format == ROW_BINARY  # orjson refuses it; RowBinary keeps its bytes
    assert decode_columns(batch)[COLUMNS.index("worker")] == [b"a\xed\xa0\x80b"]


class _Status(enum.Enum):
    ACCEPTED = "accepted"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"channel_id": -1}, "channel_id=-1 does not fit UInt32"),
        ({"channel_id": 2**32}, "channel_id=4294967296 does not fit UInt32"),
        ({"version": 2**32}, "version=4294967296 does not fit UInt32"),
        ({"version": 1.5}, "version=1.5 does not fit UInt32"),
        ({"ts": math.nan}, "ts nan is not a finite time"),
        ({"ts": math.inf}, "ts inf is not a finite time"),
        ({"ts": "1700000000"}, "ts '1700000000' is not a finite time"),
        ({"response_ms": 1e300}, "float too large"),  # beyond Float32
        ({"share_difficulty": "1.5"}, "cannot encode share record"),
        ({"worker": None}, "cannot encode share record"),
        ({"worker": 7}, "cannot encode share record"),
        ({"status": _Status.ACCEPTED}, "cannot encode share record"),
        ({"miner_addr": uuid.UUID(int=1)}, "cannot encode share record"),
    ],
)
def test_values_no_column_can_hold_are_permanent_errors(
    change: dict[str, object], message: str
) -> None:
    with pytest.raises(StoreError) as info:
        encode_batch([_one(), _one(**change)], "t")
    assert not info.value.retryable
    assert message in str(info.value)


def test_a_row_of_the_wrong_length_is_a_permanent_error() -> None:
    with pytest.raises(StoreError) as info:
        encode_batch([_one(), (*_one(), "extra")], "t")
    assert not info.value.retryable and f"{len(COLUMNS) + 1} values, not {len(COLUMNS)}" in str(
        info.value
    )


def test_token_is_required() -> None:
    for encode in ENCODERS:
        with pytest.raises(ValueError):
            encode([_one()], "")


def test_plausible_shares_travel_as_json_rows() -> None:
    assert encode_batch([_one(), _one(ts=1_700_000_000)], "t").format == JSON_ROWS


@pytest.mark.parametrize("encode", ENCODERS)
def test_truncated_payload_is_detected(encode: Encoder) -> None:
    batch = encode([_one(), _one()], "t")
    cut = dataclasses.replace(batch, payload=batch.payload[:-3])
    with pytest.raises((ValueError, struct.error, IndexError)):
        decode_columns(cut)
    extra = dataclasses.replace(batch, payload=batch.payload + b"\x00")
    with pytest.raises(ValueError):
        decode_columns(extra)


def _one(**change: object) -> ShareRecord:
    base = ShareRecord(
        ts=1_700_000_000.123,
        proxy_id="p",
        upstream="pool",
        protocol="sv1",
        channel_id=7,
        worker="rig",
        miner_addr="10.0.0.1:5000",
        job_id="1a",
        extranonce2="00000001",
        ntime="6650b2f1",
        nonce="deadbeef",
        version=0x20000000,
        share_hash="00" * 32,
        share_difficulty=1.5,
        pool_difficulty=1024.0,
        network_difficulty=8.3e13,
        status="accepted",
        reject_reason="",
        is_block=False,
        response_ms=12.5,
    )
    return base._replace(**change)
