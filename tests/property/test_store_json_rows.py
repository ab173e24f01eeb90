"""The JSON fast path: it is taken for plausible shares, refused for every hazard,
and decodes to exactly the columns the RowBinary encoder gives."""

from __future__ import annotations

import enum
import math
import struct
import uuid
from fractions import Fraction
from typing import Any

import pytest
from helpers.store_strategies import fast_records
from hypothesis import event, given, settings
from hypothesis import strategies as st

from stratum_proxy.store import json_rows
from stratum_proxy.store.backend import (
    JSON_ROWS,
    ROW_BINARY,
    decode_columns,
    encode_batch,
    encode_row_binary,
)
from stratum_proxy.store.faults import synthetic_record
from stratum_proxy.store.record import COLUMNS, ShareRecord


def bits(columns: list[list[object]]) -> list[list[object]]:
    """Floats as their IEEE bits, so -0.0 and 0.0 differ and bools stay bools."""
    return [
        [struct.pack("<d", v) if isinstance(v, float) else (type(v), v) for v in column]
        for column in columns
    ]


@settings(max_examples=300, deadline=None)
@given(st.lists(fast_records(), min_size=1, max_size=30))
def test_json_rows_hold_the_rowbinary_values(batch: list[ShareRecord]) -> None:
    fast = encode_batch(batch, "t")
    event(fast.format)
    slow = encode_row_binary(batch, "t")
    assert bits(decode_columns(fast)) == bits(decode_columns(slow))
    # Plain tuples (the memory queue's rows) give the very same batch.
    assert encode_batch([tuple(r) for r in batch], "t") == fast


def test_slices_are_joined_into_one_payload() -> None:
    records = [synthetic_record(i) for i in range(3 * json_rows.SLICE_ROWS + 5)]
    pauses: list[int] = []
    batch = encode_batch(records, "t", pause=lambda: pauses.append(1))
    assert batch.format == JSON_ROWS and len(pauses) == 4
    assert bits(decode_columns(batch)) == bits(decode_columns(encode_row_binary(records, "t")))


def test_empty_batch() -> None:
    batch = encode_batch([], "t")
    assert batch.rows == 0 and decode_columns(batch) == [[] for _ in COLUMNS]


def _tie() -> float:
    """A double exactly halfway between two Float32s (1 + 2**-23 and 1 + 2**-22)."""
    return 1 + 2**-23 + 2**-24


class _Status(enum.Enum):
    ACCEPTED = "accepted"


class _Name(str):
    pass


# Values RowBinary takes (and stores as tested elsewhere) that JSON must not carry.
FALLBACKS: list[dict[str, Any]] = [
    {"worker": "lone \ud800 surrogate"},
    {"share_difficulty": math.nan},
    {"pool_difficulty": math.inf},
    {"network_difficulty": -math.inf},
    {"response_ms": math.nan},
    {"response_ms": math.inf},
    {"response_ms": _tie()},
    {"response_ms": -_tie()},
    {"response_ms": float(2**24 + 1)},  # odd integers above 2**24 are ties too
    {"response_ms": 1e-40},  # below 2**-126: Float32 subnormals
    {"response_ms": 2**64},  # orjson refuses ints beyond 64 bits
    {"ts": 5.0},  # outside the checked range
    {"ts": 1e10},
    {"ts": -1_700_000_000.5},
    {"ts": True},
    {"is_block": 1},
    {"is_block": "yes"},
    {"is_block": None},
]
# Values RowBinary refuses: the batch must reach it, to fail with its message.
INVALID: list[dict[str, Any]] = [
    {"channel_id": -1},
    {"channel_id": 2**32},
    {"version": 2**33},
    {"version": 7.0},
    {"ts": math.nan},
    {"ts": "1700000000.5"},
    {"response_ms": 1e300},
    {"share_difficulty": "1.5"},
    {"worker": None},
    {"worker": 7},
    {"upstream": b"pool"},
    {"status": _Status.ACCEPTED},
    {"miner_addr": uuid.UUID(int=1)},
]


def _rows(change: dict[str, Any]) -> list[ShareRecord]:
    """Plausible rows, the last one (in the second slice) changed."""
    records = [synthetic_record(i) for i in range(300)]
    records[-1] = records[-1]._replace(**change)
    return records


@pytest.mark.parametrize("change", FALLBACKS, ids=repr)
def test_hazards_go_as_rowbinary(change: dict[str, Any]) -> None:
    records = _rows(change)
    assert json_rows.maybe_encode(records) is None
    batch = encode_batch(records, "t")
    assert batch.format == ROW_BINARY and batch == encode_row_binary(records, "t")


@pytest.mark.parametrize("change", INVALID, ids=repr)
def test_invalid_values_reach_the_validating_encoder(change: dict[str, Any]) -> None:
    assert json_rows.maybe_encode(_rows(change)) is None


def test_a_sum_that_overflows_is_a_false_alarm_only() -> None:
    records = _rows({"share_difficulty": 1.7e308})
    records[-2] = records[-2]._replace(share_difficulty=1.7e308)
    assert encode_batch(records, "t").format == ROW_BINARY
    assert encode_batch(records[-1:], "t").format == JSON_ROWS


def _next_double(x: float, step: int = 1) -> float:
    return float(
        struct.unpack("<d", struct.pack("<q", struct.unpack("<q", struct.pack("<d", x))[0] + step))[
            0
        ]
    )


def test_str_subclasses_and_near_ties_stay_fast() -> None:
    after_tie = _next_double(_tie())
    records = [
        synthetic_record(1)._replace(worker=_Name("rig"), response_ms=after_tie),
        synthetic_record(2)._replace(response_ms=0.0, share_difficulty=-0.0),
        synthetic_record(3)._replace(response_ms=-0.0, share_difficulty=5e-324),
    ]
    batch = encode_batch(records, "t")
    assert batch.format == JSON_ROWS
    assert bits(decode_columns(batch)) == bits(decode_columns(encode_row_binary(records, "t")))


@pytest.mark.parametrize(
    "rows",
    [
        [tuple(synthetic_record(1))[:-1]],
        [tuple(synthetic_record(1)), tuple(synthetic_record(2))[:-1]],
        [(*synthetic_record(1), "extra")],
    ],
)
def test_rows_of_the_wrong_length_are_refused(rows: list[tuple[object, ...]]) -> None:
    assert json_rows.maybe_encode(rows) is None


def _f32(x: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", x))[0])


def _f32_nearest(text: str) -> float:
    """The Float32 nearest to the decimal ``text`` (ties to even): what a text parser gives."""
    q = Fraction(text.lstrip("-"))
    near = _f32(float(q))
    step = struct.unpack("<I", struct.pack("<f", near))[0]
    candidates = [
        float(struct.unpack("<f", struct.pack("<I", step + d))[0])
        for d in (-1, 0, 1)
        if 0 <= step + d < 0x7F80_0000  # finite, not negative
    ]
    odd = {c: struct.unpack("<I", struct.pack("<f", c))[0] & 1 for c in candidates}
    best = min(candidates, key=lambda c: (abs(Fraction(c) - q), odd[c]))
    return math.copysign(best, -1.0 if text.startswith("-") else 1.0)


def _ties_and_neighbours(draw: st.DrawFn) -> float:
    f = draw(st.floats(width=32, min_value=2**-126, max_value=2.0**127))
    up = float(
        struct.unpack("<f", struct.pack("<I", struct.unpack("<I", struct.pack("<f", f))[0] + 1))[0]
    )
    tie = (f + up) / 2
    return _next_double(tie, draw(st.sampled_from([-1, 0, 0, 1]))) * draw(st.sampled_from([1, -1]))


_doubles = st.floats(min_value=-3e38, max_value=3e38) | st.composite(_ties_and_neighbours)()


@given(st.lists(_doubles, min_size=1, max_size=40))
def test_tie_check_finds_every_value_a_parser_would_round_otherwise(values: list[float]) -> None:
    """No tie found means: the parser's Float32 of each value's text is RowBinary's."""
    found = json_rows._has_float32_tie(struct.pack(f"<{len(values)}d", *values), len(values))
    differs = [x for x in values if _f32_nearest(repr(x)) != _f32(x)]
    event("tie found" if found else "no tie")
    assert found or not differs


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=40))
def test_tie_check_lanes_match_a_value_by_value_reference(values: list[float]) -> None:
    def suspect(x: float) -> bool:
        bits = struct.unpack("<Q", struct.pack("<d", x))[0]
        exponent = (bits >> 52) & 0x7FF
        return bits & 0x1FFF_FFFF == 0x1000_0000 or 1 <= exponent < 897

    packed = struct.pack(f"<{len(values)}d", *values)
    assert json_rows._has_float32_tie(packed, len(values)) == any(map(suspect, values))
