"""The read-side commands: ``stratum-proxy stats`` and ``stratum-proxy cleanup``.

Both take anything with ``query(sql) -> bytes`` (a ``Store``, or a running
daemon's API) and speak plain SQL, so they work the same on the
embedded engine and on a server.

The rules, per worker, over the shares in the window:

* acceptance % = accepted / all shares (accepted + rejected + no_response),
  0 when there are none.  A share the pool never answered is not accepted:
  leaving it out would show 100 % for a worker whose shares go unanswered.
* hashrate (DESIGN.md) = sum(difficulty of accepted shares) * 2^32 / span,
  where a share's difficulty is the one the miner was asked for
  (``schema.WORK_DIFFICULTY``: the pool's, but the proxy's own vardiff in
  aggregate mode), never the share's own difficulty (biased: a lucky share is
  not more work).  ``span`` is the time the worker's shares in the window cover, last
  share's ``ts`` minus first share's ``ts``, and at least 1 s (a burst within
  a second has no span to measure); a worker with a single share in the
  window has no measurable hashrate and shows 0.  The figure therefore
  does not depend on ``now``: it does not keep falling after the miners stop,
  and a worker that joined ten minutes ago is averaged over ten minutes.
* Manual rows (``POST /api/shares``, ``manual = true``) are left out of every
  figure unless ``manual=True`` is asked for: they were not measured.
* ``is_block`` means the share's hash meets the network target, not that a
  block was found: the pool may still have rejected it (stale, say).  Those
  shares are *block candidates*; each report gives how many there were and
  how many of them the pool accepted.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Protocol

import orjson

from stratum_proxy.errors import ConfigError
from stratum_proxy.store.schema import WORK_DIFFICULTY, SchemaConfig, sql_string


class Queryable(Protocol):
    """What the reports need of a store: ClickHouse's output for a query."""

    def query(self, sql: str) -> bytes: ...


HASHES_PER_DIFFICULTY = 2**32
# The shortest span a hashrate is divided by: one share (or a burst inside a
# second) has no measurable span, and dividing by zero is not an answer.
MIN_SPAN_S = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerStats:
    worker: str
    shares: int
    accepted: int
    rejected: int
    no_response: int
    acceptance_pct: float  # accepted / shares: an unanswered share counts against it
    best_share: float
    avg_pool_difficulty: float
    avg_share_difficulty: float  # of the shares whose hash could be computed
    block_candidates: int  # shares whose hash meets the network target (is_block)
    block_candidates_accepted: int  # of those, the ones the pool accepted
    block_candidates_rejected: int  # ... rejected; the rest went unanswered
    hashrate: float  # hashes per second over the span of the shares (module docstring)
    first_ts: float
    last_ts: float


def to_ms(ts: float) -> int:
    return round(ts * 1000)


def hashrate(accepted_difficulty: float, shares: int, first_ts: float, last_ts: float) -> float:
    """H/s by the module docstring's rule: accepted work over the span of the shares.

    One share spans no time: its work per second is unknowable, not huge.
    """
    if shares <= 1:
        return 0.0
    return accepted_difficulty * HASHES_PER_DIFFICULTY / max(MIN_SPAN_S, last_ts - first_ts)


def worker_stats(
    store: Queryable, hours: float, now: float, *, schema: SchemaConfig | None = None
) -> list[WorkerStats]:
    """Per-worker numbers over the last ``hours`` before ``now`` (Unix seconds).

    Only the shares with ``ts`` in the window count, for every figure; the
    rules for acceptance % and hashrate are in the module docstring.
    """
    return parse_worker_stats(store.query(worker_stats_sql(hours, now, schema=schema)))


def _window(hours: float, now: float) -> str:
    start = now - hours * 3600
    return (
        f"ts >= fromUnixTimestamp64Milli({to_ms(start)}, 'UTC') "
        f"AND ts <= fromUnixTimestamp64Milli({to_ms(now)}, 'UTC')"
    )


def _worker_filter(worker: str | None) -> str:
    return f" AND worker = {sql_string(worker)}" if worker is not None else ""


def _manual_filter(manual: bool) -> str:
    return "" if manual else " AND NOT manual"


def where(hours: float, now: float, *, worker: str | None = None, manual: bool = False) -> str:
    """The rows of a window (and a worker): the WHERE clause every report shares."""
    return f"{_window(hours, now)}{_worker_filter(worker)}{_manual_filter(manual)}"


def worker_stats_sql(
    hours: float,
    now: float,
    *,
    worker: str | None = None,
    manual: bool = False,
    schema: SchemaConfig | None = None,
) -> str:
    """The per-worker query behind ``stats``, the API and the dashboard: one definition."""
    cfg = schema or SchemaConfig()
    return f"""
SELECT worker,
    count() AS shares,
    countIf(status = 'accepted') AS accepted,
    countIf(status = 'rejected') AS rejected,
    countIf(status = 'no_response') AS no_response,
    max(share_difficulty) AS best_share,
    avg(pool_difficulty) AS avg_pool_difficulty,
    ifNotFinite(avgIf(share_difficulty, share_hash != ''), 0) AS avg_share_difficulty,
    countIf(is_block) AS block_candidates,
    countIf(is_block AND status = 'accepted') AS block_candidates_accepted,
    countIf(is_block AND status = 'rejected') AS block_candidates_rejected,
    sumIf({WORK_DIFFICULTY}, status = 'accepted') AS accepted_difficulty,
    toUnixTimestamp64Milli(min(ts)) AS first_ms,
    toUnixTimestamp64Milli(max(ts)) AS last_ms
FROM {cfg.table("shares")}
WHERE {where(hours, now, worker=worker, manual=manual)}
GROUP BY worker
ORDER BY worker
FORMAT JSONEachRow"""


def parse_worker_stats(output: bytes) -> list[WorkerStats]:
    return [_worker_row(orjson.loads(line)) for line in output.splitlines() if line]


def share_totals(rows: list[WorkerStats]) -> dict[str, float | int]:
    """Farm (or one worker's) totals from the per-worker rows, by the same rules."""
    shares = sum(r.shares for r in rows)
    accepted = sum(r.accepted for r in rows)
    computed = [(r.avg_share_difficulty, r.shares) for r in rows if r.avg_share_difficulty]
    weight = sum(n for _, n in computed)
    return {
        "total_shares": shares,
        "accepted_shares": accepted,
        "rejected_shares": sum(r.rejected for r in rows),
        "no_response_shares": sum(r.no_response for r in rows),
        "acceptance_pct": 100.0 * accepted / shares if shares else 0.0,
        "best_share": max((r.best_share for r in rows), default=0.0),
        # Weighted by each worker's share count (approximate where a worker had
        # shares whose hash could not be computed).
        "avg_difficulty": sum(d * n for d, n in computed) / weight if weight else 0.0,
        "hashrate": sum(r.hashrate for r in rows),
        "block_candidates": sum(r.block_candidates for r in rows),
        "block_candidates_accepted": sum(r.block_candidates_accepted for r in rows),
        "workers": len(rows),
    }


# The columns ``GET /api/shares`` returns, newest share first.
RECENT_SHARE_COLUMNS = (
    "worker", "upstream", "job_id", "share_hash", "share_difficulty", "pool_difficulty",
    "miner_difficulty", "network_difficulty", "status", "reject_reason", "verdict_by",
    "forwarded", "is_block", "response_ms", "connection_id", "manual",
)  # fmt: skip


def recent_shares_sql(
    hours: float,
    now: float,
    limit: int,
    *,
    worker: str | None = None,
    manual: bool = False,
    schema: SchemaConfig | None = None,
) -> str:
    cfg = schema or SchemaConfig()
    return f"""
SELECT toUnixTimestamp64Milli(ts) AS ts_ms, {", ".join(RECENT_SHARE_COLUMNS)}
FROM {cfg.table("shares")}
WHERE {where(hours, now, worker=worker, manual=manual)}
ORDER BY ts DESC, share_hash  -- a tie within a millisecond: a fixed order
LIMIT {int(limit)}
FORMAT JSONEachRow"""


def parse_recent_shares(output: bytes) -> list[dict[str, object]]:
    rows = []
    for line in output.splitlines():
        if not line:
            continue
        row = orjson.loads(line)
        row["connection_id"] = as_int(row["connection_id"])
        for name in ("share_difficulty", "pool_difficulty", "miner_difficulty"):
            row[name] = as_float(row[name])
        row["network_difficulty"] = as_float(row["network_difficulty"])
        row["response_ms"] = as_float(row["response_ms"])
        rows.append({"ts": as_int(row.pop("ts_ms")) / 1000, **row})
    return rows


def _worker_row(row: dict[str, object]) -> WorkerStats:
    shares, accepted = as_int(row["shares"]), as_int(row["accepted"])
    first_ts, last_ts = as_int(row["first_ms"]) / 1000, as_int(row["last_ms"]) / 1000
    return WorkerStats(
        worker=str(row["worker"]),
        shares=shares,
        accepted=accepted,
        rejected=as_int(row["rejected"]),
        no_response=as_int(row["no_response"]),
        acceptance_pct=100.0 * accepted / shares if shares else 0.0,
        best_share=as_float(row["best_share"]),
        avg_pool_difficulty=as_float(row["avg_pool_difficulty"]),
        avg_share_difficulty=as_float(row["avg_share_difficulty"]),
        block_candidates=as_int(row["block_candidates"]),
        block_candidates_accepted=as_int(row["block_candidates_accepted"]),
        block_candidates_rejected=as_int(row["block_candidates_rejected"]),
        hashrate=hashrate(as_float(row["accepted_difficulty"]), shares, first_ts, last_ts),
        first_ts=first_ts,
        last_ts=last_ts,
    )


def as_int(value: object) -> int:
    return int(str(value))  # UInt64 comes quoted in JSONEachRow


def as_float(value: object) -> float:
    # No SETTINGS clause here (the daemon's read-only API refuses them), so
    # 64-bit integers may come quoted and a nan as null.
    if value is None:
        return 0.0
    result = float(str(value))
    return result if math.isfinite(result) else 0.0


def stats_report(
    store: Queryable,
    hours: float,
    now: float,
    *,
    as_json: bool = False,
    schema: SchemaConfig | None = None,
) -> str:
    """``stratum-proxy stats``: a table per worker (or JSON lines) over the last ``hours``."""
    rows = worker_stats(store, hours, now, schema=schema)
    if as_json:
        return "".join(orjson.dumps(asdict(r)).decode() + "\n" for r in rows)
    return render_table(rows, hours, now)


def render_table(rows: list[WorkerStats], hours: float, now: float) -> str:
    """The ``stats`` table: one line per worker, then the total hashrate.

    ``candidates`` are the shares meeting the network target (not blocks found);
    ``candidates_accepted`` says how many of them the pool accepted.
    """
    since = datetime.fromtimestamp(now - hours * 3600, UTC).strftime("%Y-%m-%d %H:%M:%S")
    header = (
        "worker",
        "shares",
        "accepted",
        "rejected",
        "no_response",
        "accept %",
        "best share",
        "avg pool diff",
        "candidates",
        "candidates_accepted",
        "hashrate",
    )
    lines = [
        (
            r.worker,
            str(r.shares),
            str(r.accepted),
            str(r.rejected),
            str(r.no_response),
            f"{r.acceptance_pct:.2f}",
            si(r.best_share),
            si(r.avg_pool_difficulty),
            str(r.block_candidates),
            str(r.block_candidates_accepted),
            si(r.hashrate, "H/s"),
        )
        for r in rows
    ]
    if not lines:
        return f"no shares since {since} UTC ({hours:g} h)\n"
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]

    def fmt(row: tuple[str, ...]) -> str:
        first = row[0].ljust(widths[0])
        return "  ".join(
            [first] + [cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True)]
        )

    total = sum(r.hashrate for r in rows)
    out = [f"shares since {since} UTC ({hours:g} h), {len(rows)} workers", fmt(header)]
    out += [fmt(row) for row in lines]
    out.append(f"total hashrate {si(total, 'H/s')}")
    return "\n".join(out) + "\n"


_PREFIXES = ("", "k", "M", "G", "T", "P", "E", "Z")


def si(value: float, unit: str = "") -> str:
    """3 significant digits with an SI prefix: 1234567 -> '1.23M'."""
    if value == 0 or not math.isfinite(value):
        return f"0{' ' + unit if unit else ''}"
    exponent = min(int(math.log10(abs(value)) // 3), len(_PREFIXES) - 1) if abs(value) >= 1 else 0
    scaled = value / 1000**exponent
    number = f"{scaled:.3g}" if abs(scaled) < 1000 else f"{scaled:.0f}"
    return f"{number}{' ' if unit else ''}{_PREFIXES[exponent]}{unit}"


def cleanup(
    store: Queryable, days: float, now: float, *, schema: SchemaConfig | None = None
) -> int:
    """Delete ``shares`` rows older than ``days`` before ``now``; returns how many.

    Whole days older than the cutoff go with ``DROP PARTITION`` (instant, frees
    the disk at once); the rest of the cutoff day with ``ALTER TABLE ... DELETE``
    (a mutation rewriting that one partition, waited for).  The aggregates keep
    their own, longer, TTL and are not touched.
    """
    if not days > 0:
        raise ConfigError(f"cleanup --days must be a positive number of days, got {days!r}")
    cfg = schema or SchemaConfig()
    cutoff = f"fromUnixTimestamp64Milli({to_ms(now - days * 86400)}, 'UTC')"
    shares = cfg.table("shares")
    count = int(store.query(f"SELECT count() FROM {shares} WHERE ts < {cutoff}").strip() or 0)
    if count == 0:
        return 0
    whole_days = store.query(
        f"SELECT DISTINCT toYYYYMMDD(ts) FROM {shares} "
        f"WHERE ts < {cutoff} AND toDate(ts) < toDate({cutoff}) ORDER BY 1"
    ).split()
    for day in whole_days:
        store.query(
            f"ALTER TABLE {cfg.local('shares')}{cfg.on_cluster} DROP PARTITION ID '{int(day)}'"
        )
    store.query(
        f"ALTER TABLE {cfg.local('shares')}{cfg.on_cluster} DELETE WHERE ts < {cutoff} "
        "SETTINGS mutations_sync = 2"
    )
    return count
