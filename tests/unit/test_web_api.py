"""The HTTP API over a real loopback socket: routes, errors, tokens, Host and Origin rules.

The query backend is a fake (an async function); the real engine behind
/api/query is tested in tests/integration.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import orjson
import pytest
from structlog.testing import capture_logs

from stratum_proxy.errors import (
    ConfigError,
    QueryBusy,
    QueryInvalid,
    QueryRefused,
    QueryTimeout,
    StoreError,
)
from stratum_proxy.logging import get_logger
from stratum_proxy.proxy.stats import WorkerStats
from stratum_proxy.settings import ApiSettings
from stratum_proxy.web.api import ApiBackend, ApiServer
from stratum_proxy.web.tokens import ApiTokens

TOKEN = "main-token-4f1c9a"
SCRAPER = "scraper-token-77b2"


# The integration tests' conftest overrides the loop policy the same way.
pytestmark = pytest.mark.filterwarnings('ignore:Overriding the "event_loop_policy"')


@pytest.fixture(params=["asyncio", "uvloop"])
def event_loop_policy(request: pytest.FixtureRequest) -> asyncio.AbstractEventLoopPolicy:
    """Every test on both loops: the daemon runs on uvloop, whose transports differ."""
    if request.param == "uvloop":
        import uvloop

        return uvloop.EventLoopPolicy()
    return asyncio.DefaultEventLoopPolicy()


async def fake_query(sql: str) -> bytes:
    errors: dict[str, Exception] = {
        "refused": QueryRefused("only SELECT on the mining tables"),
        "invalid": QueryInvalid("Code: 62. DB::Exception: Syntax error"),
        "busy": QueryBusy("all 2 query slots are busy"),
        "slow": QueryTimeout("the query did not finish within 1s"),
        "down": StoreError("Connection refused", retryable=True),
        "broken": StoreError("Code: 47. Unknown identifier", retryable=False),
        "config": ConfigError("days must be positive"),
        "bug": RuntimeError("boom"),
    }
    if sql in errors:
        raise errors[sql]
    return f"ran {sql}\n".encode()


class FakeCleanup:
    def __init__(self) -> None:
        self.calls: list[int] = []

    async def __call__(self, days: int) -> int:
        self.calls.append(days)
        return 42


@asynccontextmanager
async def running_api(
    *,
    tokens: ApiTokens | None = None,
    query: Callable[[str], Awaitable[bytes]] | None = fake_query,
    cleanup: Callable[[int], Awaitable[int]] | None = None,
    **settings: Any,
) -> AsyncIterator[tuple[ApiServer, str]]:
    api = ApiServer(
        settings=ApiSettings(**settings),
        tokens=tokens or ApiTokens(required=False),
        backend=ApiBackend(
            proxy_stats=lambda: {"connections": 3, "uptime_s": 5.0, "pools": {}},
            pipeline_stats=lambda: {"queue_depth": 0, "store_up": 1},
            workers=WorkerStats(),
            spool_max_bytes=1 << 30,
            query=query,
            cleanup=cleanup,
        ),
        log=get_logger(),
    )
    _, port = await api.start("127.0.0.1", 0)
    try:
        yield api, f"http://127.0.0.1:{port}"
    finally:
        await api.close()


async def fetch(
    method: str, url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, data=data, headers=headers) as response,
    ):
        return response.status, dict(response.headers), await response.read()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_routes_on_an_open_loopback_api() -> None:
    cleanup = FakeCleanup()
    async with running_api(cleanup=cleanup) as (_, base):
        status, headers, body = await fetch("GET", base + "/livez")
        assert (status, body) == (200, b"ok\n")
        status, _, body = await fetch("GET", base + "/healthz")
        assert (status, orjson.loads(body)) == (200, {"status": "ok"})
        status, headers, body = await fetch("GET", base + "/api/stats")
        assert status == 200 and headers["Content-Type"].startswith("application/json")
        stats = orjson.loads(body)
        assert stats["proxy"]["connections"] == 3 and stats["pipeline"]["store_up"] == 1
        assert stats["api"]["connections"] >= 1
        status, headers, body = await fetch("GET", base + "/metrics")
        assert status == 200 and headers["Content-Type"].startswith("text/plain; version=")
        assert b"stratum_proxy_connections 3.0" in body
        status, headers, body = await fetch("POST", base + "/api/query", data=b"SELECT 1")
        assert (status, body) == (200, b"ran SELECT 1\n")
        assert "Access-Control-Allow-Origin" not in headers
        status, _, body = await fetch(
            "POST",
            base + "/api/cleanup",
            data=b'{"days": 30}',
            headers={"Content-Type": "application/json"},
        )
        assert (status, orjson.loads(body)) == (200, {"deleted": 42})
        assert cleanup.calls == [30]
        assert (await fetch("GET", base + "/nope"))[0] == 404
        assert (await fetch("GET", base + "/api/query"))[0] == 405
        assert (await fetch("GET", base + "/api/cleanup"))[0] == 405
        assert (await fetch("POST", base + "/metrics"))[0] == 405
        # A CORS preflight is never granted.
        status, headers, _ = await fetch("OPTIONS", base + "/api/query", headers={"Origin": base})
        assert status == 405 and not any(h.startswith("Access-Control") for h in headers)


@pytest.mark.parametrize(
    ("sql", "status", "text"),
    [
        ("refused", 403, b"only SELECT"),
        ("invalid", 400, b"Syntax error"),
        ("broken", 400, b"Unknown identifier"),
        ("busy", 503, b"slots are busy"),
        ("down", 503, b"Connection refused"),
        ("slow", 504, b"did not finish"),
        ("config", 400, b"days must be positive"),
        ("bug", 500, b"internal error: RuntimeError"),
        ("", 400, b"POST the SQL"),
    ],
)
async def test_query_errors_map_to_statuses(sql: str, status: int, text: bytes) -> None:
    async with running_api() as (_, base):
        got, _, body = await fetch("POST", base + "/api/query", data=sql.encode())
        assert got == status and text in body


async def test_cleanup_wants_json_and_a_number_of_days() -> None:
    cleanup = FakeCleanup()
    async with running_api(cleanup=cleanup) as (_, base):
        url = base + "/api/cleanup"
        json_type = {"Content-Type": "application/json"}
        # The simple cross-site POST a web page can send without a preflight.
        status, _, body = await fetch(
            "POST", url, data=b'{"days": 1}', headers={"Content-Type": "text/plain"}
        )
        assert status == 415 and b"application/json" in body
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        assert (await fetch("POST", url, data=b"days=1", headers=form))[0] == 415
        for bad in (
            b'{"days": 0}',
            b'{"days": -3}',
            b'{"days": "7"}',
            b'{"days": true}',
            b'{"days": 1.5}',
            b"[]",
            b"nope",
            b"",
        ):
            status, _, body = await fetch("POST", url, data=bad, headers=json_type)
            assert status == 400 and b"days" in body, bad
        assert cleanup.calls == []

    async def failing(days: int) -> int:
        raise QueryBusy("the store is not open yet")

    async with running_api(cleanup=failing) as (_, base):
        status, _, body = await fetch(
            "POST", base + "/api/cleanup", data=b'{"days": 2}', headers=json_type
        )
        assert status == 503 and b"not open yet" in body

    async with running_api(cleanup=None, query=None) as (_, base):
        assert (await fetch("POST", base + "/api/cleanup", data=b'{"days": 2}', headers=json_type))[
            0
        ] == 503
        assert (await fetch("POST", base + "/api/query", data=b"SELECT 1"))[0] == 503


async def test_oversized_body_is_413() -> None:
    async with running_api(max_body_bytes=2048) as (_, base):
        status, _, _ = await fetch("POST", base + "/api/query", data=b"x" * 4096)
        assert status == 413

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
            for _ in range(4):
                yield b"y" * 1024

        async with (
            aiohttp.ClientSession() as session,
            session.post(base + "/api/query", data=chunks()) as response,
        ):
            assert response.status == 413
        status, _, body = await fetch("POST", base + "/api/query", data=b"z" * 1500)
        assert (status, body) == (200, b"ran " + b"z" * 1500 + b"\n")


async def test_a_slow_body_times_out() -> None:
    async with running_api(header_timeout_s=0.3) as (_, base):
        port = int(base.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /api/query HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\nSEL"
        )
        async with asyncio.timeout(3):
            answer = await reader.read()
        writer.close()
        assert answer.startswith(b"HTTP/1.1 408")


# -- tokens ------------------------------------------------------------------------


async def test_tokens_missing_wrong_in_the_url_and_right() -> None:
    tokens = ApiTokens(required=True, token=TOKEN.encode(), metrics_token=SCRAPER.encode())
    with capture_logs() as logs:
        async with running_api(tokens=tokens) as (_, base):
            for path in ("/metrics", "/api/stats", "/nope"):
                status, headers, body = await fetch("GET", base + path)
                assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer"), path
                assert b"Authorization: Bearer" in body
                assert (await fetch("GET", base + path, headers=bearer("wrong")))[0] == 401
            assert (await fetch("POST", base + "/api/query", data=b"SELECT 1"))[0] == 401
            assert (
                await fetch(
                    "POST", base + "/api/query", data=b"SELECT 1", headers={"Authorization": TOKEN}
                )
            )[0] == 401  # no scheme
            assert (
                await fetch(
                    "POST",
                    base + "/api/query",
                    data=b"SELECT 1",
                    headers={"Authorization": f"Basic {TOKEN}"},
                )
            )[0] == 401
            # A token in the URL is refused even when it is right.
            for query in (f"?token={TOKEN}", f"?access_token={TOKEN}"):
                status, _, body = await fetch("GET", base + "/api/stats" + query)
                assert status == 401 and b"header" in body
            # Health and liveness stay open for probes.
            assert (await fetch("GET", base + "/healthz"))[0] == 200
            assert (await fetch("GET", base + "/livez"))[0] == 200
            # The right token opens everything; the scraper's token only /metrics.
            assert (await fetch("GET", base + "/api/stats", headers=bearer(TOKEN)))[0] == 200
            assert (await fetch("GET", base + "/metrics", headers=bearer(TOKEN)))[0] == 200
            status, _, body = await fetch(
                "POST", base + "/api/query", data=b"SELECT 1", headers=bearer(TOKEN)
            )
            assert (status, body) == (200, b"ran SELECT 1\n")
            assert (await fetch("GET", base + "/metrics", headers=bearer(SCRAPER)))[0] == 200
            assert (await fetch("GET", base + "/api/stats", headers=bearer(SCRAPER)))[0] == 401
            assert (
                await fetch("POST", base + "/api/query", data=b"SELECT 1", headers=bearer(SCRAPER))
            )[0] == 401
    logged = repr(logs)
    assert TOKEN not in logged and SCRAPER not in logged


async def test_an_open_api_ignores_a_token_and_the_tokens_never_show() -> None:
    async with running_api() as (_, base):
        assert (await fetch("GET", base + "/api/stats", headers=bearer("any")))[0] == 200
    tokens = ApiTokens(required=True, token=TOKEN.encode())
    assert TOKEN not in repr(tokens)


# -- Host and Origin ----------------------------------------------------------------


async def test_host_header_must_be_an_ip_localhost_or_allowed() -> None:
    async with running_api(allowed_hosts=["proxy.farm.lan"]) as (_, base):
        port = base.rsplit(":", 1)[1]
        for host in (
            "127.0.0.1",
            f"127.0.0.1:{port}",
            f"[::1]:{port}",
            "[::1]",
            "10.0.0.7:80",
            "localhost",
            f"LOCALHOST:{port}",
            "proxy.farm.lan",
            f"Proxy.Farm.Lan.:{port}",
        ):
            status, _, _ = await fetch("GET", base + "/api/stats", headers={"Host": host})
            assert status == 200, host
        for host in (
            "evil.example",
            f"evil.example:{port}",
            "127.0.0.1.evil.example",
            "localhost.evil.example",
            "[::1",
            "127.0.0.1:x",
            "",
        ):
            status, _, body = await fetch("GET", base + "/api/stats", headers={"Host": host})
            assert status == 403, host
            assert b"add it to api.allowed_hosts" in body
        # Rebinding reaches the public endpoints too: refused the same way.
        assert (await fetch("GET", base + "/livez", headers={"Host": "evil.example"}))[0] == 403


async def test_origin_must_be_this_origin() -> None:
    tokens = ApiTokens(required=True, token=TOKEN.encode())
    async with running_api(tokens=tokens) as (_, base):
        host = base.removeprefix("http://")
        auth = bearer(TOKEN)
        for origin in (
            "http://evil.example",
            "null",
            f"http://{host}.evil.example",
            "http://localhost:1",
        ):
            status, _, body = await fetch(
                "POST", base + "/api/query", data=b"SELECT 1", headers={**auth, "Origin": origin}
            )
            assert status == 403 and b"cross-origin" in body, origin
        for origin in (f"http://{host}", f"https://{host}", f"HTTP://{host.upper()}"):
            status, _, _ = await fetch(
                "POST", base + "/api/query", data=b"SELECT 1", headers={**auth, "Origin": origin}
            )
            assert status == 200, origin
        # The Origin rule runs before the token: a cross-site page learns nothing either way.
        status, _, _ = await fetch(
            "GET", base + "/api/stats", headers={"Origin": "http://evil.example"}
        )
        assert status == 403


async def test_healthz_answers_503_with_the_reasons() -> None:
    api = ApiServer(
        settings=ApiSettings(health_write_stale_s=1),
        tokens=ApiTokens(required=True, token=TOKEN.encode()),
        backend=ApiBackend(
            proxy_stats=lambda: {"uptime_s": 50.0, "pools": {"main": {"up": False}}},
            pipeline_stats=lambda: {"queue_depth": 3, "store_up": 0, "last_write_ts": None},
            workers=WorkerStats(),
            spool_max_bytes=1 << 30,
        ),
        log=get_logger(),
    )
    _, port = await api.start("127.0.0.1", 0)
    try:
        status, headers, body = await fetch("GET", f"http://127.0.0.1:{port}/healthz")
    finally:
        await api.close()
    answer = orjson.loads(body)
    assert status == 503 and headers["Content-Type"].startswith("application/json")
    assert answer["status"] == "degraded"
    assert [r.split(":")[0] for r in answer["reasons"]] == ["write_stale", "store_down", "no_pool"]
