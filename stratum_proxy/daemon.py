"""``stratum-proxy run``: wire settings, logging, the share pipeline, the proxy and the API."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from stratum_proxy.logging import configure_logging, get_logger
from stratum_proxy.proxy.endpoints import parse_listen
from stratum_proxy.proxy.server import ProxyServer
from stratum_proxy.settings import Settings
from stratum_proxy.store.connection_ids import ConnectionIds
from stratum_proxy.store.pipeline import SharePipeline
from stratum_proxy.store.query_runner import QueryRunner
from stratum_proxy.store.record import ShareRecord
from stratum_proxy.web.api import ApiBackend, ApiServer
from stratum_proxy.web.tokens import load_api_tokens


def install_event_loop_policy() -> None:
    """uvloop when available: the relay's per-chunk cost is mostly the event loop's."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


# The store writer and spool flusher threads run Python code (batch encoding);
# with the default 5 ms GIL switch interval the event loop could wait that long
# for the GIL on every hand-over, which shows up directly in miners' p99.
_GIL_SWITCH_INTERVAL_S = 0.0005


def run_daemon(settings: Settings) -> int:
    configure_logging(settings.log.level, settings.log.format)
    install_event_loop_policy()
    sys.setswitchinterval(_GIL_SWITCH_INTERVAL_S)
    return asyncio.run(serve(settings, exit_when_stopped=True))


async def serve(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    on_ready: Any = None,
    exit_when_stopped: bool = False,
) -> int:
    """Run until SIGTERM/SIGINT (or ``stop`` is set); returns the process exit code.

    ``on_ready(server, api_address)`` is called once miners can connect (tests use
    it to learn the ports the OS picked).  An API that may not start (off
    loopback without a token) raises ConfigError before anything opens.

    A stop cancels API queries still running and waits for them only briefly
    (``QueryRunner.close``).  If one is still in the embedded engine when every
    row is in the store or the spool, ``exit_when_stopped`` (the real daemon)
    ends the process at once rather than let the interpreter's exit tear the
    engine down under it.
    """
    log = get_logger(proxy_id=settings.proxy_id)
    api_address = settings.api.listen or None
    api_host_port = parse_listen(api_address) if api_address else None
    tokens = load_api_tokens(settings.api, api_host_port[0], log) if api_host_port else None
    pipeline = SharePipeline(
        settings.store, proxy_id=settings.proxy_id, logger=log, api_address=api_address
    )
    # Read before the pipeline starts, so that a damaged file stops nothing half-open.
    connection_ids = ConnectionIds(pipeline.spool_dir, log=log)
    pipeline.start()
    server = ProxyServer(settings, pipeline, log, connection_ids=connection_ids)
    queries: QueryRunner | None = None
    api: ApiServer | None = None
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    api_bound: tuple[str, int] | None = None
    try:
        if api_host_port is not None:
            # Queries run on their own connections and threads, never the writer's.
            queries = QueryRunner(settings.store.url, settings.store, settings.api, log)
            queries.attach(lambda: bool(pipeline.statistics()["store_up"]))
        await server.start()
        if api_host_port is not None and tokens is not None and queries is not None:
            api = ApiServer(
                settings=settings.api,
                tokens=tokens,
                backend=ApiBackend(
                    proxy_stats=server.statistics,
                    pipeline_stats=pipeline.statistics,
                    workers=server.workers,
                    spool_max_bytes=settings.store.spool_max_bytes,
                    query=queries.run,
                    cleanup=queries.cleanup,
                    record_share=_manual_share_sink(pipeline),
                    schema=queries.schema,
                    proxy_id=settings.proxy_id,
                    session_start=server.started_at,
                    retention_days=settings.store.retention_days,
                ),
                log=log,
            )
            api_bound = await api.start(*api_host_port)
        log.info(
            "proxy_started",
            listen=settings.listen,
            pools=[p.name for p in server.selector.pools],
            store=pipeline.display_url,
        )
        if on_ready is not None:
            on_ready(server, api_bound)
        await stop.wait()
        log.info("proxy_stopping")
    except OSError as exc:
        log.error("cannot_start", error=str(exc))
        code = 1
    else:
        code = 0
    queries_done = await _stop(server, api, queries, pipeline, log)
    if code == 0:
        log.info("proxy_stopped")
    if exit_when_stopped and not queries_done:
        log.info("api_query_abandoned", reason="still running in the engine at exit")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


async def _stop(
    server: ProxyServer,
    api: ApiServer | None,
    queries: QueryRunner | None,
    pipeline: Any,
    log: Any,
) -> bool:
    """Stop in order; returns whether the API's query threads have all finished."""
    await server.shutdown()
    if api is not None:
        await api.close()
    # Queries still running are cancelled before the store (and the embedded engine)
    # closes; off the loop, and bounded: a query that will not stop is left behind.
    # The bound is the query time limit: a cancel the engine has not acted on yet
    # (its query thread starved of CPU) ends at that limit, and closing the engine
    # under a running query can crash the process.
    queries_done = (
        await asyncio.to_thread(queries.close, queries.api.query_timeout_s + 1.0)
        if queries is not None
        else True
    )
    await asyncio.to_thread(pipeline.close)
    stats = pipeline.statistics()
    log.info("pipeline_closed", **{k: v for k, v in stats.items() if v is not None})
    sys.stderr.flush()
    return queries_done


def _manual_share_sink(pipeline: SharePipeline) -> Callable[[ShareRecord], bool]:
    """POST /api/shares into the pipeline like any share; False when the row was shed."""

    def record(row: ShareRecord) -> bool:
        shed = pipeline.handoff.rows_shed
        pipeline.put(row)
        return pipeline.handoff.rows_shed == shed

    return record
