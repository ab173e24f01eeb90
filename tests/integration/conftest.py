"""A running proxy (the real daemon, in-process) with the embedded store, for loopback tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from stratum_proxy.daemon import serve
from stratum_proxy.logging import configure_logging
from stratum_proxy.proxy.server import ProxyServer
from stratum_proxy.settings import Settings, load_settings
from stratum_proxy.store.backend import open_store
from stratum_proxy.store.chdb_store import ChdbStore
from stratum_proxy.store.settings import StoreSettings


@dataclass
class RunningProxy:
    settings: Settings
    server: ProxyServer
    api: tuple[str, int] | None
    stop: asyncio.Event
    task: asyncio.Task[int]
    exit_code: int | None = None
    store_url: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def port(self) -> int:
        return int(self.server.addresses[0][1])

    async def shutdown(self) -> int:
        if self.exit_code is None:
            self.stop.set()
            self.exit_code = await asyncio.wait_for(self.task, 30)
        return self.exit_code

    def rows(self, where: str = "1") -> list[dict[str, Any]]:
        """Every share row, after shutdown (the daemon holds the embedded store while it runs)."""
        assert self.exit_code is not None, "call shutdown() first"
        store = open_store(self.store_url, StoreSettings())
        try:
            out = store.query(
                f"SELECT * FROM mining.shares WHERE {where} ORDER BY ts FORMAT JSONEachRow"
            )
        finally:
            store.close()
        return [orjson.loads(line) for line in out.splitlines() if line.strip()]


ProxyFactory = Callable[..., Any]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ChdbStore]:
    """An embedded store with the schema, in a fresh directory."""
    s = open_store(f"chdb://{tmp_path / 'db'}", StoreSettings())
    assert isinstance(s, ChdbStore)
    try:
        s.ensure_schema()
        yield s
    finally:
        s.close()


@pytest.fixture(scope="session")
def event_loop_policy() -> asyncio.AbstractEventLoopPolicy:
    """Integration tests run on uvloop, the loop the daemon uses in production."""
    import uvloop

    return uvloop.EventLoopPolicy()


@pytest.fixture
async def proxy_factory(tmp_path: Path) -> AsyncIterator[ProxyFactory]:
    """Start the daemon on free ports; every started proxy is stopped at teardown."""
    configure_logging("warning", "console")
    started: list[RunningProxy] = []

    async def start(pools: list[str], **overrides: Any) -> RunningProxy:
        n = len(started)
        store_url = f"chdb://{tmp_path}/db{n}"
        values: dict[str, Any] = {
            "listen": ["127.0.0.1:0"],
            "pools": pools,
            "proxy_id": "test-proxy",
            "store.url": store_url,
            "store.spool_dir": tmp_path / f"spool{n}",
            "store.linger_s": 0.05,
            "api.listen": "127.0.0.1:0",
            "limits.shutdown_grace_s": 2.0,
        }
        values.update(overrides)
        settings = load_settings(None, **values)
        stop = asyncio.Event()
        ready: dict[str, Any] = {}
        task = asyncio.create_task(
            serve(settings, stop=stop, on_ready=lambda s, a: ready.update(server=s, api=a))
        )
        async with asyncio.timeout(20):
            while not ready:
                if task.done():
                    raise RuntimeError(f"proxy exited early: {task.result()}")
                await asyncio.sleep(0.02)
        proxy = RunningProxy(
            settings=settings,
            server=ready["server"],
            api=ready["api"],
            stop=stop,
            task=task,
            store_url=store_url,
        )
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        with contextlib.suppress(Exception):
            await proxy.shutdown()
