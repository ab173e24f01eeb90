"""``stratum-proxy dashboard --store URL``: the dashboard over a store, no daemon running.

For a store copied off the farm, or a ClickHouse server the proxies write to:
the same page and the same read endpoints as the daemon's API (no live
statistics, no pipeline, no manual shares), under the same Host, Origin and
token rules.  An embedded store that a running daemon holds is refused with
the address of that daemon's own dashboard.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Any

from stratum_proxy.errors import StoreBusyError
from stratum_proxy.proxy.endpoints import parse_listen
from stratum_proxy.proxy.stats import WorkerStats
from stratum_proxy.store.backend import open_store
from stratum_proxy.store.lock import read_lock_holder
from stratum_proxy.store.query_runner import QueryRunner
from stratum_proxy.store.url import ChdbUrl, parse_store_url
from stratum_proxy.web.api import ApiBackend, ApiServer
from stratum_proxy.web.tokens import load_api_tokens


def _refuse_if_held(store_url: str) -> None:
    parsed = parse_store_url(store_url)
    if not isinstance(parsed, ChdbUrl):
        return
    holder = read_lock_holder(parsed.path)
    if holder is None:
        return
    where = (
        f"its dashboard is at http://{holder.api_address}/"
        if holder.api_address
        else ("start it with [api] listen set to see its dashboard")
    )
    raise StoreBusyError(
        f"{store_url} is held by a running stratum-proxy (pid {holder.pid}); {where}"
    )


async def browse_store(
    settings: Any,
    listen: str,
    log: Any,
    *,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[tuple[str, int]], None] | None = None,
) -> int:
    """Serve the dashboard over ``settings.store.url`` at ``listen`` until stopped."""
    url = settings.store.url
    _refuse_if_held(url)
    host, port = parse_listen(listen)
    tokens = load_api_tokens(settings.api, host, log)
    store = open_store(url, settings.store)  # holds the embedded store's lock meanwhile
    try:
        store.ensure_schema()  # an older store gets the columns the queries read
        queries = QueryRunner(url, settings.store, settings.api, log)
        api = ApiServer(
            settings=settings.api,
            tokens=tokens,
            backend=ApiBackend(
                proxy_stats=dict,
                pipeline_stats=dict,
                workers=WorkerStats(),
                spool_max_bytes=0,
                query=queries.run,
                schema=queries.schema,
                daemon=False,
            ),
            log=log,
        )
        if stop is None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
        try:
            bound = await api.start(host, port)
            log.info("dashboard_serving", url=f"http://{bound[0]}:{bound[1]}/", store=url)
            if on_ready is not None:
                on_ready(bound)
            await stop.wait()
        finally:
            await api.close()
            queries.close()
    finally:
        store.close()
    return 0
