"""The SQL behind each dashboard panel, and the parsing of its answer.

Pure functions: SQL text out, bytes (ClickHouse ``JSONEachRow``) in.  The
daemon's API and ``stratum-proxy dashboard --store`` run them through the
read-only query runner; the figures follow the rules of ``reports`` (its
module docstring), on the same WHERE clause, so the dashboard, the API and
``stats`` agree to the share.

Time series come from the raw ``shares`` table for short ranges (5 min, 1 h:
exact to the second) and for one worker (its rows are one range of the
table's key), and from the per-minute aggregate ``mv_hash_rate_stats`` for
the whole farm over long ones (24 h, 7 d: fewer rows than the shares when
workers submit more than one share a minute).  Both leave manual rows out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import orjson

from stratum_proxy.store.reports import (
    HASHES_PER_DIFFICULTY,
    RECENT_SHARE_COLUMNS,
    as_float,
    as_int,
    hashrate,
    parse_recent_shares,
    to_ms,
    where,
)
from stratum_proxy.store.schema import WORK_DIFFICULTY, SchemaConfig, sql_string


@dataclass(frozen=True, slots=True)
class SeriesRange:
    name: str
    seconds: int
    step_s: int
    from_aggregate: bool  # read mv_hash_rate_stats (minute buckets) instead of shares


RANGES: dict[str, SeriesRange] = {
    r.name: r
    for r in (
        SeriesRange("5m", 300, 10, False),
        SeriesRange("1h", 3600, 60, False),
        SeriesRange("24h", 86400, 600, True),
        SeriesRange("7d", 7 * 86400, 3600, True),
    )
}

# Rejects by kind.  Pools word their reasons freely; the SV1 codes (21 stale,
# 22 duplicate, 23 low difficulty, sv1/codes.py) and the SV2 error codes
# ("stale-share", "difficulty-too-low", "invalid-job-id") are what they agree
# on.  A reason the proxy gave itself (verdict_by = 'proxy') is its own kind.
REJECT_KINDS = ("stale", "duplicate", "low_difficulty", "other", "proxy")
_REJECT_KIND_SQL = r"""multiIf(
        verdict_by = 'proxy', 'proxy',
        match(lower(reject_reason), '^22\\b|duplicate'), 'duplicate',
        match(lower(reject_reason), '^21\\b|stale|job not found|invalid-job|unknown job|old job'),
            'stale',
        match(lower(reject_reason), '^23\\b|low diff|difficulty|above target|high-hash'),
            'low_difficulty',
        'other')"""

_MS_PER_S = 1000


def _shares(schema: SchemaConfig | None) -> str:
    return (schema or SchemaConfig()).table("shares")


# --- farm -----------------------------------------------------------------------------


def reject_reasons_sql(hours: float, now: float, *, schema: SchemaConfig | None = None) -> str:
    return f"""
SELECT {_REJECT_KIND_SQL} AS kind, count() AS n
FROM {_shares(schema)}
WHERE {where(hours, now)} AND status = 'rejected'
GROUP BY kind
FORMAT JSONEachRow"""


def parse_reject_reasons(output: bytes) -> dict[str, int]:
    counts = dict.fromkeys(REJECT_KINDS, 0)
    for row in _rows(output):
        counts[str(row["kind"])] = as_int(row["n"])
    return counts


def pools_sql(hours: float, now: float, *, schema: SchemaConfig | None = None) -> str:
    """Per pool: verdicts, response time quantiles of the answered shares, hashrate."""
    return f"""
SELECT upstream,
    count() AS shares,
    countIf(status = 'accepted') AS accepted,
    countIf(status = 'rejected') AS rejected,
    countIf(status = 'no_response') AS no_response,
    quantilesExactIf(0.5, 0.99)(response_ms, status != 'no_response') AS response_q,
    sumIf({WORK_DIFFICULTY}, status = 'accepted') AS accepted_difficulty,
    toUnixTimestamp64Milli(min(ts)) AS first_ms,
    toUnixTimestamp64Milli(max(ts)) AS last_ms
FROM {_shares(schema)}
WHERE {where(hours, now)}
GROUP BY upstream
ORDER BY upstream
FORMAT JSONEachRow"""


def parse_pools(output: bytes, live: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Rows of ``pools_sql`` with each pool's live status (``live``: /api/stats pools).

    A configured pool with no shares in the window is listed too: a pool that
    is down shows up here exactly when it matters.
    """
    pools: list[dict[str, Any]] = []
    for row in _rows(output):
        shares, accepted = as_int(row["shares"]), as_int(row["accepted"])
        quantiles = row["response_q"] or [0.0, 0.0]
        pools.append(
            {
                "upstream": str(row["upstream"]),
                "shares": shares,
                "accepted": accepted,
                "rejected": as_int(row["rejected"]),
                "no_response": as_int(row["no_response"]),
                "acceptance_pct": 100.0 * accepted / shares if shares else 0.0,
                "p50_ms": as_float(quantiles[0]),
                "p99_ms": as_float(quantiles[1]),
                "hashrate": hashrate(
                    as_float(row["accepted_difficulty"]),
                    shares,
                    as_int(row["first_ms"]) / _MS_PER_S,
                    as_int(row["last_ms"]) / _MS_PER_S,
                ),
            }
        )
    seen = {p["upstream"] for p in pools}
    for name in live or {}:
        if name not in seen:
            pools.append(
                {
                    "upstream": name,
                    **dict.fromkeys(("shares", "accepted", "rejected", "no_response"), 0),
                    **dict.fromkeys(("acceptance_pct", "p50_ms", "p99_ms", "hashrate"), 0.0),
                }
            )
    total = sum(p["hashrate"] for p in pools)
    for pool in pools:
        state = (live or {}).get(pool["upstream"])
        pool["status"] = _pool_status(state)
        pool["last_error"] = "" if state is None else str(state.get("last_error", ""))
        pool["hashrate_pct"] = 100.0 * pool["hashrate"] / total if total else 0.0
    return pools


def _pool_status(state: dict[str, Any] | None) -> str:
    """``up``, ``down``, ``untried`` (a backup nobody needed yet) or ``unknown`` (no daemon)."""
    if state is None:
        return "unknown"
    if not state.get("up", False):
        return "down"  # resting after a failed connect
    return str(state.get("state", "up"))


def luck_sql(hours: float, now: float, *, schema: SchemaConfig | None = None) -> str:
    """Blocks expected from the accepted work, blocks found, the latest network difficulty.

    A share worked at difficulty D is a block with probability D / network
    difficulty (1 when the network's target is the easier one, as on a test
    chain), so the expected number of blocks is the sum of that over the
    accepted shares; a found block is an accepted share whose hash met the
    network target.
    """
    return f"""
SELECT
    sumIf(least(1, {WORK_DIFFICULTY} / network_difficulty),
          status = 'accepted' AND network_difficulty > 0) AS expected_blocks,
    countIf(is_block AND status = 'accepted') AS found_blocks,
    argMaxIf(network_difficulty, ts, network_difficulty > 0) AS latest_network
FROM {_shares(schema)}
WHERE {where(hours, now)}
FORMAT JSONEachRow"""


def parse_luck(output: bytes) -> dict[str, Any]:
    rows = _rows(output)
    row = rows[0] if rows else {}
    expected = as_float(row.get("expected_blocks"))
    found = as_int(row.get("found_blocks", 0))
    return {
        "expected_blocks": expected,
        "found_blocks": found,
        "luck_pct": 100.0 * found / expected if expected > 0 else None,
        "network_difficulty": as_float(row.get("latest_network")),
    }


def best_ever_sql(schema: SchemaConfig | None = None) -> str:
    """The best share the store remembers: the aggregate keeps it longer than the raw rows."""
    cfg = schema or SchemaConfig()
    return f"""
SELECT greatest(
    (SELECT max(best_share) FROM {cfg.table("mv_hash_rate_stats")}),
    (SELECT max(share_difficulty) FROM {cfg.table("shares")} WHERE NOT manual)) AS best
FORMAT JSONEachRow"""


def best_since_sql(
    since: float, proxy_id: str | None = None, *, schema: SchemaConfig | None = None
) -> str:
    """The best share since ``since`` (of one proxy: its start gives the session's best)."""
    proxy = f" AND proxy_id = {sql_string(proxy_id)}" if proxy_id is not None else ""
    return f"""
SELECT max(share_difficulty) AS best
FROM {_shares(schema)}
WHERE ts >= fromUnixTimestamp64Milli({to_ms(since)}, 'UTC'){proxy} AND NOT manual
FORMAT JSONEachRow"""


def parse_best(output: bytes) -> float:
    rows = _rows(output)
    return as_float(rows[0]["best"]) if rows else 0.0


BLOCK_CANDIDATE_COLUMNS = (
    "worker", "upstream", "share_hash", "share_difficulty", "network_difficulty", "status",
    "reject_reason",
)  # fmt: skip


def block_candidates_sql(limit: int = 50, *, schema: SchemaConfig | None = None) -> str:
    """Every share whose hash met the network target, newest first, with the pool's verdict."""
    return f"""
SELECT toUnixTimestamp64Milli(ts) AS ts_ms, {", ".join(BLOCK_CANDIDATE_COLUMNS)}
FROM {_shares(schema)}
WHERE is_block AND NOT manual
ORDER BY ts DESC
LIMIT {int(limit)}
FORMAT JSONEachRow"""


def parse_block_candidates(output: bytes) -> list[dict[str, Any]]:
    out = []
    for row in _rows(output):
        out.append(
            {
                "ts": as_int(row.pop("ts_ms")) / _MS_PER_S,
                **row,
                "share_difficulty": as_float(row["share_difficulty"]),
                "network_difficulty": as_float(row["network_difficulty"]),
            }
        )
    return out


# --- time series ------------------------------------------------------------------------


def series_bounds(span: SeriesRange, now: float) -> tuple[int, int]:
    """First bucket start and the end (exclusive) of the series: whole steps up to now."""
    end = (int(now) // span.step_s + 1) * span.step_s
    return end - span.seconds - span.step_s, end


def series_sql(
    span: SeriesRange, now: float, *, worker: str | None = None, schema: SchemaConfig | None = None
) -> str:
    cfg = schema or SchemaConfig()
    start, end = series_bounds(span, now)
    step = span.step_s
    worker_filter = f" AND worker = {sql_string(worker)}" if worker is not None else ""
    # One worker's rows are a range of ``shares``' (worker, ts) key: reading them
    # beats the aggregate, keyed by minute first (2.3 s against 9 ms at 10,000
    # workers and 50 M rows, scripts/bench_dashboard.py).
    if span.from_aggregate and worker is None:
        return f"""
SELECT intDiv(toUnixTimestamp(period_start), {step}) * {step} AS t,
    sum(total_hashes) AS hashes,
    sum(accepted_count) AS accepted,
    sum(rejected_count) AS rejected,
    sum(share_count) - sum(accepted_count) - sum(rejected_count) AS no_response
FROM {cfg.table("mv_hash_rate_stats")}
WHERE period_start >= toDateTime({start}, 'UTC') AND period_start < toDateTime({end}, 'UTC')
    {worker_filter}
GROUP BY t
ORDER BY t
FORMAT JSONEachRow"""
    return f"""
SELECT intDiv(toUnixTimestamp(ts), {step}) * {step} AS t,
    sumIf({WORK_DIFFICULTY}, status = 'accepted') * {HASHES_PER_DIFFICULTY} AS hashes,
    countIf(status = 'accepted') AS accepted,
    countIf(status = 'rejected') AS rejected,
    countIf(status = 'no_response') AS no_response
FROM {cfg.table("shares")}
WHERE ts >= fromUnixTimestamp64Milli({start * _MS_PER_S}, 'UTC')
    AND ts < fromUnixTimestamp64Milli({end * _MS_PER_S}, 'UTC') AND NOT manual{worker_filter}
GROUP BY t
ORDER BY t
FORMAT JSONEachRow"""


def parse_series(output: bytes, span: SeriesRange, now: float) -> dict[str, Any]:
    """Column arrays, one entry per bucket, empty buckets included (uPlot's layout).

    Hashrate of a bucket = its accepted work / its length; the bucket still
    running is divided by the time it has run, not by a whole step.
    """
    start, end = series_bounds(span, now)
    step = span.step_s
    times = list(range(start, end, step))
    index = {t: i for i, t in enumerate(times)}
    hashes = [0.0] * len(times)
    counts = {name: [0] * len(times) for name in ("accepted", "rejected", "no_response")}
    for row in _rows(output):
        i = index.get(as_int(row["t"]))
        if i is None:
            continue
        hashes[i] = as_float(row["hashes"])
        for name, values in counts.items():
            values[i] = as_int(row[name])
    hashrate = [h / max(1.0, min(step, now - t)) for h, t in zip(hashes, times, strict=True)]
    return {
        "range": span.name,
        "step_s": step,
        "from": float(start),
        "to": now,
        "t": times,
        "hashrate": hashrate,
        **counts,
    }


# --- one worker -------------------------------------------------------------------------

BINS_PER_DECADE = 4


def difficulty_bins_sql(
    worker: str, hours: float, now: float, *, schema: SchemaConfig | None = None
) -> str:
    """Shares by log bin of their own difficulty, and by the difficulty they were asked for."""
    return f"""
SELECT 'share' AS what, toInt32(floor(log10(share_difficulty) * {BINS_PER_DECADE})) AS key,
    count() AS n
FROM {_shares(schema)}
WHERE {where(hours, now, worker=worker)} AND share_hash != '' AND share_difficulty > 0
GROUP BY key
UNION ALL
SELECT 'target' AS what, {WORK_DIFFICULTY} AS key, count() AS n
FROM {_shares(schema)}
WHERE {where(hours, now, worker=worker)} AND share_hash != '' AND share_difficulty > 0
    AND {WORK_DIFFICULTY} > 0
GROUP BY key
ORDER BY n DESC
LIMIT 2000
FORMAT JSONEachRow"""


def parse_difficulty_histogram(output: bytes) -> dict[str, list[float]]:
    """Bins 10^(k/4) wide; ``expected`` is what honest hashing at the asked difficulty gives.

    A share asked for at difficulty D has P(difficulty >= x) = D / x for x >= D
    (its hash is uniform below the target), so of N such shares a bin [a, b)
    expects N * (min(1, D/a) - min(1, D/b)).  Shares below D (the pool refuses
    them) fall outside that curve: the gap shows a miner hashing wrong.
    """
    observed: dict[int, int] = {}
    targets: dict[float, int] = {}
    for row in _rows(output):
        if row["what"] == "share":
            observed[int(as_float(row["key"]))] = as_int(row["n"])
        else:
            targets[as_float(row["key"])] = targets.get(as_float(row["key"]), 0) + as_int(row["n"])
    if not observed:
        return {"edges": [], "counts": [], "expected": []}
    low = min(observed)
    low = min([low, *(math.floor(math.log10(d) * BINS_PER_DECADE) for d in targets)])
    high = max(observed) + 1
    keys = range(low, high)
    edges = [10 ** (k / BINS_PER_DECADE) for k in range(low, high + 1)]
    expected = []
    for k in keys:
        a, b = edges[k - low], edges[k - low + 1]
        expected.append(sum(n * (min(1.0, d / a) - min(1.0, d / b)) for d, n in targets.items()))
    return {"edges": edges, "counts": [observed.get(k, 0) for k in keys], "expected": expected}


def response_bins_sql(
    worker: str, hours: float, now: float, *, schema: SchemaConfig | None = None
) -> str:
    """Answered shares by their pool's response time, in bins of powers of two ms."""
    return f"""
SELECT toInt32(floor(log2(greatest(response_ms, 1)))) AS key, count() AS n
FROM {_shares(schema)}
WHERE {where(hours, now, worker=worker)} AND status != 'no_response'
GROUP BY key
ORDER BY key
FORMAT JSONEachRow"""


def parse_response_histogram(output: bytes) -> dict[str, list[float]]:
    """Edges in ms: [0, 2), [2, 4), [4, 8), ...; the first bin takes everything under 2 ms."""
    counts = {as_int(row["key"]): as_int(row["n"]) for row in _rows(output)}
    if not counts:
        return {"edges": [], "counts": []}
    high = max(counts) + 1
    edges = [0.0] + [float(2**k) for k in range(1, high + 1)]
    return {"edges": edges, "counts": [counts.get(k, 0) for k in range(high)]}


def best_shares_sql(
    worker: str, hours: float, now: float, limit: int = 10, *, schema: SchemaConfig | None = None
) -> str:
    return f"""
SELECT toUnixTimestamp64Milli(ts) AS ts_ms, {", ".join(RECENT_SHARE_COLUMNS)}
FROM {_shares(schema)}
WHERE {where(hours, now, worker=worker)} AND share_hash != ''
ORDER BY share_difficulty DESC, ts DESC
LIMIT {int(limit)}
FORMAT JSONEachRow"""


parse_best_shares = parse_recent_shares


def _rows(output: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in output.splitlines() if line.strip()]
