"""stats and cleanup against rows inserted into a real chdb store."""

from __future__ import annotations

import math
import random
import re

import orjson
import pytest

from stratum_proxy.errors import ConfigError
from stratum_proxy.store.backend import Store, encode_batch
from stratum_proxy.store.record import ShareRecord
from stratum_proxy.store.reports import cleanup, si, stats_report, worker_stats

NOW = float(math.floor(__import__("time").time()))
HOURS = 24.0


def rec(ts: float, worker: str, **change: object) -> ShareRecord:
    base = ShareRecord(
        ts=ts,
        proxy_id="p1",
        upstream="pool",
        protocol="sv1",
        channel_id=1,
        worker=worker,
        miner_addr="10.0.0.9:1234",
        job_id="j",
        extranonce2="00",
        ntime="00",
        nonce="00",
        version=0x20000000,
        share_hash="ab" * 32,
        share_difficulty=1.0,
        pool_difficulty=1.0,
        network_difficulty=1e13,
        status="accepted",
        reject_reason="",
        is_block=False,
        response_ms=10.0,
    )
    return base._replace(**change)


def farm(seed: int = 7) -> list[ShareRecord]:
    rng = random.Random(seed)
    out = []
    for worker, first_age_h, diff in (
        ("rig.a", 30.0, 8192.0),
        ("rig.b", 2.0, 65536.0),
        ("rig.c", 0.25, 512.0),
    ):
        for i in range(200):
            ts = NOW - first_age_h * 3600 + i * (first_age_h * 3600 - 5) / 200 + rng.random()
            status = rng.choices(["accepted", "rejected", "no_response"], [90, 8, 2])[0]
            out.append(
                rec(
                    round(ts, 3),
                    worker,
                    status=status,
                    reject_reason="Stale share" if status == "rejected" else "",
                    pool_difficulty=diff * rng.choice([1, 2]),
                    share_difficulty=rng.expovariate(1 / diff),
                    share_hash="" if i % 50 == 49 else "cd" * 32,
                    is_block=i in (17, 18, 19) and worker == "rig.b",
                )
            )
    return out


def expected_stats(
    records: list[ShareRecord], hours: float, now: float
) -> dict[str, dict[str, float]]:
    start = now - hours * 3600
    out: dict[str, dict[str, float]] = {}
    for worker in sorted({r.worker for r in records}):
        rs = [r for r in records if r.worker == worker and start <= r.ts <= now]
        if not rs:
            continue
        acc = [r for r in rs if r.status == "accepted"]
        rej = [r for r in rs if r.status == "rejected"]
        candidates = [r for r in rs if r.is_block]
        span = max(r.ts for r in rs) - min(r.ts for r in rs)
        hashed = [r.share_difficulty for r in rs if r.share_hash]
        out[worker] = {
            "shares": len(rs),
            "accepted": len(acc),
            "rejected": len(rej),
            "no_response": len(rs) - len(acc) - len(rej),
            "acceptance_pct": 100 * len(acc) / len(rs),
            "best_share": max(r.share_difficulty for r in rs),
            "avg_pool_difficulty": sum(r.pool_difficulty for r in rs) / len(rs),
            "avg_share_difficulty": sum(hashed) / len(hashed),
            "block_candidates": len(candidates),
            "block_candidates_accepted": sum(r.status == "accepted" for r in candidates),
            "block_candidates_rejected": sum(r.status == "rejected" for r in candidates),
            "hashrate": sum(r.pool_difficulty for r in acc) * 2**32 / max(1.0, span),
        }
    return out


def test_stats_numbers_match_the_rows(store: Store) -> None:
    records = farm()
    store.insert(encode_batch(records, "farm"))
    got = {s.worker: s for s in worker_stats(store, HOURS, NOW)}
    want = expected_stats(records, HOURS, NOW)
    assert set(got) == set(want) == {"rig.a", "rig.b", "rig.c"}
    for worker, numbers in want.items():
        for key, value in numbers.items():
            assert getattr(got[worker], key) == pytest.approx(value, rel=1e-9), (worker, key)
    # rig.a started 30 h ago: only its shares of the last 24 h count.
    assert got["rig.a"].shares < 200
    assert got["rig.b"].block_candidates == 3


def _table_row(text: str) -> dict[str, str]:
    """The first worker's line of a ``stats`` table, by column name."""
    header, line = text.splitlines()[1:3]
    cells = re.split(r"\s{2,}", line.strip())
    return dict(zip(re.split(r"\s{2,}", header.strip()), cells, strict=True))


def _steady(worker: str, count: int, last: float, **change: object) -> list[ShareRecord]:
    """``count`` shares one second apart, the last at ``last``."""
    return [rec(last - (count - 1 - i), worker, nonce=f"{i:08x}", **change) for i in range(count)]


def test_hashrate_ignores_the_shares_own_difficulty(store: Store) -> None:
    lucky = [
        rec(NOW - 600 + i, "lucky", pool_difficulty=100.0, share_difficulty=1e15) for i in range(10)
    ]
    store.insert(encode_batch(lucky, "lucky"))
    (stats,) = worker_stats(store, 1, NOW)
    # Ten shares spanning 9 s: the pool difficulty of each, over the span.
    assert stats.hashrate == pytest.approx(10 * 100.0 * 2**32 / 9)


def test_unanswered_shares_count_against_acceptance(store: Store) -> None:
    """60 of 1,368 shares never answered: 95.61 %, not 100.00 %."""
    last = NOW - 60
    shares = _steady("quiet", 1368, last)
    shares = [
        r._replace(status="no_response") if i % 22 == 0 and i < 1320 else r
        for i, r in enumerate(shares)
    ]
    store.insert(encode_batch(shares, "quiet"))
    (stats,) = worker_stats(store, 1, NOW)
    assert (stats.accepted, stats.rejected, stats.no_response) == (1308, 0, 60)
    assert stats.acceptance_pct == pytest.approx(100 * 1308 / 1368)
    cells = _table_row(stats_report(store, 1, NOW))
    assert cells["no_response"] == "60" and cells["accept %"] == "95.61"


def test_hashrate_does_not_decay_after_the_miners_stop(store: Store) -> None:
    last = NOW - 7200
    store.insert(encode_batch(_steady("stopped", 121, last, pool_difficulty=512.0), "stopped"))
    want = 121 * 512.0 * 2**32 / 120  # 121 accepted shares spanning 120 s
    for later in (60, 600, 3600):
        (stats,) = worker_stats(store, 3, last + later)
        assert stats.hashrate == pytest.approx(want, rel=1e-9), later
        assert (stats.first_ts, stats.last_ts) == (last - 120, last)


def test_a_single_share_has_no_measurable_hashrate(store: Store) -> None:
    store.insert(encode_batch([rec(NOW - 30, "once", pool_difficulty=4.0)], "once"))
    (stats,) = worker_stats(store, 1, NOW)
    assert stats.hashrate == 0.0
    # Two shares within a second: measured over one second.
    both = [rec(NOW - 30, "twice", pool_difficulty=4.0), rec(NOW - 29.5, "twice", nonce="2")]
    store.insert(encode_batch(both, "twice"))
    twice = next(s for s in worker_stats(store, 1, NOW) if s.worker == "twice")
    assert twice.hashrate == pytest.approx((4.0 + both[1].pool_difficulty) * 2**32 / 1.0)


def test_candidates_carry_the_pools_verdict(store: Store) -> None:
    """``is_block`` meets the network target; a stale-rejected one is still a candidate."""
    verdicts = ["accepted", "rejected", "no_response", "accepted"]
    shares = _steady("lucky", 10, NOW - 5)
    shares[:4] = [
        r._replace(is_block=True, status=v, reject_reason="Stale share" if v == "rejected" else "")
        for r, v in zip(shares, verdicts, strict=False)
    ]
    store.insert(encode_batch(shares, "lucky"))
    (stats,) = worker_stats(store, 1, NOW)
    assert (stats.block_candidates, stats.block_candidates_accepted) == (4, 2)
    assert stats.block_candidates_rejected == 1
    (parsed,) = [orjson.loads(line) for line in stats_report(store, 1, NOW, as_json=True).split()]
    assert parsed["block_candidates"] == 4 and parsed["block_candidates_accepted"] == 2
    assert parsed["no_response"] == 1 and "blocks" not in parsed
    cells = _table_row(stats_report(store, 1, NOW))
    assert (cells["candidates"], cells["candidates_accepted"]) == ("4", "2")
    assert not any("block" in column for column in cells)


def test_json_report_has_one_object_per_worker(store: Store) -> None:
    records = farm(seed=3)
    store.insert(encode_batch(records, "farm"))
    lines = stats_report(store, HOURS, NOW, as_json=True).splitlines()
    parsed = [orjson.loads(line) for line in lines]
    want = expected_stats(records, HOURS, NOW)
    assert [p["worker"] for p in parsed] == sorted(want)
    for p in parsed:
        for key, value in want[p["worker"]].items():
            assert p[key] == pytest.approx(value, rel=1e-9), (p["worker"], key)


def test_table_report_is_readable(store: Store) -> None:
    records = farm(seed=5)
    store.insert(encode_batch(records, "farm"))
    text = stats_report(store, HOURS, NOW)
    want = expected_stats(records, HOURS, NOW)
    header, *body = text.splitlines()[1:-1]
    assert header.split()[:5] == ["worker", "shares", "accepted", "rejected", "no_response"]
    for line in body:
        cells = line.split()
        w = want[cells[0]]
        assert cells[1:5] == [
            str(int(w["shares"])),
            str(int(w["accepted"])),
            str(int(w["rejected"])),
            str(int(w["no_response"])),
        ]
        assert cells[5] == f"{w['acceptance_pct']:.2f}"
        assert cells[8:10] == [
            str(int(w["block_candidates"])),
            str(int(w["block_candidates_accepted"])),
        ]
        assert " ".join(cells[-2:]) == si(w["hashrate"], "H/s")
    assert (
        text.splitlines()[-1]
        == f"total hashrate {si(sum(w['hashrate'] for w in want.values()), 'H/s')}"
    )


def test_empty_window(store: Store) -> None:
    assert stats_report(store, 1, NOW).startswith("no shares since ")
    assert stats_report(store, 1, NOW, as_json=True) == ""


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (0, "", "0"),
        (999, "", "999"),
        (1234567, "", "1.23M"),
        (65536, "", "65.5k"),
        (1.5e18, "H/s", "1.5 EH/s"),
        (0.25, "", "0.25"),
    ],
)
def test_si(value: float, unit: str, text: str) -> None:
    assert si(value, unit) == text


def _count(store: Store, where: str = "1") -> int:
    return int(store.query(f"SELECT count() FROM mining.shares WHERE {where}"))


def test_cleanup_deletes_exactly_the_old_rows(store: Store) -> None:
    ages_h = [240, 200, 190, 170, 168.5, 167.5, 100, 5, 1]  # 7 days = 168 h
    records = [rec(NOW - h * 3600 - j, f"w{j}", nonce=f"{h}") for h in ages_h for j in range(3)]
    store.insert(encode_batch(records, "ages"))
    aggregate_before = store.query("SELECT sum(share_count) FROM mining.mv_hash_rate_stats")
    cutoff = NOW - 7 * 86400
    old = sum(1 for r in records if r.ts < cutoff)
    assert cleanup(store, 7, NOW) == old == 15
    assert _count(store) == len(records) - old
    assert _count(store, f"ts < fromUnixTimestamp64Milli({int(cutoff * 1000)}, 'UTC')") == 0
    assert cleanup(store, 7, NOW) == 0
    # The aggregates keep their own retention.
    assert store.query("SELECT sum(share_count) FROM mining.mv_hash_rate_stats") == aggregate_before


@pytest.mark.parametrize("days", [0, -1, float("nan")])
def test_cleanup_refuses_a_non_positive_age(store: Store, days: float) -> None:
    store.insert(encode_batch([rec(NOW - 10, "w")], "one"))
    with pytest.raises(ConfigError):
        cleanup(store, days, NOW)
    assert _count(store) == 1
