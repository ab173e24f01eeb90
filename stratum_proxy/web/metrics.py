"""/metrics: the proxy's and the pipeline's counters, exposed with prometheus_client.

Two steps so that a scrape costs the event loop almost nothing:

* ``take_snapshot`` runs on the loop: two statistics dicts and two shallow
  copies of the per-worker counters (``WorkerStats.snapshot_refs``).
* ``render`` runs on a thread: it folds the workers, builds the metric
  families in a ``StatsCollector`` on a fresh ``CollectorRegistry`` and lets
  ``generate_latest`` write the exposition.

Per-worker series are bounded: the first ``max_worker_series`` workers (in
first-seen order, which never changes while the process runs) get their own
``worker`` label; every later one is summed into ``worker="_other"``.  Workers
are never forgotten and counters never go down, so every series only grows.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from stratum_proxy.proxy.stats import WorkerCounters, WorkerStats

OTHER_WORKER = "_other"

# Pipeline statistics that only grow (exported as counters, ``..._total``);
# every other number in ``SharePipeline.statistics()`` is a gauge.
PIPELINE_COUNTERS = {
    "rows_put": "Rows handed to the pipeline",
    "batches_written": "Batches the store acknowledged",
    "rows_written": "Rows the store acknowledged",
    "retries": "Insert attempts that failed and were retried",
    "rows_shed": "Rows dropped because the queue and the spool were full",
    "rows_dead_lettered": "Rows written to the dead-letter file",
    "rows_corrupt": "Spool rows that failed their checksum",
}
PIPELINE_GAUGES = {
    "queue_depth": "Rows in the memory queue",
    "spool_bytes": "Bytes in the spool on disk",
    "spool_rows": "Rows in the spool not yet acknowledged by the store",
    "store_up": "1 if the store accepted the last attempt",
    "last_write_ts": "Unix time of the last acknowledged batch",
    "last_dead_letter_ts": "Unix time of the last dead-lettered batch",
    "insert_running_s": "Seconds the insert under way has been running (0: none)",
}
_STATUSES = ("accepted", "rejected", "no_response")
# Aggregate mode's counters (``Aggregator.counters``), exported per listener.
AGGREGATE_COUNTERS = {
    "shares_forwarded": "Shares sent on to the pool",
    "shares_judged_locally": "Shares the proxy accepted at the miner's difficulty",
    "shares_rejected_locally": "Shares the proxy refused (stale, duplicate, low difficulty, ...)",
    "failovers": "Miner moves to another pool connection after one was lost",
    "failbacks": "Miner moves back to a better pool",
    "reconnects_sent": "client.reconnect sent to miners whose extranonce did not fit",
    "keepalive_jobs": "Jobs resent with a later ntime because the pool was silent",
    "late_verdicts": "Pool answers that came after the share was recorded no_response",
    "worker_channels_refused": "Worker channels an SV2 pool refused or closed (under pool_user)",
}


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    proxy: Mapping[str, Any]
    pipeline: Mapping[str, Any]
    totals: Mapping[str, WorkerCounters]
    interval: Mapping[str, WorkerCounters]
    api: Mapping[str, Any] = field(default_factory=dict)


def take_snapshot(
    proxy: Mapping[str, Any],
    pipeline: Mapping[str, Any],
    workers: WorkerStats,
    api: Mapping[str, Any] | None = None,
) -> MetricsSnapshot:
    """On the event loop: O(workers) pointer copies, no per-worker work."""
    totals, interval = workers.snapshot_refs()
    return MetricsSnapshot(proxy, pipeline, totals, interval, api or {})


@dataclass(slots=True)
class FoldedWorkers:
    named: dict[str, WorkerCounters]
    other: WorkerCounters
    folded: int  # distinct workers summed into ``_other``


def fold_workers(
    totals: Mapping[str, WorkerCounters],
    interval: Mapping[str, WorkerCounters],
    limit: int,
) -> FoldedWorkers:
    """Sum totals and interval per worker; workers past the first ``limit`` go to ``_other``."""
    named: dict[str, WorkerCounters] = {}
    other = WorkerCounters()
    folded: set[str] = set()
    for source in (totals, interval):
        for worker, counters in source.items():
            mine = named.get(worker)
            if mine is None and worker not in folded:
                # A real worker called "_other" cannot have a series of its own.
                if len(named) < limit and worker != OTHER_WORKER:
                    mine = named[worker] = WorkerCounters()
                else:
                    folded.add(worker)
            (mine if mine is not None else other).merge(counters)
    return FoldedWorkers(named, other, len(folded))


class StatsCollector:
    """A prometheus_client collector over one snapshot."""

    def __init__(self, snapshot: MetricsSnapshot, max_worker_series: int) -> None:
        self.snapshot = snapshot
        self.max_worker_series = max_worker_series

    def collect(self) -> Iterator[Metric]:
        yield from self._proxy(self.snapshot.proxy)
        yield from self._aggregate(self.snapshot.proxy.get("aggregate") or {})
        yield from self._workers()
        yield from self._pipeline(self.snapshot.pipeline)
        yield from self._api(self.snapshot.api)

    def _proxy(self, proxy: Mapping[str, Any]) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "stratum_proxy_connections", "Open miner connections", proxy.get("connections", 0)
        )
        for key, help_ in (
            ("connections_accepted", "Miner connections accepted"),
            ("connections_refused", "Miner connections refused (limit or shutdown)"),
            ("lines_skipped", "Unparseable lines skipped"),
            ("block_candidates", "Shares meeting the network target"),
        ):
            yield CounterMetricFamily(f"stratum_proxy_{key}", help_, proxy.get(key, 0))
        pools = GaugeMetricFamily(
            "stratum_proxy_pool_up",
            "1 unless the last connection to the pool failed",
            labels=["pool"],
        )
        for name, info in (proxy.get("pools") or {}).items():
            pools.add_metric([name], 1.0 if info.get("up") else 0.0)
        yield pools

    def _aggregate(self, listeners: Mapping[str, Mapping[str, Any]]) -> Iterator[Metric]:
        """Aggregate mode, per aggregate listener (its index in ``listen``)."""
        if not listeners:
            return
        gauges = {
            "miners": GaugeMetricFamily(
                "stratum_proxy_aggregate_miners", "Miners connected", labels=["listener"]
            ),
            "aggregation": GaugeMetricFamily(
                "stratum_proxy_aggregate_miners_per_upstream",
                "Miners per pool connection (the aggregation ratio)",
                labels=["listener"],
            ),
            "last_move_without_work_s": GaugeMetricFamily(
                "stratum_proxy_aggregate_last_failover_without_work_seconds",
                "The longest time a miner waited for work at the last failover or fail-back",
                labels=["listener"],
            ),
        }
        upstreams = GaugeMetricFamily(
            "stratum_proxy_aggregate_upstream_connections",
            "Ready pool connections (on an SV2 pool: channels, sharing one connection)",
            labels=["listener", "pool"],
        )
        difficulty = GaugeMetricFamily(
            "stratum_proxy_aggregate_miner_difficulty",
            "Miners' difficulties (quantile 0: lowest, 0.5: median, 1: highest)",
            labels=["listener", "quantile"],
        )
        counters = {
            key: CounterMetricFamily(f"stratum_proxy_aggregate_{key}", help_, labels=["listener"])
            for key, help_ in AGGREGATE_COUNTERS.items()
        }
        for listener, stats in listeners.items():
            for key, family in gauges.items():
                family.add_metric([listener], float(stats.get(key) or 0))
            for pool, count in (stats.get("upstreams") or {}).items():
                upstreams.add_metric([listener, pool], count)
            for quantile, value in (stats.get("miner_difficulty") or {}).items():
                difficulty.add_metric([listener, quantile], value)
            for key, counter in counters.items():
                counter.add_metric([listener], stats.get(key, 0))
        yield from gauges.values()
        yield upstreams
        yield difficulty
        yield from counters.values()

    def _workers(self) -> Iterator[Metric]:
        snap = self.snapshot
        folded = fold_workers(snap.totals, snap.interval, self.max_worker_series)
        rows = list(folded.named.items())
        if folded.folded:
            rows.append((OTHER_WORKER, folded.other))
        shares = CounterMetricFamily(
            "stratum_proxy_shares", "Shares by worker and pool verdict", labels=["worker", "status"]
        )
        work = CounterMetricFamily(
            "stratum_proxy_accepted_work",
            "Sum of the difficulty accepted shares were worked at (x 2^32 = hashes)",
            labels=["worker"],
        )
        best = GaugeMetricFamily(
            "stratum_proxy_best_share_difficulty",
            "Best share difficulty since start",
            labels=["worker"],
        )
        for worker, counters in rows:
            for status in _STATUSES:
                shares.add_metric([worker, status], getattr(counters, status))
            work.add_metric([worker], counters.accepted_work)
            best.add_metric([worker], counters.best_difficulty)
        yield shares
        yield work
        yield best
        yield GaugeMetricFamily(
            "stratum_proxy_workers_folded",
            f'Workers summed into worker="{OTHER_WORKER}" (past api.max_worker_series)',
            folded.folded,
        )

    def _pipeline(self, pipeline: Mapping[str, Any]) -> Iterator[Metric]:
        for key, help_ in PIPELINE_COUNTERS.items():
            yield CounterMetricFamily(
                f"stratum_proxy_pipeline_{key}", f"Share pipeline: {help_}", pipeline.get(key) or 0
            )
        for key, value in pipeline.items():
            if key in PIPELINE_COUNTERS or isinstance(value, str):
                continue
            if value is None:
                if key != "insert_running_s":
                    continue  # e.g. no batch written yet: no sample rather than a fake 0
                value = 0.0
            help_ = PIPELINE_GAUGES.get(key, key.replace("_", " "))
            yield GaugeMetricFamily(
                f"stratum_proxy_pipeline_{key}", f"Share pipeline: {help_}", float(value)
            )

    def _api(self, api: Mapping[str, Any]) -> Iterator[Metric]:
        if not api:
            return
        yield GaugeMetricFamily(
            "stratum_proxy_api_connections", "Open HTTP API connections", api.get("connections", 0)
        )
        yield CounterMetricFamily(
            "stratum_proxy_api_connections_refused",
            "HTTP API connections closed at once (api.max_connections reached)",
            api.get("connections_refused", 0),
        )
        yield CounterMetricFamily(
            "stratum_proxy_api_slow_clients",
            "HTTP API connections closed for not sending a request in api.header_timeout_s",
            api.get("slow_clients", 0),
        )


def render(snapshot: MetricsSnapshot, max_worker_series: int) -> bytes:
    """The exposition text (prometheus_client.CONTENT_TYPE_LATEST); run it off the loop."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatsCollector(snapshot, max_worker_series))
    return generate_latest(registry)
