"""Aggregate mode's extranonce split: sizes, placement on other upstreams, unique prefixes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stratum_proxy.aggregate.extranonce import (
    MIN_MINER_SIZE,
    PrefixPool,
    fits,
    miner_extranonce2_size,
)
from stratum_proxy.shares import Job, compute_share


@pytest.mark.parametrize(
    ("upstream", "prefix", "expected"),
    [
        (8, 2, 4),  # ckpool: room for 6, the miner gets 4 (fits more upstreams)
        (4, 2, 2),  # AntPool/Luxor give 4: the miner gets 2 (the caller warns below 3)
        (5, 2, 3),
        (16, 2, 4),
        (3, 2, None),  # 1 byte left: not enough for any miner
        (4, 4, None),
    ],
)
def test_miner_extranonce2_sizes(upstream: int, prefix: int, expected: int | None) -> None:
    assert miner_extranonce2_size(upstream, prefix) == expected


@given(st.integers(0, 32), st.integers(1, 4))
def test_sizes_stay_within_the_rules(upstream: int, prefix: int) -> None:
    size = miner_extranonce2_size(upstream, prefix)
    if size is None:
        assert upstream - prefix < MIN_MINER_SIZE
    else:
        assert MIN_MINER_SIZE <= size <= 4 and prefix + size <= upstream


def test_a_miner_moves_to_a_bigger_upstream_with_padding_not_to_a_smaller_one() -> None:
    placed = fits(12, b"\x00\x07", 4)
    assert placed is not None and placed.pad == 6 and placed.upstream_size == 12
    assert placed.upstream_extranonce2(b"\xaa\xbb\xcc\xdd") == b"\x00\x07\xaa\xbb\xcc\xdd" + bytes(
        6
    )
    assert fits(5, b"\x00\x07", 4) is None


def test_the_miners_coinbase_is_the_upstreams_coinbase() -> None:
    """coinb1 ‖ up_en1 toward the miner, pad into coinb2: the same header either way."""
    up_en1, prefix, miner_en2 = b"\x11\x22\x33\x44", b"\x00\x09", b"\xde\xad\xbe\xef"
    placed = fits(8, prefix, 4)
    assert placed is not None and placed.pad == 2
    common = dict(
        job_id="1", prevhash=bytes(range(32)), merkle_branch=(bytes(32),), version=0x20000000,
        nbits=0x1D00FFFF, ntime=0x66000000, clean_jobs=True, pool_difficulty=1.0,
    )  # fmt: skip
    coinb1, coinb2 = b"\x01" * 40, b"\x02" * 30
    upstream_job = Job(coinb1=coinb1, coinb2=coinb2, extranonce1=up_en1, **common)  # type: ignore[arg-type]
    miner_job = Job(
        coinb1=coinb1 + up_en1,
        coinb2=bytes(placed.pad) + coinb2,
        extranonce1=prefix,
        **common,  # type: ignore[arg-type]
    )
    seen_by_pool = compute_share(
        upstream_job, placed.upstream_extranonce2(miner_en2), 0x66000001, 42, 0x20000000
    )
    seen_by_miner = compute_share(miner_job, miner_en2, 0x66000001, 42, 0x20000000)
    assert seen_by_pool == seen_by_miner


def test_prefixes_are_unique_and_not_reused_at_once() -> None:
    pool = PrefixPool(1)
    taken = [pool.take() for _ in range(256)]
    assert len(set(taken)) == 256 and pool.take() is None
    pool.release(b"\x05")
    assert pool.take() == b"\x05"  # the only free one
    pool2 = PrefixPool(2)
    first = pool2.take()
    assert first is not None
    pool2.release(first)
    assert pool2.take() != first  # a released prefix waits its turn
    with pytest.raises(ValueError):
        PrefixPool(0)
