"""The engine stores a JSON-rows batch exactly as the same records sent as RowBinary."""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from decimal import Decimal

import pytest
from helpers.store_strategies import fast_records
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from stratum_proxy.store.backend import (
    JSON_ROWS,
    ROW_BINARY,
    EncodedBatch,
    encode_batch,
    encode_row_binary,
)
from stratum_proxy.store.chdb_store import ChdbStore
from stratum_proxy.store.faults import synthetic_record
from stratum_proxy.store.record import ShareRecord
from stratum_proxy.store.schema import SHARES_COLUMNS, SchemaConfig

pytest.importorskip("chdb")

SIDES = ("via_rowbinary", "via_json")


@pytest.fixture
def two_tables(store: ChdbStore) -> Iterator[ChdbStore]:
    """``<side>.shares`` per side: the table's column types, no TTL, no dedup window."""
    columns = ", ".join(f"{name} {ctype.split(' CODEC')[0]}" for name, ctype in SHARES_COLUMNS)
    for side in SIDES:
        store.query(f"CREATE DATABASE {side}")
        store.query(f"CREATE TABLE {side}.shares ({columns}) ENGINE = MergeTree ORDER BY tuple()")
    schema = store.schema
    yield store
    store.schema = schema


def stored(store: ChdbStore, side: str, batch: EncodedBatch) -> bytes:
    """Insert through ``ChdbStore.insert`` into ``side``; the rows back, bit for bit."""
    store.query(f"TRUNCATE TABLE {side}.shares")
    store.schema = SchemaConfig(database=side)
    store.insert(batch)
    return store.query(f"SELECT * FROM {side}.shares ORDER BY extranonce1 FORMAT RowBinary")


def numbered(records: list[ShareRecord]) -> list[ShareRecord]:
    return [r._replace(extranonce1=f"{i:04d}") for i, r in enumerate(records)]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(fast_records(), min_size=1, max_size=25))
def test_engine_stores_json_rows_as_rowbinary(
    two_tables: ChdbStore, records: list[ShareRecord]
) -> None:
    records = numbered(records)
    fast = encode_batch(records, "t")
    assume(fast.format == JSON_ROWS)
    slow = encode_row_binary(records, "t")
    assert stored(two_tables, "via_json", fast) == stored(two_tables, "via_rowbinary", slow)


def _f32_tie_neighbour(step: int) -> float:
    tie = struct.unpack("<Q", struct.pack("<d", 1 + 2**-23 + 2**-24))[0]
    return float(struct.unpack("<d", struct.pack("<Q", tie + step))[0])


AWKWARD_TS = [
    1795315021.1236,
    1795315021.9999,
    1795315021.0005,
    1795315021.123,
    1795315021.5,
    1795315021.001,
    1795315021.0,
    1795315021,
    1_000_000_000.0,
    9_999_999_999.999,
    1795315021.9995,
    1795315021.0009999,
]


def test_awkward_values_store_the_same_both_ways(two_tables: ChdbStore) -> None:
    base = synthetic_record(5)
    records = numbered(
        [base._replace(ts=ts) for ts in AWKWARD_TS]
        + [
            base._replace(response_ms=_f32_tie_neighbour(-1), share_difficulty=-0.0),
            base._replace(response_ms=_f32_tie_neighbour(1), share_difficulty=5e-324),
            base._replace(response_ms=-0.0, pool_difficulty=1.7976931348623157e308),
            base._replace(response_ms=3.4028234663852886e38, network_difficulty=2**53 + 1),
            base._replace(response_ms=16777217.5, network_difficulty=2**64 - 1),
            base._replace(response_ms=2**24 + 2, network_difficulty=-(2**63)),
            base._replace(channel_id=True, version=0xFFFFFFFF, share_difficulty=True),
            base._replace(channel_id=0, version=False, is_block=True, response_ms=False),
            base._replace(worker='tab\tnl\nquote"back\\nul\x00 ü 矿 🚀', job_id="null"),
        ]
    )
    fast = encode_batch(records, "t")
    assert fast.format == JSON_ROWS
    via_json = stored(two_tables, "via_json", fast)
    assert via_json == stored(two_tables, "via_rowbinary", encode_row_binary(records, "t"))
    got = two_tables.query(
        "SELECT toUnixTimestamp64Milli(ts) FROM via_json.shares ORDER BY extranonce1"
    )
    expected = [int(Decimal(repr(ts)) * 1000) for ts in AWKWARD_TS]  # digits beyond ms dropped
    assert [int(v) for v in got.split()][: len(AWKWARD_TS)] == expected


def test_values_json_cannot_carry_are_stored_through_rowbinary(two_tables: ChdbStore) -> None:
    base = synthetic_record(6)
    tie = 1 + 2**-23 + 2**-24
    records = numbered(
        [
            base._replace(response_ms=tie),
            base._replace(share_difficulty=math.nan, pool_difficulty=math.inf),
            base._replace(worker="lone \ud800"),
        ]
    )
    batch = encode_batch(records, "t")
    assert batch.format == ROW_BINARY
    stored(two_tables, "via_rowbinary", batch)
    out = two_tables.query(
        "SELECT reinterpretAsUInt32(response_ms), isNaN(share_difficulty), "
        "isInfinite(pool_difficulty), hex(worker) FROM via_rowbinary.shares "
        "ORDER BY extranonce1 FORMAT TSV"
    )
    first, second, third = out.decode().splitlines()
    tie_bits = struct.unpack("<I", struct.pack("<f", tie))[0]  # to even: 1 + 2**-22
    assert first.split("\t")[0] == str(tie_bits) == str(0x3F80_0002)
    assert second.split("\t")[1:3] == ["1", "1"]
    assert third.split("\t")[3] == "lone \ud800".encode("utf-8", "surrogatepass").hex().upper()
