"""``stratum-proxy run``: wire settings, logging, the share pipeline, the proxy and the API."""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

from stratum_proxy.logging import configure_logging, get_logger
from stratum_proxy.proxy.endpoints import parse_listen
from stratum_proxy.proxy.server import ProxyServer
from stratum_proxy.settings import Settings
from stratum_proxy.store.pipeline import SharePipeline
from stratum_proxy.web.api import ApiServer
from stratum_proxy.web.metrics import render_metrics


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
    return asyncio.run(serve(settings))


async def serve(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    on_ready: Any = None,
) -> int:
    """Run until SIGTERM/SIGINT (or ``stop`` is set); returns the process exit code.

    ``on_ready(server, api_address)`` is called once miners can connect (tests use
    it to learn the ports the OS picked).
    """
    log = get_logger(proxy_id=settings.proxy_id)
    api_address = settings.api.listen or None
    pipeline = SharePipeline(
        settings.store, proxy_id=settings.proxy_id, logger=log, api_address=api_address
    )
    pipeline.start()
    server = ProxyServer(settings, pipeline, log)
    api: ApiServer | None = None
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    api_bound: tuple[str, int] | None = None
    try:
        await server.start()
        if api_address:
            api = ApiServer(
                stats=lambda: {"proxy": server.statistics(), "pipeline": pipeline.statistics()},
                metrics=lambda: render_metrics(
                    server.statistics(), pipeline.statistics(), server.workers.snapshot_totals()
                ),
                query=pipeline.query,
                log=log,
            )
            api_bound = await api.start(*parse_listen(api_address))
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
        await _stop(server, api, pipeline, log)
        return 1
    await _stop(server, api, pipeline, log)
    log.info("proxy_stopped")
    return 0


async def _stop(server: ProxyServer, api: ApiServer | None, pipeline: Any, log: Any) -> None:
    await server.shutdown()
    if api is not None:
        await api.close()
    await asyncio.to_thread(pipeline.close)
    stats = pipeline.statistics()
    log.info("pipeline_closed", **{k: v for k, v in stats.items() if v is not None})
    sys.stderr.flush()
