"""Spool records: any damage is skipped and reported, never raised; intact records survive."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from stratum_proxy.store.faults import synthetic_record
from stratum_proxy.store.spool_format import (
    decode_payload,
    encode_payload,
    encode_record,
    parse_records,
)

RECORDS = [encode_record(seq, encode_payload(synthetic_record(seq))) for seq in range(40)]
BLOB = b"".join(RECORDS)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, len(BLOB) - 1), st.integers(1, 255)), max_size=8),
    st.integers(0, len(BLOB)),
)
def test_damaged_buffers_parse_to_a_subset(flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(BLOB)
    for offset, mask in flips:
        data[offset] ^= mask
    parsed = parse_records(bytes(data[:cut]), 0)
    seqs = [chunk.first_seq for chunk in parsed.records]
    assert seqs == sorted(set(seqs))
    for chunk in parsed.records:
        seq, payload = chunk.first_seq, chunk.payload
        assert decode_payload(payload) == synthetic_record(seq, ts=decode_payload(payload).ts)
    covered = sum(c.length for c in parsed.corruptions) + sum(len(RECORDS[s]) for s in seqs)
    assert covered == cut


@given(st.binary(max_size=2000))
def test_garbage_never_raises(data: bytes) -> None:
    parsed = parse_records(data, 0)
    assert parsed.end == len(data)
