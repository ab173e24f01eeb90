"""The dashboard: its data endpoints, its event stream, its static page, manual shares.

    GET  /                        the page (static, no data: no token needed)
    GET  /static/...              its scripts, styles and the vendored chart library
    GET  /api/farm?hours=24       every farm panel in one answer
    GET  /api/series?range=1h[&worker=W]   hashrate and shares by verdict over time
    GET  /api/worker?name=W&hours=24       one worker: figures, histograms, shares
    GET  /api/events              Server-Sent Events: ``update`` with the farm panels
    POST /api/shares              record a share that did not pass through the proxy

One ``DashboardFeed`` computes the farm panels once per ``dashboard_refresh_s``
for every open page, and only while a page is open: ten dashboards cost the
store what one does.  The queries are ``store.panels`` and ``store.reports``,
run through the read-only query runner like every other read.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from stratum_proxy.errors import QuerySlotsBusy
from stratum_proxy.store import panels, reports
from stratum_proxy.store.record import STATUS_ACCEPTED, STATUS_REJECTED, ShareRecord
from stratum_proxy.store.schema import SchemaConfig

Query = Callable[[str], Awaitable[bytes]]
_WORKER_FIELDS = tuple(f.name for f in fields(reports.WorkerStats))

STATIC_DIR = Path(str(resources.files("stratum_proxy.web") / "static"))
FARM_HOURS = 24.0  # the window of the farm panels pushed to every page


@dataclass(frozen=True, slots=True, kw_only=True)
class DashboardSource:
    """Where the dashboard's numbers come from.

    In the daemon: the store's query runner plus the live statistics.  For
    ``stratum-proxy dashboard --store``: the store alone (``live`` and
    ``pipeline`` None, no session).
    """

    query: Query
    schema: SchemaConfig | None = None
    live: Callable[[], Mapping[str, Any]] | None = None
    pipeline: Callable[[], Mapping[str, Any]] | None = None
    session_start: float | None = None  # wall time the daemon started
    proxy_id: str | None = None
    down_after_s: float = 600.0


# How long a dashboard query waits for a free query slot before the page
# hears 503: the slots are shared with /api/query users.
_SLOT_WAIT_S = 5.0
_SLOT_RETRY_S = 0.05


class DashboardData:
    """The answers of the data endpoints: the same SQL as ``stats``, by panel.

    Its queries run one at a time (``_lane``): a page asks for several panels
    at once, and the feed refreshes meanwhile, but the store's query slots
    (``api.max_concurrent_queries``) are also for ``/api/query`` users, so the
    dashboard never takes more than one.  A query that finds every slot taken
    waits for one (up to ``_SLOT_WAIT_S``) instead of failing the page.
    """

    def __init__(self, source: DashboardSource) -> None:
        self.source = source
        self._lane = asyncio.Semaphore(1)
        schema = source.schema
        self._best_ever = RunningBest(
            lambda: panels.best_ever_sql(schema),
            lambda since: panels.best_since_sql(since, schema=schema),
        )
        self._best_session: RunningBest | None = None
        start, proxy_id = source.session_start, source.proxy_id
        if start is not None and proxy_id is not None:
            self._best_session = RunningBest(
                lambda: panels.best_since_sql(start, proxy_id, schema=schema),
                lambda since: panels.best_since_sql(since, proxy_id, schema=schema),
            )

    async def query(self, sql: str) -> bytes:
        async with self._lane:
            deadline = time.monotonic() + _SLOT_WAIT_S
            while True:
                try:
                    return await self.source.query(sql)
                except QuerySlotsBusy:
                    if time.monotonic() >= deadline:
                        raise
                await asyncio.sleep(_SLOT_RETRY_S)

    def _status(self, last_ts: float, now: float) -> str:
        return "down" if now - last_ts > self.source.down_after_s else "up"

    async def worker_stats(
        self, hours: float, now: float, worker: str | None = None, *, manual: bool = False
    ) -> list[reports.WorkerStats]:
        """The per-worker rows, parsed on a thread.

        Ten thousand workers take about 75 ms to parse: on the event loop
        that would hold every miner's share for as long (the loop gets its
        turn from a thread every few milliseconds, the GIL's switch interval).
        """
        sql = reports.worker_stats_sql(
            hours, now, worker=worker, manual=manual, schema=self.source.schema
        )
        return await asyncio.to_thread(reports.parse_worker_stats, await self.query(sql))

    async def workers(
        self, hours: float, now: float, worker: str | None = None, *, manual: bool = False
    ) -> dict[str, Any]:
        rows = await self.worker_stats(hours, now, worker, manual=manual)
        return {
            "hours": hours,
            "now": now,
            "down_after_s": self.source.down_after_s,
            "workers": await asyncio.to_thread(self._worker_dicts, rows, now),
        }

    def _worker_dicts(self, rows: list[reports.WorkerStats], now: float) -> list[dict[str, Any]]:
        # Field by field: dataclasses.asdict deep-copies, twice as slow as parsing.
        out = []
        for row in rows:
            entry = {name: getattr(row, name) for name in _WORKER_FIELDS}
            entry["status"] = self._status(row.last_ts, now)
            out.append(entry)
        return out

    async def farm(self, hours: float, now: float) -> dict[str, Any]:
        src, schema = self.source, self.source.schema
        workers = await self.worker_stats(hours, now)
        down = sum(self._status(w.last_ts, now) == "down" for w in workers)
        reasons = panels.parse_reject_reasons(
            await self.query(panels.reject_reasons_sql(hours, now, schema=schema))
        )
        live = dict(src.live()) if src.live is not None else None
        pools = panels.parse_pools(
            await self.query(panels.pools_sql(hours, now, schema=schema)),
            live.get("pools") if live is not None else None,
        )
        luck = panels.parse_luck(await self.query(panels.luck_sql(hours, now, schema=schema)))
        network = luck.pop("network_difficulty")
        ever = await self._best_ever.read(self.query, now)
        session = None
        if self._best_session is not None:
            session = await self._best_session.read(self.query, now)
        candidates = panels.parse_block_candidates(
            await self.query(panels.block_candidates_sql(schema=schema))
        )
        return {
            "now": now,
            "hours": hours,
            "down_after_s": src.down_after_s,
            "totals": reports.share_totals(workers),
            "workers_up": len(workers) - down,
            "workers_down": down,
            "reject_reasons": reasons,
            "pools": pools,
            "best": {
                "session": session,
                "ever": ever,
                "network_difficulty": network,
                "progress_session": session / network if session is not None and network else None,
                "progress_ever": ever / network if network else 0.0,
            },
            "luck": luck,
            "block_candidates": candidates,
            "pipeline": _pipeline(src.pipeline()) if src.pipeline is not None else None,
            "live": (
                {"connections": int(live.get("connections", 0)), "uptime_s": live["uptime_s"]}
                if live is not None
                else None
            ),
        }

    async def series(self, span: panels.SeriesRange, now: float, worker: str | None) -> dict:
        sql = panels.series_sql(span, now, worker=worker, schema=self.source.schema)
        return {**panels.parse_series(await self.query(sql), span, now), "worker": worker}

    async def worker(self, name: str, hours: float, now: float) -> dict[str, Any]:
        schema = self.source.schema
        found = (await self.workers(hours, now, worker=name))["workers"]
        return {
            "worker": name,
            "hours": hours,
            "stats": found[0] if found else None,
            "difficulty_histogram": panels.parse_difficulty_histogram(
                await self.query(panels.difficulty_bins_sql(name, hours, now, schema=schema))
            ),
            "response_histogram": panels.parse_response_histogram(
                await self.query(panels.response_bins_sql(name, hours, now, schema=schema))
            ),
            "best_shares": panels.parse_best_shares(
                await self.query(panels.best_shares_sql(name, hours, now, schema=schema))
            ),
            "recent_shares": reports.parse_recent_shares(
                await self.query(
                    reports.recent_shares_sql(hours, now, 50, worker=name, schema=schema)
                )
            ),
        }


class RunningBest:
    """A best share kept up to date by reading only the recent rows.

    The best share ever (or of the session) is a maximum over every row, the
    costliest figure of a farm refresh at scale (0.4 s at 50 M rows).  It
    only grows, so after one full read each refresh reads the rows since the
    last one, with ``_OVERLAP_S`` to spare for rows that arrive late (the
    queue, the spool after a short outage).  Every ``_FULL_EVERY_S`` a full
    read again catches anything older (a spool replayed after a long outage)
    and a best share that retention or cleanup removed.
    """

    _OVERLAP_S = 600.0
    _FULL_EVERY_S = 900.0

    def __init__(self, full: Callable[[], str], since: Callable[[float], str]) -> None:
        self._full, self._since = full, since
        self.value: float | None = None
        self._checked = 0.0  # wall time the value covers up to
        self._full_at = -math.inf  # monotonic time of the last full read

    async def read(self, query: Query, now: float) -> float:
        if self.value is None or time.monotonic() - self._full_at >= self._FULL_EVERY_S:
            self.value = panels.parse_best(await query(self._full()))
            self._full_at = time.monotonic()
        else:
            recent = panels.parse_best(await query(self._since(self._checked - self._OVERLAP_S)))
            self.value = max(self.value, recent)
        self._checked = now
        return self.value


def _pipeline(stats: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "queue_rows": int(stats.get("queue_depth", 0) or 0),
        "spool_bytes": int(stats.get("spool_bytes", 0) or 0),
        "spool_rows": int(stats.get("spool_rows", 0) or 0),
        "last_write_ts": stats.get("last_write_ts"),
        "rows_shed": int(stats.get("rows_shed", 0) or 0),
        "rows_dead_lettered": int(stats.get("rows_dead_lettered", 0) or 0),
        "store_up": bool(stats.get("store_up")),
    }


_REST_FACTOR = 4.0


class DashboardFeed:
    """The farm panels, computed once per refresh for every subscriber.

    Each subscriber has a one-slot mailbox holding the latest update: a slow
    page skips updates rather than making the feed (or the store) wait.
    """

    def __init__(self, data: DashboardData, refresh_s: float, log: Any) -> None:
        self.data = data
        self.refresh_s = refresh_s
        self.log = log
        self._subscribers: set[asyncio.Queue[bytes]] = set()
        self._task: asyncio.Task[None] | None = None
        self._latest: bytes | None = None
        self._last_error = ""

    def subscribe(self) -> asyncio.Queue[bytes]:
        mailbox: asyncio.Queue[bytes] = asyncio.Queue(maxsize=1)
        if self._latest is not None:
            mailbox.put_nowait(self._latest)  # a new page draws at once
        self._subscribers.add(mailbox)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="dashboard-feed")
        return mailbox

    def unsubscribe(self, mailbox: asyncio.Queue[bytes]) -> None:
        self._subscribers.discard(mailbox)

    async def close(self) -> None:
        self._subscribers.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while self._subscribers:
            started = time.monotonic()
            try:
                farm = await self.data.farm(FARM_HOURS, time.time())
            except Exception as exc:  # the store is down or busy: say so, try again
                error = str(exc) or type(exc).__name__
                if error != self._last_error:  # once per cause, not every refresh
                    self.log.warning("dashboard_refresh_failed", error=error)
                self._last_error = error
                event = _sse("error", {"error": error})
            else:
                if self._last_error:
                    self.log.info("dashboard_refresh_recovered")
                self._last_error = ""
                event = self._latest = _sse("update", {"farm": farm})
            for mailbox in list(self._subscribers):
                if mailbox.full():
                    mailbox.get_nowait()  # drop the update the page has not taken
                mailbox.put_nowait(event)
            # On a big store one refresh takes a while: rest at least
            # ``_REST_FACTOR`` times as long, so open pages never keep the
            # store's query thread busy more than a fifth of the time.
            spent = time.monotonic() - started
            await asyncio.sleep(max(self.refresh_s - spent, _REST_FACTOR * spent))
        self._latest = None  # nobody watching: the next page gets fresh numbers


def _sse(event: str, data: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data, default=str) + b"\n\n"


# Pings keep proxies and browsers from closing a quiet stream.
_PING_S = 15.0


async def event_stream(request: web.Request, feed: DashboardFeed) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # nginx in front: do not hold the events back
        }
    )
    await response.prepare(request)
    mailbox = feed.subscribe()
    try:
        await response.write(b"retry: 2000\n\n")
        while True:
            try:
                event = await asyncio.wait_for(mailbox.get(), _PING_S)
            except TimeoutError:
                event = b": ping\n\n"
            await response.write(event)
    except (ConnectionResetError, asyncio.CancelledError):
        pass  # the page went away; aiohttp cancels the handler
    finally:
        feed.unsubscribe(mailbox)
    return response


# --- manual shares ---------------------------------------------------------------------

MAX_NAME_CHARS = 256
# Further ahead than this is a clock error on the caller's side, not a share.
_FUTURE_S = 300.0
_FIELDS = ("pool_name", "difficulty", "worker_name", "accepted")
_OPTIONAL = ("ts", "reject_reason")


class ManualShareError(ValueError):
    """A manual share refused; the message names the field."""


def _name(body: Mapping[str, Any], field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value.strip():
        raise ManualShareError(f"{field}: expected a non-empty string")
    if len(value) > MAX_NAME_CHARS:
        raise ManualShareError(f"{field}: at most {MAX_NAME_CHARS} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ManualShareError(f"{field}: control characters are not allowed")
    return value


def manual_share(body: Any, *, now: float, proxy_id: str, oldest_s: float) -> ShareRecord:
    """The row of ``POST /api/shares``, or ManualShareError naming the field.

    ``difficulty`` is the difficulty the share was worked at (what the pool
    credits): it goes in ``pool_difficulty`` and ``miner_difficulty``, so the
    hashrate rules treat it as any share.  The share's own difficulty is not
    known (no hash): ``share_difficulty`` is 0 and ``share_hash`` empty.
    """
    if not isinstance(body, dict):
        raise ManualShareError(
            'expected a JSON object {"pool_name", "difficulty", "worker_name", "accepted"}'
        )
    unknown = sorted(set(body) - set(_FIELDS) - set(_OPTIONAL))
    if unknown:
        raise ManualShareError(f"{unknown[0]}: unknown field; expected {', '.join(_FIELDS)}")
    missing = [f for f in _FIELDS if f not in body]
    if missing:
        raise ManualShareError(f"{missing[0]}: missing")
    pool, worker = _name(body, "pool_name"), _name(body, "worker_name")
    difficulty = body["difficulty"]
    if isinstance(difficulty, bool) or not isinstance(difficulty, int | float):
        raise ManualShareError("difficulty: expected a number")
    difficulty = float(difficulty)
    if not math.isfinite(difficulty) or difficulty <= 0:
        raise ManualShareError("difficulty: must be a finite number above 0")
    accepted = body["accepted"]
    if not isinstance(accepted, bool):
        raise ManualShareError("accepted: expected true or false")
    ts = body.get("ts", now)
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
        raise ManualShareError("ts: expected Unix seconds")
    if not now - oldest_s <= ts <= now + _FUTURE_S:
        raise ManualShareError("ts: outside the store's retention or in the future")
    reason = body.get("reject_reason", "")
    if not isinstance(reason, str) or len(reason) > MAX_NAME_CHARS:
        raise ManualShareError(f"reject_reason: expected a string of at most {MAX_NAME_CHARS}")
    if accepted and reason:
        raise ManualShareError("reject_reason: only for a share that was not accepted")
    return ShareRecord(
        ts=float(ts),
        proxy_id=proxy_id,
        upstream=pool,
        protocol="",
        channel_id=0,
        worker=worker,
        miner_addr="",
        job_id="",
        extranonce2="",
        ntime="",
        nonce="",
        version=0,
        share_hash="",
        share_difficulty=0.0,
        pool_difficulty=difficulty,
        network_difficulty=0.0,
        status=STATUS_ACCEPTED if accepted else STATUS_REJECTED,
        reject_reason="" if accepted else reason or "reported rejected",
        is_block=False,
        response_ms=0.0,
        miner_difficulty=difficulty,
        verdict_by="reported",
        manual=True,
    )
