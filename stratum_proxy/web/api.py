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
from dataclasses import asdict, dataclass
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
from stratum_proxy.store import reports
from stratum_proxy.web.auth import auth_middleware
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

    def build_app(self) -> web.Application:
        app = web.Application(
            client_max_size=self.settings.max_body_bytes,
            middlewares=[
                guard_middleware(self.guard),
                auth_middleware(self.tokens, self.settings.allowed_hosts),
            ],
        )
        app.router.add_get("/livez", self._livez)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/api/stats", self._stats)
        app.router.add_post("/api/query", self._query)
        app.router.add_post("/api/cleanup", self._cleanup)
        app.router.add_get("/api/workers", self._workers)
        app.router.add_get("/api/share-stats", self._share_stats)
        app.router.add_get("/api/shares", self._shares)
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

    async def _read_side(
        self, request: web.Request, answer: Callable[..., Awaitable[Any]]
    ) -> web.Response:
        try:
            params = _read_params(request.query)
        except ValueError as exc:
            return _text(400, str(exc))
        if self.backend.query is None:
            return _text(503, "no store to query")
        try:
            return _json(await answer(self.backend.query, time.time(), **params))
        except Exception as exc:
            return self._failed(exc, "read")

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


def _read_params(query: Mapping[str, str]) -> dict[str, Any]:
    """``hours``, ``limit`` and ``worker`` from a query string; ValueError names the field."""
    unknown = set(query) - {"hours", "limit", "worker"}
    if unknown:
        raise ValueError(f"unknown parameter {sorted(unknown)[0]!r}: use hours, limit, worker")
    try:
        hours = float(query.get("hours", "24"))
    except ValueError:
        raise ValueError("hours: expected a number of hours, e.g. hours=24") from None
    if not 0 < hours <= _MAX_HOURS:
        raise ValueError(f"hours: must be above 0 and at most {_MAX_HOURS}")
    try:
        limit = int(query.get("limit", "100"))
    except ValueError:
        raise ValueError("limit: expected a whole number, e.g. limit=100") from None
    if not 1 <= limit <= _MAX_LIMIT:
        raise ValueError(f"limit: must be 1 to {_MAX_LIMIT}")
    worker = query.get("worker")
    if worker is not None and (not worker or len(worker) > _MAX_WORKER_CHARS):
        raise ValueError(f"worker: must be 1 to {_MAX_WORKER_CHARS} characters")
    return {"hours": hours, "limit": limit, "worker": worker}


Query = Callable[[str], Awaitable[bytes]]


async def _workers_answer(
    query: Query, now: float, *, hours: float, limit: int, worker: str | None
) -> dict[str, Any]:
    rows = reports.parse_worker_stats(
        await query(reports.worker_stats_sql(hours, now, worker=worker))
    )
    return {"hours": hours, "workers": [asdict(r) for r in rows]}  # every worker: no limit


async def _share_stats_answer(
    query: Query, now: float, *, hours: float, limit: int, worker: str | None
) -> dict[str, Any]:
    rows = reports.parse_worker_stats(
        await query(reports.worker_stats_sql(hours, now, worker=worker))
    )
    return {"hours": hours, "worker": worker, **reports.share_totals(rows)}


async def _shares_answer(
    query: Query, now: float, *, hours: float, limit: int, worker: str | None
) -> dict[str, Any]:
    output = await query(reports.recent_shares_sql(hours, now, limit, worker=worker))
    return {"hours": hours, "shares": reports.parse_recent_shares(output)}


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
