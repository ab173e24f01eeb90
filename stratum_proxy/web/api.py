"""The HTTP API: aiohttp on the daemon's event loop.

    GET  /livez        200 "ok" while the process serves HTTP
    GET  /healthz      200 {"status":"ok"} or 503 {"status":"degraded","reasons":[...]}
    GET  /metrics      Prometheus exposition (prometheus_client)
    GET  /api/stats    the proxy's and the pipeline's statistics (JSON)
    POST /api/query    read-only SQL as the body; the engine's own output
    POST /api/cleanup  {"days": N} -> {"deleted": n}; Content-Type: application/json
    GET  /api/workers?hours=24               every worker's figures (as ``stats --json``)
    GET  /api/share-stats?hours=24[&worker=] totals: shares by verdict, best, hashrate, ...
    GET  /api/shares?hours=24&limit=100[&worker=]  the latest shares, newest first
    POST /api/shares   a share that did not pass through the proxy (marked manual)
    GET  /, /static/*, /api/farm, /api/series, /api/worker, /api/events: the dashboard
         (``dashboard``)

Who may call what is ``auth`` (Host, Origin, bearer token); how many
connections and how slowly is ``guard``.  Queries run in the store's
``QueryRunner`` (its own connection and thread, never the writer's), which also
bounds how many run at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST

from stratum_proxy.errors import (
    ConfigError,
    QueryBusy,
    QueryInvalid,
    QueryRefused,
    QueryTimeout,
    StoreError,
)
from stratum_proxy.proxy.stats import WorkerStats
from stratum_proxy.store import panels, reports
from stratum_proxy.store.record import ShareRecord
from stratum_proxy.store.schema import SchemaConfig
from stratum_proxy.web.auth import auth_middleware
from stratum_proxy.web.dashboard import (
    STATIC_DIR,
    DashboardData,
    DashboardFeed,
    DashboardSource,
    ManualShareError,
    event_stream,
    manual_share,
)
from stratum_proxy.web.guard import ConnectionGuard, guard_middleware
from stratum_proxy.web.health import judge_health
from stratum_proxy.web.metrics import render, take_snapshot
from stratum_proxy.web.tokens import ApiTokens

# Time for handlers still running when the API closes; then they are cancelled
# (a query still running is then cancelled by QueryRunner.close).
_SHUTDOWN_TIMEOUT_S = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiBackend:
    """What the API reads and calls; every callable but the two async ones is cheap."""

    proxy_stats: Callable[[], Mapping[str, Any]]
    pipeline_stats: Callable[[], Mapping[str, Any]]
    workers: WorkerStats
    spool_max_bytes: int
    query: Callable[[str], Awaitable[bytes]] | None = None
    cleanup: Callable[[int], Awaitable[int]] | None = None
    # POST /api/shares: hand a row to the pipeline; False when it had to shed it.
    record_share: Callable[[ShareRecord], bool] | None = None
    schema: SchemaConfig | None = None
    proxy_id: str = ""
    session_start: float | None = None  # wall time the daemon started
    retention_days: float = 30.0
    # False for ``stratum-proxy dashboard --store``: a store and no daemon, so
    # only the read side and the dashboard are served.
    daemon: bool = True


class ApiServer:
    def __init__(self, *, settings: Any, tokens: ApiTokens, backend: ApiBackend, log: Any) -> None:
        self.settings = settings
        self.tokens = tokens
        self.backend = backend
        self.log = log
        self.guard = ConnectionGuard(
            max_connections=settings.max_connections,
            header_timeout_s=settings.header_timeout_s,
            log=log,
        )
        self._metrics_lock = asyncio.Lock()  # one exposition built at a time
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self.data: DashboardData | None = None
        self.feed: DashboardFeed | None = None
        if backend.query is not None:
            self.data = DashboardData(
                DashboardSource(
                    query=backend.query,
                    schema=backend.schema,
                    live=backend.proxy_stats if backend.daemon else None,
                    pipeline=backend.pipeline_stats if backend.daemon else None,
                    session_start=backend.session_start,
                    proxy_id=backend.proxy_id or None,
                    down_after_s=settings.worker_down_after_s,
                )
            )
            self.feed = DashboardFeed(self.data, settings.dashboard_refresh_s, log)

    def build_app(self) -> web.Application:
        app = web.Application(
            client_max_size=self.settings.max_body_bytes,
            middlewares=[
                guard_middleware(self.guard),
                auth_middleware(self.tokens, self.settings.allowed_hosts),
            ],
        )
        app.router.add_get("/livez", self._livez)
        if self.backend.daemon:
            app.router.add_get("/healthz", self._healthz)
            app.router.add_get("/metrics", self._metrics)
            app.router.add_get("/api/stats", self._stats)
            app.router.add_post("/api/cleanup", self._cleanup)
        app.router.add_post("/api/query", self._query)
        app.router.add_get("/api/workers", self._workers)
        app.router.add_get("/api/share-stats", self._share_stats)
        app.router.add_get("/api/shares", self._shares)
        app.router.add_post("/api/shares", self._record_share)
        app.router.add_get("/api/farm", self._farm)
        app.router.add_get("/api/series", self._series)
        app.router.add_get("/api/worker", self._worker)
        app.router.add_get("/api/events", self._events)
        app.router.add_get("/", self._index)
        if STATIC_DIR.is_dir():  # missing only from a package built without its data files
            app.router.add_static("/static", STATIC_DIR, follow_symlinks=False)
            app.on_response_prepare.append(_revalidate_static)
        return app

    async def start(self, host: str, port: int) -> tuple[str, int]:
        api = self.settings
        self._runner = web.AppRunner(
            self.build_app(),
            access_log=None,  # request lines may carry what we refuse to log
            logger=_aiohttp_logger(self.log),
            handler_cancellation=True,  # a client that hangs up cancels its request
            shutdown_timeout=_SHUTDOWN_TIMEOUT_S,
            max_line_size=api.max_header_bytes,
            max_field_size=api.max_header_bytes,
            lingering_time=api.header_timeout_s,
        )
        await self._runner.setup()
        aiohttp_protocol = self._runner.server
        assert aiohttp_protocol is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self.guard.protocol_factory(aiohttp_protocol), host, port, reuse_address=True
        )
        address = self._server.sockets[0].getsockname()[:2]
        self.log.info(
            "api_listening",
            address=f"{address[0]}:{address[1]}",
            token_required=self.tokens.required,
        )
        return address[0], address[1]

    async def close(self) -> None:
        if self.feed is not None:
            await self.feed.close()
        if self._server is not None:
            self._server.close()
        if self._runner is not None:
            await self._runner.cleanup()
        self.guard.close_all()
        self._server = self._runner = None

    def statistics(self) -> dict[str, int]:
        return self.guard.statistics()

    # -- handlers -------------------------------------------------------------------

    async def _livez(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _healthz(self, request: web.Request) -> web.Response:
        reasons = judge_health(
            self.backend.proxy_stats(),
            self.backend.pipeline_stats(),
            api=self.settings,
            spool_max_bytes=self.backend.spool_max_bytes,
            now=time.time(),
        )
        if reasons:
            return _json({"status": "degraded", "reasons": reasons}, status=503)
        return _json({"status": "ok"})

    async def _stats(self, request: web.Request) -> web.Response:
        return _json(
            {
                "proxy": self.backend.proxy_stats(),
                "pipeline": self.backend.pipeline_stats(),
                "api": self.statistics(),
            }
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        backend = self.backend
        snapshot = take_snapshot(
            backend.proxy_stats(), backend.pipeline_stats(), backend.workers, self.statistics()
        )
        async with self._metrics_lock:
            body = await asyncio.to_thread(render, snapshot, self.settings.max_worker_series)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _query(self, request: web.Request) -> web.Response:
        body = await self._read_body(request)
        try:
            sql = body.decode("utf-8").strip()
        except UnicodeDecodeError:
            return _text(400, "the SQL must be UTF-8 text")
        if not sql:
            return _text(400, "POST the SQL as the request body")
        if self.backend.query is None:
            return _text(503, "no store to query")
        try:
            result = await self.backend.query(sql)
        except Exception as exc:
            return self._failed(exc, "query")
        return web.Response(body=result, content_type="application/octet-stream")

    async def _cleanup(self, request: web.Request) -> web.Response:
        # A browser can only send application/json cross-site after a CORS
        # preflight, which this API never grants.
        if request.content_type != "application/json":
            return _text(415, 'send {"days": N} with Content-Type: application/json')
        body = await self._read_body(request)
        try:
            days = orjson.loads(body).get("days")
        except (orjson.JSONDecodeError, AttributeError):
            days = None
        if isinstance(days, bool) or not isinstance(days, int) or days < 1:
            return _text(400, 'expected {"days": N} with N a whole number of days, at least 1')
        if self.backend.cleanup is None:
            return _text(503, "no store to clean up")
        try:
            deleted = await self.backend.cleanup(days)
        except Exception as exc:
            return self._failed(exc, "cleanup")
        return _json({"deleted": deleted})

    # -- share tracking (the same queries as ``stats`` and the dashboard) ----------------

    async def _workers(self, request: web.Request) -> web.Response:
        return await self._read_side(request, _workers_answer)

    async def _share_stats(self, request: web.Request) -> web.Response:
        return await self._read_side(request, _share_stats_answer)

    async def _shares(self, request: web.Request) -> web.Response:
        return await self._read_side(request, _shares_answer)

    async def _farm(self, request: web.Request) -> web.Response:
        return await self._read_side(request, _farm_answer, allowed=("hours",))

    async def _series(self, request: web.Request) -> web.Response:
        return await self._read_side(request, _series_answer, allowed=("range", "worker"))

    async def _worker(self, request: web.Request) -> web.Response:
        return await self._read_side(request, _worker_answer, allowed=("name", "hours"))

    async def _read_side(
        self,
        request: web.Request,
        answer: Callable[..., Awaitable[Any]],
        allowed: tuple[str, ...] = ("hours", "limit", "worker", "manual"),
    ) -> web.Response:
        try:
            params = _read_params(request.query, allowed)
        except ValueError as exc:
            return _text(400, str(exc))
        if self.backend.query is None or self.data is None:
            return _text(503, "no store to query")
        try:
            value = await answer(self.data.query, time.time(), data=self.data, **params)
            # Ten thousand workers are megabytes of JSON: encoded off the event loop.
            body = await asyncio.to_thread(orjson.dumps, value, default=str)
            return web.Response(body=body, content_type="application/json")
        except Exception as exc:
            return self._failed(exc, "read")

    async def _events(self, request: web.Request) -> web.StreamResponse:
        if self.feed is None:
            return _text(503, "no store to query")
        return await event_stream(request, self.feed)

    async def _index(self, request: web.Request) -> web.StreamResponse:
        index = STATIC_DIR / "index.html"
        if not index.is_file():
            return _text(404, "the dashboard's files are not installed with this package")
        return web.FileResponse(index, headers={"Cache-Control": "no-cache"})

    async def _record_share(self, request: web.Request) -> web.Response:
        # As /api/cleanup: only a same-origin page or a tool can send JSON.
        if request.content_type != "application/json":
            return _text(415, "send the share as JSON with Content-Type: application/json")
        if self.backend.record_share is None:
            return _text(503, "this server only reads: no daemon to record the share")
        body = await self._read_body(request)
        try:
            record = manual_share(
                orjson.loads(body),
                now=time.time(),
                proxy_id=self.backend.proxy_id,
                oldest_s=self.backend.retention_days * 86400,
            )
        except orjson.JSONDecodeError:
            return _text(400, "the body is not JSON")
        except ManualShareError as exc:
            return _text(400, str(exc))
        if not self.backend.record_share(record):
            full = "not recorded: the store and the spool are full"
            return _text(503, full, **{"Retry-After": "5"})
        self.log.info(
            "manual_share_recorded",
            worker=record.worker,
            pool=record.upstream,
            difficulty=record.pool_difficulty,
            status=record.status,
        )
        return _json({"recorded": _manual_summary(record)}, status=201)

    async def _read_body(self, request: web.Request) -> bytes:
        """The whole body within ``header_timeout_s``; 413 past ``max_body_bytes``."""
        limit = self.settings.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise web.HTTPRequestEntityTooLarge(
                max_size=limit, actual_size=request.content_length, text="body too large\n"
            )
        try:
            async with asyncio.timeout(self.settings.header_timeout_s):
                return await request.read()  # aiohttp answers 413 past client_max_size
        except TimeoutError:
            raise web.HTTPRequestTimeout(text="the request body came too slowly\n") from None

    def _failed(self, exc: Exception, what: str) -> web.Response:
        """The HTTP answer for a failed query or cleanup."""
        if isinstance(exc, QueryRefused):
            return _text(403, str(exc))
        if isinstance(exc, QueryInvalid | ConfigError):
            return _text(400, str(exc))
        if isinstance(exc, QueryBusy):
            return _text(503, str(exc), **{"Retry-After": "1"})
        if isinstance(exc, QueryTimeout):
            return _text(504, str(exc))
        if isinstance(exc, StoreError):
            if exc.retryable:
                return _text(503, str(exc), **{"Retry-After": "5"})
            return _text(400, str(exc))
        self.log.error(f"api_{what}_failed", error=repr(exc))
        return _text(500, f"internal error: {type(exc).__name__}")


_MAX_HOURS = 24 * 400
_MAX_LIMIT = 10_000
_MAX_WORKER_CHARS = 256


def _read_params(query: Mapping[str, str], allowed: tuple[str, ...]) -> dict[str, Any]:
    """The query string's parameters, checked; ValueError names the field."""
    unknown = set(query) - set(allowed)
    if unknown:
        raise ValueError(f"unknown parameter {sorted(unknown)[0]!r}: use {', '.join(allowed)}")
    params: dict[str, Any] = {}
    if "hours" in allowed:
        try:
            params["hours"] = float(query.get("hours", "24"))
        except ValueError:
            raise ValueError("hours: expected a number of hours, e.g. hours=24") from None
        if not 0 < params["hours"] <= _MAX_HOURS:
            raise ValueError(f"hours: must be above 0 and at most {_MAX_HOURS}")
    if "limit" in allowed:
        try:
            params["limit"] = int(query.get("limit", "100"))
        except ValueError:
            raise ValueError("limit: expected a whole number, e.g. limit=100") from None
        if not 1 <= params["limit"] <= _MAX_LIMIT:
            raise ValueError(f"limit: must be 1 to {_MAX_LIMIT}")
    for name in ("worker", "name"):
        if name in allowed:
            value = query.get(name)
            if value is not None and (not value or len(value) > _MAX_WORKER_CHARS):
                raise ValueError(f"{name}: must be 1 to {_MAX_WORKER_CHARS} characters")
            params[name] = value
    if "name" in allowed and params["name"] is None:
        raise ValueError("name: the worker's name is required, e.g. name=farm.rig1")
    if "manual" in allowed:
        manual = query.get("manual", "0")
        if manual not in ("0", "1"):
            raise ValueError("manual: 1 to count manual shares (POST /api/shares) too, else 0")
        params["manual"] = manual == "1"
    if "range" in allowed:
        name = query.get("range", "1h")
        if name not in panels.RANGES:
            raise ValueError(f"range: one of {', '.join(panels.RANGES)}")
        params["span"] = panels.RANGES[name]
    return params


Query = Callable[[str], Awaitable[bytes]]


async def _workers_answer(
    query: Query, now: float, *, data: DashboardData, hours: float, limit: int,
    worker: str | None, manual: bool,
) -> dict[str, Any]:  # fmt: skip
    return await data.workers(hours, now, worker, manual=manual)  # every worker: no limit


async def _share_stats_answer(
    query: Query, now: float, *, data: DashboardData, hours: float, limit: int,
    worker: str | None, manual: bool,
) -> dict[str, Any]:  # fmt: skip
    rows = await data.worker_stats(hours, now, worker, manual=manual)
    return {"hours": hours, "worker": worker, **reports.share_totals(rows)}


async def _shares_answer(
    query: Query, now: float, *, data: DashboardData, hours: float, limit: int,
    worker: str | None, manual: bool,
) -> dict[str, Any]:  # fmt: skip
    sql = reports.recent_shares_sql(
        hours, now, limit, worker=worker, manual=manual, schema=data.source.schema
    )
    return {"hours": hours, "shares": reports.parse_recent_shares(await query(sql))}


async def _farm_answer(query: Query, now: float, *, data: DashboardData, hours: float) -> Any:
    return await data.farm(hours, now)


async def _series_answer(
    query: Query, now: float, *, data: DashboardData, span: panels.SeriesRange, worker: str | None
) -> Any:
    return await data.series(span, now, worker)


async def _worker_answer(
    query: Query, now: float, *, data: DashboardData, name: str, hours: float
) -> Any:
    return await data.worker(name, hours, now)


async def _revalidate_static(request: web.Request, response: web.StreamResponse) -> None:
    # After an upgrade the browser must not keep running the old page's script:
    # it may cache, but asks first (a 304 costs nothing).
    if request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-cache"


def _manual_summary(record: ShareRecord) -> dict[str, Any]:
    return {
        "ts": record.ts,
        "worker": record.worker,
        "upstream": record.upstream,
        "difficulty": record.pool_difficulty,
        "status": record.status,
        "reject_reason": record.reject_reason,
        "manual": True,
    }


class _AiohttpLog(logging.Handler):
    """aiohttp's own log lines, into ours: what happened and the error's type, no request data."""

    def __init__(self, log: Any) -> None:
        super().__init__()
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        error = type(exc).__name__ if exc is not None else None
        if isinstance(exc, HttpProcessingError) and exc.code < 500:
            self.log.debug("api_bad_request", error=error)  # the peer's fault, answered 4xx
        elif record.levelno >= logging.ERROR:
            self.log.error("api_internal_error", message=record.getMessage(), error=error)


def _aiohttp_logger(log: Any) -> logging.Logger:
    logger = logging.Logger("stratum_proxy.web.aiohttp")  # this server's own, not global
    logger.propagate = False
    logger.addHandler(_AiohttpLog(log))
    return logger


def _text(status: int, text: str, **headers: str) -> web.Response:
    return web.Response(status=status, text=text.rstrip("\n") + "\n", headers=headers or None)


def _json(value: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(value, default=str), content_type="application/json"
    )
