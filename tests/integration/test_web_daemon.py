"""The API of a running daemon (in-process, embedded store): tokens, /metrics with real
shares, /healthz and /livez, and the refusal to start off loopback without a token."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from stratum_proxy.daemon import serve
from stratum_proxy.errors import ConfigError
from stratum_proxy.settings import load_settings
from stratum_proxy.sim.miner import MinerConfig, TestMiner
from stratum_proxy.sim.pool import TestPool
from stratum_proxy.sim.pool_config import PoolConfig

TOKEN = "daemon-api-token-5d2e"


async def get(url: str, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as resp:
        return resp.status, await resp.read()


def counters(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        if family.type == "counter"
        for s in family.samples
    }


async def test_metrics_health_and_tokens_on_a_running_daemon(proxy_factory: Any) -> None:
    pool = TestPool(PoolConfig())
    await pool.start()
    proxy = await proxy_factory(
        [f"main=stratum+tcp://127.0.0.1:{pool.port}"],
        **{"api.token": TOKEN, "api.max_worker_series": 2},
    )
    base = f"http://127.0.0.1:{proxy.api[1]}"
    try:
        assert await get(base + "/livez") == (200, b"ok\n")
        assert (await get(base + "/metrics"))[0] == 401
        assert (await get(base + "/api/stats", "wrong"))[0] == 401
        status, body = await get(base + "/api/stats", TOKEN)
        assert status == 200 and "pipeline" in orjson.loads(body)

        async def mine(workers: tuple[str, ...], submits: int) -> None:
            miner = TestMiner(MinerConfig(workers=workers, max_submits=submits))
            async with asyncio.timeout(60):
                await miner.run("127.0.0.1", proxy.port)

        await mine(("rig.a", "rig.b", "rig.c"), 6)
        status, first = await get(base + "/metrics", TOKEN)
        assert status == 200
        await mine(("rig.a", "rig.d"), 6)
        _, second = await get(base + "/metrics", TOKEN)
        before, after = counters(first.decode()), counters(second.decode())
        for key, value in before.items():
            assert after[key] >= value, key
        shares = {k: v for k, v in after.items() if k[0] == "stratum_proxy_shares_total"}
        workers = {dict(labels)["worker"] for _, labels in shares}
        assert workers == {"rig.a", "rig.b", "_other"}  # the first two seen, then the rest
        assert sum(shares.values()) == len(pool.judged) == 12
        assert after[("stratum_proxy_connections_accepted_total", ())] == 2

        status, body = await get(base + "/healthz")
        assert (status, orjson.loads(body)) == (200, {"status": "ok"})
    finally:
        await proxy.shutdown()
        await pool.close()


async def test_off_loopback_without_a_token_does_not_start(tmp_path: Any) -> None:
    settings = load_settings(
        None,
        listen=["127.0.0.1:0"],
        pools=["stratum+tcp://127.0.0.1:1"],
        **{
            "store.url": f"chdb://{tmp_path}/db",
            "store.spool_dir": tmp_path / "spool",
            "api.listen": "0.0.0.0:0",
        },
    )
    with pytest.raises(ConfigError, match=r"api\.token_file.*--api-listen"):
        await serve(settings, stop=asyncio.Event())
    # Nothing was opened: not even the spool.
    assert not (tmp_path / "spool").exists()
    with_token = settings.model_copy(
        update={"api": settings.api.model_copy(update={"token": SecretStr(TOKEN)})}
    )
    stop = asyncio.Event()
    ready: dict[str, Any] = {}
    task = asyncio.create_task(
        serve(with_token, stop=stop, on_ready=lambda s, a: ready.update(api=a))
    )
    try:
        async with asyncio.timeout(20):
            while not ready:
                assert not task.done(), task.result()
                await asyncio.sleep(0.02)
        port = ready["api"][1]
        assert (await get(f"http://127.0.0.1:{port}/api/stats"))[0] == 401
        assert (await get(f"http://127.0.0.1:{port}/api/stats", TOKEN))[0] == 200
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 30) == 0
