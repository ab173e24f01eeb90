"""Prometheus text exposition of the proxy's and the pipeline's counters."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from stratum_proxy.proxy.stats import WorkerCounters


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _line(name: str, value: float, labels: Mapping[str, str] | None = None) -> str:
    if labels:
        inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
        return f"{name}{{{inner}}} {value}"
    return f"{name} {value}"


def render_metrics(
    proxy: Mapping[str, Any], pipeline: Mapping[str, Any], workers: Mapping[str, WorkerCounters]
) -> str:
    out: list[str] = []

    def metric(
        name: str, kind: str, help_: str, samples: Iterable[tuple[dict[str, str], float]]
    ) -> None:
        out.append(f"# HELP {name} {help_}")
        out.append(f"# TYPE {name} {kind}")
        out.extend(_line(name, v, labels) for labels, v in samples)

    metric(
        "stratum_proxy_connections",
        "gauge",
        "Open miner connections",
        [({}, proxy.get("connections", 0))],
    )
    metric(
        "stratum_proxy_connections_accepted_total",
        "counter",
        "Miner connections accepted",
        [({}, proxy.get("connections_accepted", 0))],
    )
    metric(
        "stratum_proxy_connections_refused_total",
        "counter",
        "Miner connections refused (limit or shutdown)",
        [({}, proxy.get("connections_refused", 0))],
    )
    metric(
        "stratum_proxy_lines_skipped_total",
        "counter",
        "Unparseable lines skipped",
        [({}, proxy.get("lines_skipped", 0))],
    )
    metric(
        "stratum_proxy_block_candidates_total",
        "counter",
        "Shares meeting the network target",
        [({}, proxy.get("block_candidates", 0))],
    )
    pools = proxy.get("pools", {})
    metric(
        "stratum_proxy_pool_up",
        "gauge",
        "1 if the pool accepted our last connection",
        [({"pool": name}, 1.0 if info.get("up") else 0.0) for name, info in pools.items()],
    )
    statuses = ("accepted", "rejected", "no_response")
    metric(
        "stratum_proxy_shares_total",
        "counter",
        "Shares by worker and pool verdict",
        [
            ({"worker": w, "status": s}, getattr(c, s))
            for w, c in sorted(workers.items())
            for s in statuses
        ],
    )
    metric(
        "stratum_proxy_accepted_work_total",
        "counter",
        "Sum of pool difficulty of accepted shares (x 2^32 = hashes)",
        [({"worker": w}, c.accepted_work) for w, c in sorted(workers.items())],
    )
    metric(
        "stratum_proxy_best_share_difficulty",
        "gauge",
        "Best share difficulty since start",
        [({"worker": w}, c.best_difficulty) for w, c in sorted(workers.items())],
    )
    for key, value in sorted(pipeline.items()):
        if isinstance(value, bool):
            value = 1.0 if value else 0.0
        if isinstance(value, int | float):
            metric(
                f"stratum_proxy_pipeline_{key}", "gauge", f"Share pipeline: {key}", [({}, value)]
            )
    return "\n".join(out) + "\n"
