#!/usr/bin/env python3
"""The dashboard's queries at farm scale: every panel's time on a big embedded store.

    python scripts/bench_dashboard.py --rows 50000000 --workers 10000 --store /tmp/benchdash/store
    python scripts/bench_dashboard.py --rows 5000000 --workers 10000   # a quicker look

Fills an embedded store (chdb) with ``--rows`` generated shares of ``--workers``
workers over ``--days`` days, straight in the engine (``INSERT ... SELECT FROM
numbers()``, the materialized view filling the per-minute aggregate as the
proxy's inserts do), unless the store already holds that many rows.  Then runs
every panel's SQL the way the daemon does: through ``QueryRunner`` (its own
read-only connection and thread) with the API's limits (``[api]`` defaults:
one thread per query, 10 s limit), three times after a warm-up, and prints
the median and the slowest of each, and what one refresh of the farm panels
costs (what the event feed runs every ``api.dashboard_refresh_s``).

The miners' side (share throughput while dashboards are open) is measured by
``scripts/bench --api-load --api-dashboard N`` against the same store:

    scripts/bench --scenario closed --miners 100 --seconds 15 --repeat 3 \\
        --api-load --api-no-queries --api-dashboard 3 \\
        --proxy-arg=--store=chdb:///tmp/benchdash/store
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stratum_proxy.logging import configure_logging, get_logger  # noqa: E402
from stratum_proxy.settings import ApiSettings  # noqa: E402
from stratum_proxy.store import panels, reports  # noqa: E402
from stratum_proxy.store.backend import open_store  # noqa: E402
from stratum_proxy.store.query_runner import QueryRunner  # noqa: E402
from stratum_proxy.store.settings import StoreSettings  # noqa: E402

CHUNK = 5_000_000
NETWORK = 1.0e14
# Rows of the same shape as the proxy's: most workers mining now, 1 % stopped
# three hours ago (the "down" ones), 97 % accepted, 2 % rejected for the usual
# reasons (a few by the proxy), 1 % unanswered, a handful of block candidates.
_GENERATE = """
INSERT INTO mining.shares (ts, proxy_id, upstream, protocol, channel_id, worker, miner_addr,
    job_id, extranonce2, ntime, nonce, version, share_hash, share_difficulty, pool_difficulty,
    network_difficulty, status, reject_reason, is_block, response_ms, version_bits,
    extranonce1, connection_id, miner_difficulty, forwarded, verdict_by, manual)
SELECT
    fromUnixTimestamp64Milli(toInt64(if(w % 100 = 0,
        least(at, {now} - 10800 - (w % 7) * 60), at) * 1000), 'UTC') AS ts,
    'farm-proxy-1', ['main', 'main', 'main', 'backup'][1 + (n % 4)], 'sv1',
    toUInt32(w + 1), concat('farm.rig', leftPad(toString(w), 5, '0')),
    concat('10.0.', toString(intDiv(w, 250)), '.', toString(w % 250), ':4028'),
    lower(hex(toUInt16(n % 65536))), lower(hex(toUInt32(n))), '65a1b2c3',
    lower(hex(toUInt32(cityHash64(n, 3)))), 536870912,
    lower(hex(SHA256(toString(n)))),
    if(n % 10000000 = 7, {network} * 1.5, pd / ((cityHash64(n, 1) % 1000000 + 1) / 1000000.0)),
    pd, {network}, st,
    multiIf(st != 'rejected', '', h % 5 = 0, '22 Duplicate share', h % 5 = 1,
        '23 Low difficulty share', h % 5 = 2, 'proxy: stale job', '21 Stale share'),
    n % 10000000 = 7, 15 + (cityHash64(n, 2) % 250) / 1.0, '', '', toUInt32(w + 1), pd, true,
    multiIf(st = 'no_response', '', st = 'rejected' AND h % 5 = 2, 'proxy', 'pool'), false
FROM (
    SELECT number + {offset} AS n, n % {workers} AS w,
        {start} + (n / {rows}) * {span} AS at,
        65536.0 * (1 + w % 4) AS pd,
        cityHash64(n) % 1000 AS h,
        multiIf(h < 970, 'accepted', h < 990, 'rejected', 'no_response') AS st
    FROM numbers({chunk})
)"""


def generate(url: str, rows: int, workers: int, days: float) -> dict[str, Any]:
    store = open_store(url, StoreSettings(retention_days=max(30, int(days) + 2)))
    try:
        store.ensure_schema()
        have = int(store.query("SELECT count() FROM mining.shares").strip() or 0)
        if have >= rows:
            print(f"store already holds {have:,} rows: reused")
            return {"generated": False, "rows": have}
        if have:
            raise SystemExit(f"{url} holds {have:,} rows, fewer than --rows: use a new --store")
        now = time.time()
        started = time.monotonic()
        for offset in range(0, rows, CHUNK):
            chunk = min(CHUNK, rows - offset)
            store.query(
                _GENERATE.format(
                    now=now,
                    network=NETWORK,
                    offset=offset,
                    workers=workers,
                    rows=rows,
                    start=now - days * 86400,
                    span=days * 86400 - 5,
                    chunk=chunk,
                )
            )
            done = offset + chunk
            rate = done / (time.monotonic() - started)
            print(f"  {done:,} rows, {rate:,.0f} rows/s", flush=True)
        store.query("OPTIMIZE TABLE mining.mv_hash_rate_stats FINAL")
        seconds = time.monotonic() - started
        return {"generated": True, "rows": rows, "seconds": round(seconds, 1)}
    finally:
        store.close()


def _panel_sql(worker: str, now: float) -> dict[str, str]:
    """Every query the dashboard runs, by panel, as the code builds it."""
    day = 24.0
    sql = {
        "farm: workers (totals)": reports.worker_stats_sql(day, now),
        "farm: reject reasons": panels.reject_reasons_sql(day, now),
        "farm: pools": panels.pools_sql(day, now),
        "farm: luck": panels.luck_sql(day, now),
        # A full read once per 15 min; between, the rows of the last 10 min
        # (web/dashboard.py RunningBest): the feed's work is the second.
        "farm: best ever (full read)": panels.best_ever_sql(),
        "farm: best ever (recent rows)": panels.best_since_sql(now - 605),
        "farm: best of the session": panels.best_since_sql(now - 605, "farm-proxy-1"),
        "farm: block candidates": panels.block_candidates_sql(),
    }
    for name, span in panels.RANGES.items():
        sql[f"series {name}"] = panels.series_sql(span, now)
        sql[f"series {name}, one worker"] = panels.series_sql(span, now, worker=worker)
    sql |= {
        "worker: figures": reports.worker_stats_sql(day, now, worker=worker),
        "worker: difficulty histogram": panels.difficulty_bins_sql(worker, day, now),
        "worker: response histogram": panels.response_bins_sql(worker, day, now),
        "worker: best shares": panels.best_shares_sql(worker, day, now),
        "worker: recent shares": reports.recent_shares_sql(day, now, 50, worker=worker),
    }
    return sql


async def time_panels(url: str, threads: int, repeat: int) -> dict[str, dict[str, Any]]:
    api = ApiSettings(query_max_threads=threads)
    store = open_store(url, StoreSettings())  # holds the engine as the daemon's writer does
    runner = QueryRunner(url, StoreSettings(), api, get_logger())
    results: dict[str, dict[str, Any]] = {}
    try:
        now = time.time()
        for name, sql in _panel_sql("farm.rig00042", now).items():
            times: list[float] = []
            error = ""
            for _ in range(repeat + 1):  # the first run warms the caches
                started = time.perf_counter()
                try:
                    await runner.run(sql)
                except Exception as exc:  # a figure, not a crash
                    error = f"{type(exc).__name__}: {exc}"[:120]
                    break
                times.append((time.perf_counter() - started) * 1000)
            measured = times[1:]
            results[name] = (
                {"error": error}
                if error
                else {"median_ms": round(statistics.median(measured), 1),
                      "max_ms": round(max(measured), 1)}
            )  # fmt: skip
    finally:
        runner.close()
        store.close()
    return results


def disk_bytes(path: Path) -> int:
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=False)
    return int(out.stdout.split()[0]) if out.returncode == 0 else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000_000)
    parser.add_argument("--workers", type=int, default=10_000)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--store", type=Path, default=Path("/tmp/benchdash/store"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, action="append", help="query_max_threads to try (default: 1 and 2)"
    )
    args = parser.parse_args()
    configure_logging("warning", "console")
    url = f"chdb://{args.store}"
    generation = generate(url, args.rows, args.workers, args.days)
    size = disk_bytes(args.store)
    print(f"store {args.store}: {generation['rows']:,} rows, {size / 2**30:.2f} GiB on disk")
    figures: dict[str, Any] = {
        "rows": generation["rows"],
        "workers": args.workers,
        "disk_bytes": size,
        "generation": generation,
        "panels": {},
    }
    thread_counts = args.threads or [1, 2]
    for threads in thread_counts:
        figures["panels"][threads] = asyncio.run(time_panels(url, threads, args.repeat))
    names = list(figures["panels"][thread_counts[0]])
    header = f"{'panel':34}" + "".join(f"{f'{t} thr median/max ms':>26}" for t in thread_counts)
    print(header)
    for name in names:
        cells = []
        for threads in thread_counts:
            got = figures["panels"][threads][name]
            cells.append(
                f"{got['median_ms']:>12.1f} / {got['max_ms']:>9.1f}"
                if "median_ms" in got
                else f"{'ERROR':>24}"
            )
        print(f"{name:34}" + "".join(f"{c:>26}" for c in cells))
    for threads in thread_counts:
        farm = [
            v
            for k, v in figures["panels"][threads].items()
            if k.startswith("farm:") and "full read" not in k
        ]
        total = sum(v.get("median_ms", 0.0) for v in farm)
        figures[f"farm_refresh_ms_{threads}_threads"] = round(total, 1)
        print(f"one farm refresh (the feed's work per update), {threads} thread(s): {total:.0f} ms")
    errors = {
        f"{t}:{k}": v["error"] for t in thread_counts for k, v in figures["panels"][t].items()
        if "error" in v
    }  # fmt: skip
    for name, error in errors.items():
        print(f"ERROR {name}: {error}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
