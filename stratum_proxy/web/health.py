"""/healthz: is the proxy doing its job?  A pure judgement of the statistics.

``judge_health`` takes the proxy's and the pipeline's statistics dicts (as
``ProxyServer.statistics()`` / ``SharePipeline.statistics()`` return them), the
API settings and the store's spool cap, and ``now`` (wall clock); it returns
the reasons the proxy is degraded, an empty list when it is fine.  Each reason
starts with a stable word a monitor can match, then says what was seen.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def judge_health(
    proxy: Mapping[str, Any],
    pipeline: Mapping[str, Any],
    *,
    api: Any,
    spool_max_bytes: int,
    now: float,
) -> list[str]:
    reasons: list[str] = []
    stale_s = float(api.health_write_stale_s)
    uptime = float(proxy.get("uptime_s") or 0.0)
    last_write = pipeline.get("last_write_ts")
    # Since the last acknowledged batch, or since start when none ever was.
    quiet_s = now - float(last_write) if last_write is not None else uptime
    waiting = int(pipeline.get("queue_depth") or 0) + int(pipeline.get("spool_rows") or 0)

    if waiting > 0 and quiet_s >= stale_s:
        reasons.append(
            f"write_stale: {waiting} rows waiting and no batch acknowledged for {quiet_s:.0f} s"
        )
    if not pipeline.get("store_up") and quiet_s >= stale_s:
        what = "not opened" if last_write is None else "down"
        reasons.append(f"store_down: the store is {what} ({quiet_s:.0f} s without a write)")
    running = pipeline.get("insert_running_s")
    if running is not None and running >= stale_s:
        reasons.append(f"writer_stuck: one insert has been running for {running:.0f} s")
    dead = pipeline.get("last_dead_letter_ts")
    if dead is not None and now - float(dead) <= api.health_deadletter_window_s:
        reasons.append(
            f"dead_letter: a batch was dead-lettered {max(0.0, now - float(dead)):.0f} s ago "
            f"({pipeline.get('rows_dead_lettered', 0)} rows in total)"
        )
    spool_bytes = int(pipeline.get("spool_bytes") or 0)
    if spool_max_bytes > 0 and spool_bytes >= api.health_spool_fraction * spool_max_bytes:
        reasons.append(
            f"spool_full: the spool holds {spool_bytes} bytes "
            f"({100.0 * spool_bytes / spool_max_bytes:.0f}% of store.spool_max_bytes)"
        )
    # A pool counts as up until a connection to it failed (never tried = reachable).
    pools: Mapping[str, Mapping[str, Any]] = proxy.get("pools") or {}
    if pools and not any(info.get("up") for info in pools.values()):
        reasons.append(f"no_pool: no configured pool is reachable ({', '.join(sorted(pools))})")
    return reasons
