"""The dashboard panels' SQL on a real embedded store: kinds of rejects, series, histograms."""

from __future__ import annotations

import math
import time

import pytest
from helpers.store_rows import rec

from stratum_proxy.store import panels, reports
from stratum_proxy.store.backend import encode_batch
from stratum_proxy.store.chdb_store import ChdbStore

NOW = time.time()


def test_rejects_are_sorted_into_kinds(store: ChdbStore) -> None:
    reasons = {
        "21 Stale share": "stale",
        "Stale": "stale",
        "stale-share": "stale",
        "job not found": "stale",
        "22 Duplicate share": "duplicate",
        "duplicate share": "duplicate",
        "23 Low difficulty share": "low_difficulty",
        "Above target 2": "low_difficulty",
        "difficulty-too-low": "low_difficulty",
        "24 Unauthorized worker": "other",
        "rejected; the pool gave no reason": "other",
    }
    rows = [
        rec(ts=NOW - 10, status="rejected", reject_reason=reason, share_hash=f"{i:064x}")
        for i, reason in enumerate(reasons)
    ]
    rows.append(
        rec(ts=NOW - 10, status="rejected", reject_reason="proxy: stale job", verdict_by="proxy")
    )
    rows.append(rec(ts=NOW - 10, status="rejected", reject_reason="22 x", manual=True))
    store.insert(encode_batch(rows, "reasons"))
    got = panels.parse_reject_reasons(store.query(panels.reject_reasons_sql(1, NOW)))
    want = dict.fromkeys(panels.REJECT_KINDS, 0)
    for kind in reasons.values():
        want[kind] += 1
    want["proxy"] = 1  # the proxy's own "stale job" is the proxy's, not the pool's
    assert got == want  # the manual row is not counted


def test_aggregate_mode_hashrate_counts_the_miners_difficulty(store: ChdbStore) -> None:
    # Two aggregate-mode shares a minute apart at miner difficulty 8, only one
    # forwarded (pool difficulty 1024): the miner's work is 2 * 8, not 2 * 1024.
    rows = [
        rec(ts=NOW - 70, worker="agg", pool_difficulty=1024.0, miner_difficulty=8.0),
        rec(ts=NOW - 10, worker="agg", pool_difficulty=1024.0, miner_difficulty=8.0,
            verdict_by="proxy"),
        rec(ts=NOW - 70, worker="old", pool_difficulty=64.0),  # before the column: 0
        rec(ts=NOW - 10, worker="old", pool_difficulty=64.0),
    ]  # fmt: skip
    store.insert(encode_batch(rows, "work"))
    stats = {w.worker: w for w in reports.worker_stats(store, 1, NOW)}
    assert math.isclose(stats["agg"].hashrate, 2 * 8 * 2**32 / 60)
    assert math.isclose(stats["old"].hashrate, 2 * 64 * 2**32 / 60)
    minute = store.query(
        "SELECT worker, sum(total_hashes) FROM mining.mv_hash_rate_stats "
        "GROUP BY worker ORDER BY worker FORMAT CSV"
    ).decode()
    assert minute.splitlines() == [f'"agg",{16 * 2**32}', f'"old",{128 * 2**32}']


@pytest.mark.parametrize("name", ["5m", "1h", "24h", "7d"])
def test_series_count_every_share_once_from_the_raw_rows_or_the_aggregate(
    store: ChdbStore, name: str
) -> None:
    span = panels.RANGES[name]
    statuses = ["accepted"] * 5 + ["rejected"] * 2 + ["no_response"]
    rows = [
        rec(ts=NOW - 1 - i * 13 % 250, status=s, share_hash=f"{i:064x}", miner_difficulty=4.0)
        for i, s in enumerate(statuses)
    ]
    rows.append(rec(ts=NOW - 5, manual=True, share_hash=""))  # never in a series
    rows.append(rec(ts=NOW - span.seconds - 2 * span.step_s))  # before the range
    store.insert(encode_batch(rows, f"series-{name}"))
    series = panels.parse_series(store.query(panels.series_sql(span, NOW)), span, NOW)
    assert len(series["t"]) == span.seconds // span.step_s + 1
    assert all(b - a == span.step_s for a, b in zip(series["t"], series["t"][1:], strict=False))
    assert series["t"][0] <= NOW - span.seconds and series["t"][-1] <= NOW
    assert (sum(series["accepted"]), sum(series["rejected"]), sum(series["no_response"])) == (
        5,
        2,
        1,
    )
    # The work is all there: each bucket's rate times the time it covers.
    covered = [min(span.step_s, max(1.0, NOW - t)) for t in series["t"]]
    work = sum(h * c for h, c in zip(series["hashrate"], covered, strict=True))
    assert math.isclose(work, 5 * 4.0 * 2**32, rel_tol=1e-9)


def test_the_difficulty_histogram_against_its_expected_curve() -> None:
    # 1000 shares asked at difficulty 10 whose own difficulties follow the law
    # exactly: 10 / u for u uniform in (0, 1].
    shares = [10 / ((i + 0.5) / 1000) for i in range(1000)]
    bins: dict[int, int] = {}
    for d in shares:
        key = math.floor(math.log10(d) * panels.BINS_PER_DECADE)
        bins[key] = bins.get(key, 0) + 1
    lines = [f'{{"what":"share","key":{k},"n":"{n}"}}' for k, n in bins.items()]
    lines.append('{"what":"target","key":10,"n":"1000"}')
    hist = panels.parse_difficulty_histogram("\n".join(lines).encode())
    assert hist["edges"][0] == pytest.approx(10.0)  # the first bin starts at the target
    assert sum(hist["counts"]) == 1000
    for seen, expected in zip(hist["counts"], hist["expected"], strict=True):
        assert abs(seen - expected) <= 1.0  # the law, bin by bin


def test_an_empty_store_gives_empty_panels(store: ChdbStore) -> None:
    assert panels.parse_difficulty_histogram(
        store.query(panels.difficulty_bins_sql("nobody", 1, NOW))
    ) == {"edges": [], "counts": [], "expected": []}
    assert panels.parse_response_histogram(
        store.query(panels.response_bins_sql("nobody", 1, NOW))
    ) == {"edges": [], "counts": []}
    luck = panels.parse_luck(store.query(panels.luck_sql(1, NOW)))
    assert luck == {
        "expected_blocks": 0.0,
        "found_blocks": 0,
        "luck_pct": None,
        "network_difficulty": 0.0,
    }
    assert panels.parse_best(store.query(panels.best_ever_sql())) == 0.0
    assert panels.parse_pools(store.query(panels.pools_sql(1, NOW)), {"main": {"up": False}}) == [
        {
            "upstream": "main", "shares": 0, "accepted": 0, "rejected": 0, "no_response": 0,
            "acceptance_pct": 0.0, "p50_ms": 0.0, "p99_ms": 0.0, "hashrate": 0.0,
            "status": "down", "last_error": "", "hashrate_pct": 0.0,
        }
    ]  # fmt: skip


def test_luck_weighs_each_accepted_share_by_its_chance_of_being_a_block(
    store: ChdbStore,
) -> None:
    network = 83_148_355_189_239.77  # rec()'s: a mainnet difficulty
    rows = [
        rec(ts=NOW - 30, pool_difficulty=65_536.0, share_hash=f"{1:064x}"),
        rec(ts=NOW - 20, pool_difficulty=65_536.0, share_hash=f"{2:064x}", is_block=True),
        rec(ts=NOW - 10, pool_difficulty=65_536.0, share_hash=f"{3:064x}", status="rejected"),
        # A test chain: the network's target is easier than the share's, every
        # accepted share is a block (chance 1, not D / N = 1000).
        rec(ts=NOW - 5, worker="t", pool_difficulty=1e-6, network_difficulty=1e-9,
            share_hash=f"{4:064x}", is_block=True),
    ]  # fmt: skip
    store.insert(encode_batch(rows, "luck"))
    luck = panels.parse_luck(store.query(panels.luck_sql(1, NOW)))
    assert math.isclose(luck["expected_blocks"], 2 * 65_536 / network + 1, rel_tol=1e-12)
    assert luck["found_blocks"] == 2
    assert math.isclose(luck["luck_pct"], 100 * 2 / luck["expected_blocks"])
    assert luck["network_difficulty"] == 1e-9  # the latest share's
