"""/metrics through prometheus_client: types, bounded worker series, counters that only grow."""

from __future__ import annotations

import time
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from stratum_proxy.proxy.stats import WorkerCounters, WorkerStats
from stratum_proxy.store.record import ShareRecord
from stratum_proxy.web.metrics import OTHER_WORKER, fold_workers, render, take_snapshot

PROXY = {
    "connections": 2,
    "connections_accepted": 9,
    "connections_refused": 1,
    "lines_skipped": 4,
    "block_candidates": 0,
    "uptime_s": 12.0,
    "pools": {"main": {"up": True, "last_error": ""}, "backup": {"up": False, "last_error": "x"}},
}
PIPELINE: dict[str, Any] = {
    "rows_put": 10,
    "next_seq": 123,
    "queue_depth": 5,
    "spill": 0,
    "spool_bytes": 2048,
    "spool_rows": 3,
    "batches_written": 2,
    "rows_written": 7,
    "retries": 1,
    "rows_shed": 0,
    "rows_corrupt": 0,
    "rows_dead_lettered": 0,
    "last_write_ts": None,
    "last_dead_letter_ts": None,
    "store_up": 1,
    "insert_running_s": None,
}


def record(
    worker: str, status: str, pool_diff: float = 1.0, share_diff: float = 1.0
) -> ShareRecord:
    return ShareRecord(
        ts=0.0,
        proxy_id="p",
        upstream="u",
        protocol="sv1",
        channel_id=1,
        worker=worker,
        miner_addr="m",
        job_id="j",
        extranonce2="00",
        ntime="00",
        nonce="00",
        version=0,
        share_hash="",
        share_difficulty=share_diff,
        pool_difficulty=pool_diff,
        network_difficulty=1.0,
        status=status,
        reject_reason="",
        is_block=False,
        response_ms=1.0,
    )


def scrape(stats: WorkerStats, limit: int = 1000, pipeline: dict[str, Any] | None = None) -> str:
    snapshot = take_snapshot(PROXY, pipeline or PIPELINE, stats, {"connections": 1})
    return render(snapshot, limit).decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def families(text: str) -> dict[str, str]:
    return {f.name: f.type for f in text_string_to_metric_families(text)}


def test_names_and_types() -> None:
    stats = WorkerStats()
    stats.add(record("a", "accepted", 2.0, 5.0))
    stats.add(record("a", "accepted", 2.0, 9.0))
    stats.add(record("a", "rejected", 2.0, 0.5))
    stats.add(record("b", "no_response", 1.0, 3.0))
    text = scrape(stats)
    types = families(text)
    for counter in (
        "stratum_proxy_connections_accepted",
        "stratum_proxy_connections_refused",
        "stratum_proxy_lines_skipped",
        "stratum_proxy_block_candidates",
        "stratum_proxy_shares",
        "stratum_proxy_accepted_work",
        "stratum_proxy_pipeline_rows_put",
        "stratum_proxy_pipeline_batches_written",
        "stratum_proxy_pipeline_rows_written",
        "stratum_proxy_pipeline_retries",
        "stratum_proxy_pipeline_rows_shed",
        "stratum_proxy_pipeline_rows_dead_lettered",
        "stratum_proxy_pipeline_rows_corrupt",
        "stratum_proxy_api_connections_refused",
    ):
        assert types.pop(counter) == "counter", counter
    for gauge in (
        "stratum_proxy_connections",
        "stratum_proxy_pool_up",
        "stratum_proxy_best_share_difficulty",
        "stratum_proxy_workers_folded",
        "stratum_proxy_pipeline_queue_depth",
        "stratum_proxy_pipeline_spool_bytes",
        "stratum_proxy_pipeline_spool_rows",
        "stratum_proxy_pipeline_store_up",
        "stratum_proxy_pipeline_insert_running_s",
    ):
        assert types.pop(gauge) == "gauge", gauge
    assert all(t == "gauge" for n, t in types.items() if n.startswith("stratum_proxy_pipeline_"))
    got = samples(text)
    assert got[("stratum_proxy_shares_total", (("status", "accepted"), ("worker", "a")))] == 2
    assert got[("stratum_proxy_shares_total", (("status", "rejected"), ("worker", "a")))] == 1
    assert got[("stratum_proxy_shares_total", (("status", "no_response"), ("worker", "b")))] == 1
    assert got[("stratum_proxy_accepted_work_total", (("worker", "a"),))] == 4.0
    assert got[("stratum_proxy_best_share_difficulty", (("worker", "a"),))] == 9.0
    assert got[("stratum_proxy_pool_up", (("pool", "main"),))] == 1.0
    assert got[("stratum_proxy_pool_up", (("pool", "backup"),))] == 0.0
    assert got[("stratum_proxy_connections_accepted_total", ())] == 9
    assert got[("stratum_proxy_pipeline_rows_written_total", ())] == 7
    assert got[("stratum_proxy_pipeline_queue_depth", ())] == 5
    assert got[("stratum_proxy_pipeline_insert_running_s", ())] == 0.0
    assert got[("stratum_proxy_workers_folded", ())] == 0
    # No batch written yet: no timestamp sample rather than a made-up 0.
    assert not any(name.endswith("last_write_ts") for name, _ in got)
    assert ("stratum_proxy_pipeline_last_write_ts", ()) in samples(
        scrape(stats, pipeline={**PIPELINE, "last_write_ts": 1.7e9})
    )


def test_odd_worker_names_are_escaped() -> None:
    stats = WorkerStats()
    stats.add(record('we"ird\\name\nx', "accepted"))
    got = samples(scrape(stats))
    assert got[("stratum_proxy_accepted_work_total", (("worker", 'we"ird\\name\nx'),))] == 1.0


def test_counters_only_grow_across_summaries() -> None:
    """Scrapes between shares and interval summaries never see a counter go down."""
    stats = WorkerStats()
    previous: dict[Any, float] = {}
    for round_ in range(6):
        for i in range(5):
            stats.add(record(f"w{i}", "accepted" if round_ % 3 else "rejected", 1.5, round_ + i))
        if round_ % 2:
            stats.take_interval()  # the minute summary folds the interval into the totals
        current = {k: v for k, v in samples(scrape(stats)).items() if k[0].endswith("_total")}
        for key, value in previous.items():
            assert current[key] >= value, key
        previous = current
    assert previous[("stratum_proxy_shares_total", (("status", "accepted"), ("worker", "w0")))] == 4


def test_a_snapshot_read_after_the_summary_is_not_counted_twice() -> None:
    """The snapshot is taken on the loop, rendered later on a thread: a summary in
    between must not add the interval into the totals the snapshot already holds."""
    stats = WorkerStats()
    stats.add(record("a", "accepted"))
    stats.take_interval()
    stats.add(record("a", "accepted"))
    snapshot = take_snapshot(PROXY, PIPELINE, stats)
    stats.take_interval()  # runs on the loop while the thread has not rendered yet
    got = samples(render(snapshot, 10).decode())
    assert got[("stratum_proxy_shares_total", (("status", "accepted"), ("worker", "a")))] == 2


def test_twenty_thousand_workers_stay_bounded() -> None:
    stats = WorkerStats()
    limit = 100
    for i in range(20_000):
        stats.add(record(f"rig-{i:05d}", "accepted", 2.0, float(i)))
        if i % 3 == 0:
            stats.add(record(f"rig-{i:05d}", "rejected"))
        if i == 10_000:
            stats.take_interval()
    started = time.perf_counter()
    snapshot = take_snapshot(PROXY, PIPELINE, stats)
    on_loop = time.perf_counter() - started
    assert on_loop < 0.05  # two list copies; the folding happens off the loop
    text = scrape(stats, limit)
    assert len(text) < 64 * 1024
    got = samples(text)
    for name in ("stratum_proxy_accepted_work_total", "stratum_proxy_best_share_difficulty"):
        workers = {dict(labels)["worker"] for n, labels in got if n == name}
        assert len(workers) == limit + 1 and OTHER_WORKER in workers
        # The first-seen workers keep their own series.
        assert workers - {OTHER_WORKER} == {f"rig-{i:05d}" for i in range(limit)}
    other = (("worker", OTHER_WORKER),)
    assert got[("stratum_proxy_workers_folded", ())] == 20_000 - limit
    assert got[("stratum_proxy_accepted_work_total", other)] == 2.0 * (20_000 - limit)
    rejected = sum(1 for i in range(limit, 20_000) if i % 3 == 0)
    assert got[("stratum_proxy_shares_total", (("status", "rejected"), *other))] == rejected
    assert got[("stratum_proxy_best_share_difficulty", other)] == 19_999.0
    total = sum(v for (n, labels), v in got.items() if n == "stratum_proxy_shares_total")
    assert total == 20_000 + sum(1 for i in range(20_000) if i % 3 == 0)
    assert snapshot.totals and snapshot.interval


def test_other_only_grows_and_the_named_set_is_stable() -> None:
    stats = WorkerStats()
    for name in ("a", "b", "c"):
        stats.add(record(name, "accepted"))
    first = fold_workers(*stats.snapshot_refs(), 2)
    assert list(first.named) == ["a", "b"] and first.folded == 1
    stats.take_interval()
    stats.add(record("d", "accepted"))
    stats.add(record("a", "accepted"))
    second = fold_workers(*stats.snapshot_refs(), 2)
    assert list(second.named) == ["a", "b"] and second.folded == 2
    assert second.other.accepted == 2 and second.named["a"].accepted == 2


def test_a_worker_called_other_is_folded_and_zero_series_folds_everyone() -> None:
    stats = WorkerStats()
    stats.add(record(OTHER_WORKER, "accepted"))
    stats.add(record("x", "accepted"))
    folded = fold_workers(*stats.snapshot_refs(), 5)
    assert list(folded.named) == ["x"] and folded.other.accepted == 1
    everyone = fold_workers(*stats.snapshot_refs(), 0)
    assert everyone.named == {} and everyone.folded == 2 and everyone.other.accepted == 2


def test_worker_stats_summary() -> None:
    stats = WorkerStats()
    stats.add(record("a", "accepted", 2.0, 5.0))
    stats.add(record("a", "accepted", 2.0, 9.0))
    stats.add(record("a", "rejected", 2.0, 0.5))
    interval = stats.take_interval()
    a = interval["a"].summary(60.0)
    assert (a["shares"], a["accepted"], a["rejected"]) == (3, 2, 1)
    assert a["acceptance_pct"] == 66.67 and a["best_difficulty"] == 9.0
    # Hashrate counts the difficulty of accepted shares only: 4 * 2^32 / 60 s.
    assert a["hashrate_hs"] == 4.0 * 2**32 / 60.0
    assert a["block_candidates"] == 0 and "blocks" not in a
    assert stats.interval == {}
    stats.add(record("a", "accepted", 3.0, 1.0))
    totals = stats.snapshot_totals()
    assert totals["a"].accepted == 3 and totals["a"].accepted_work == 7.0
    assert isinstance(totals["a"], WorkerCounters)


def test_aggregate_mode_work_is_the_miners_difficulty() -> None:
    """A share the proxy accepted at the miner's difficulty 8 is worth 8, not the pool's 1024."""
    stats = WorkerStats()
    stats.add(record("a", "accepted", 1024.0)._replace(miner_difficulty=8.0))
    stats.add(record("a", "accepted", 1024.0)._replace(miner_difficulty=8.0, forwarded=True))
    stats.add(record("b", "accepted", 64.0))  # a row that carries no miner difficulty
    interval = stats.take_interval()
    assert interval["a"].accepted_work == 16.0 and interval["b"].accepted_work == 64.0


def test_worker_summary_counts_unanswered_shares_and_rejected_candidates() -> None:
    """An unanswered share is not accepted; a rejected candidate is still a candidate."""
    stats = WorkerStats()
    for _ in range(3):
        stats.add(record("a", "accepted"))
    stats.add(record("a", "no_response"))
    stats.add(record("a", "rejected")._replace(is_block=True))
    a = stats.take_interval()["a"].summary(60.0)
    assert (a["accepted"], a["rejected"], a["no_response"]) == (3, 1, 1)
    assert a["acceptance_pct"] == 60.0  # 3 of 5 shares, not 3 of 4 answered
    assert a["block_candidates"] == 1
    assert WorkerCounters().summary(60.0)["acceptance_pct"] == 0.0


def test_aggregate_listeners_get_their_own_series() -> None:
    proxy = PROXY | {
        "aggregate": {
            "1": {
                "miners": 40,
                "miners_placed": 40,
                "upstreams": {"main": 2},
                "aggregation": 20.0,
                "miner_difficulty": {"0": 512.0, "0.5": 4096.0, "1": 65536.0},
                "last_move_without_work_s": 0.35,
                "shares_forwarded": 7,
                "failovers": 1,
            }
        }
    }
    text = render(take_snapshot(proxy, PIPELINE, WorkerStats(), {}), 1000).decode()
    got = samples(text)
    kinds = families(text)
    assert got[("stratum_proxy_aggregate_miners", (("listener", "1"),))] == 40
    assert got[("stratum_proxy_aggregate_miners_per_upstream", (("listener", "1"),))] == 20
    assert (
        got[("stratum_proxy_aggregate_upstream_connections", (("listener", "1"), ("pool", "main")))]
        == 2
    )
    key = ("stratum_proxy_aggregate_miner_difficulty", (("listener", "1"), ("quantile", "0.5")))
    assert got[key] == 4096
    assert got[("stratum_proxy_aggregate_shares_forwarded_total", (("listener", "1"),))] == 7
    assert got[("stratum_proxy_aggregate_reconnects_sent_total", (("listener", "1"),))] == 0
    assert kinds["stratum_proxy_aggregate_failovers"] == "counter"
    assert got[
        ("stratum_proxy_aggregate_last_failover_without_work_seconds", (("listener", "1"),))
    ] == pytest.approx(0.35)
    # Without aggregate listeners: none of these families.
    plain = render(take_snapshot(PROXY, PIPELINE, WorkerStats(), {}), 1000).decode()
    assert "stratum_proxy_aggregate" not in plain
