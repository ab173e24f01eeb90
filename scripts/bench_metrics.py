#!/usr/bin/env python3
"""What a /metrics scrape costs with many workers: event-loop time and exposition size.

    python scripts/bench_metrics.py [--workers 20000] [--series 1000]

A scrape takes a snapshot on the event loop (``take_snapshot``: the part
miners wait for) and builds the exposition on a thread (``render``).  Prints
both times, the exposition's size and its series count, and, as the
baseline measured in the same run, the time of copying the same number of
workers as a list of pairs (the snapshot's previous form).
"""

from __future__ import annotations

import argparse
import time

from stratum_proxy.proxy.stats import WorkerStats
from stratum_proxy.store.record import ShareRecord
from stratum_proxy.web.metrics import render, take_snapshot


def _record(worker: str) -> ShareRecord:
    return ShareRecord(
        ts=0.0, proxy_id="p", upstream="pool", protocol="sv1", channel_id=1, worker=worker,
        miner_addr="10.0.0.1:4000", job_id="1", extranonce2="00", ntime="00", nonce="00",
        version=0, share_hash="", share_difficulty=2.0, pool_difficulty=1.0,
        network_difficulty=1.0, status="accepted", reject_reason="", is_block=False,
        response_ms=1.0,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=20_000)
    parser.add_argument("--series", type=int, default=1000, help="api.max_worker_series")
    parser.add_argument("--rounds", type=int, default=100)
    args = parser.parse_args()
    stats = WorkerStats()
    records = [_record(f"invented-{i}") for i in range(args.workers)]
    for record in records:
        stats.add(record)
    stats.take_interval()  # a minute summary: the workers are in the totals
    for record in records:
        stats.add(record)  # and in the running interval

    started = time.perf_counter()
    for _ in range(args.rounds):
        snapshot = take_snapshot({}, {}, stats)
    loop_ms = (time.perf_counter() - started) * 1000 / args.rounds
    started = time.perf_counter()
    for _ in range(args.rounds):
        list(stats.totals.items()), list(stats.interval.items())
    pairs_ms = (time.perf_counter() - started) * 1000 / args.rounds
    started = time.perf_counter()
    body = render(snapshot, max_worker_series=args.series)
    render_ms = (time.perf_counter() - started) * 1000
    series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    print(
        f"{args.workers} workers: event loop {loop_ms:.3f} ms per scrape "
        f"(lists of pairs: {pairs_ms:.3f} ms, x{pairs_ms / loop_ms:.1f}); "
        f"render on a thread {render_ms:.1f} ms; exposition {len(body)} bytes, {series} series"
    )


if __name__ == "__main__":
    main()
