"""Hypothesis strategies for share rows."""

from __future__ import annotations

from hypothesis import strategies as st

from stratum_proxy.store.record import ShareRecord

# Values the fast path is meant to take (orjson writes them, the checks pass).
_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
_uint32 = st.integers(min_value=0, max_value=0xFFFFFFFF) | st.booleans()
_float64 = (
    st.floats(min_value=-1e300, max_value=1e300)
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.booleans()
)
_float32 = (
    st.floats(width=32, allow_nan=False, allow_infinity=False)
    | st.floats(min_value=-3.4e38, max_value=3.4e38)
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.booleans()
)
# Times as the clock gives them, with 0..7 decimals (x.123, x.1236, x.9999, x.0005
# and the like), and whole seconds as ints.
_ts = (
    st.floats(min_value=1e9, max_value=1e10, exclude_max=True)
    | st.builds(
        lambda whole, frac, places: float(f"{whole}.{frac % 10**places:0{places}d}"),
        st.integers(min_value=10**9, max_value=10**10 - 1),
        st.integers(min_value=0, max_value=10**7 - 1),
        st.integers(min_value=1, max_value=7),
    )
    | st.integers(min_value=10**9, max_value=10**10 - 1)
)


@st.composite
def fast_records(draw: st.DrawFn) -> ShareRecord:
    return ShareRecord(
        ts=draw(_ts),
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
        share_difficulty=draw(_float64),
        pool_difficulty=draw(_float64),
        network_difficulty=draw(_float64),
        status=draw(st.sampled_from(["accepted", "rejected", "no_response"])),
        reject_reason=draw(_text),
        is_block=draw(st.booleans()),
        response_ms=draw(_float32),
        version_bits=draw(_text),
        extranonce1=draw(_text),
    )
