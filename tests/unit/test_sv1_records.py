"""The share row's verdict fields are filled in without disturbing the rest."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from stratum_proxy.store.faults import synthetic_record
from stratum_proxy.store.record import ShareRecord
from stratum_proxy.sv1.records import finish_row


@given(
    index=st.integers(min_value=0, max_value=2**31),
    status=st.sampled_from(["accepted", "rejected", "no_response"]),
    reason=st.text(max_size=40),
    response_ms=st.floats(min_value=0, max_value=1e6),
    is_block=st.booleans(),
)
def test_finish_row_is_replace(
    index: int, status: str, reason: str, response_ms: float, is_block: bool
) -> None:
    record = synthetic_record(index)._replace(is_block=is_block, version_bits="1fffe000")
    got = finish_row(list(record), status, reason, response_ms)
    assert type(got) is ShareRecord
    verdict_by = "" if status == "no_response" else "pool"  # the pool judged, or nobody
    assert got == record._replace(
        status=status, reject_reason=reason, response_ms=response_ms, verdict_by=verdict_by
    )
    assert got.is_block is is_block and got.version_bits == "1fffe000"
