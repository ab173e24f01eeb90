"""The API's connection limits on real sockets: slow clients, the connection cap, big heads."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from stratum_proxy.logging import get_logger
from stratum_proxy.proxy.stats import WorkerStats
from stratum_proxy.settings import ApiSettings
from stratum_proxy.web.api import ApiBackend, ApiServer
from stratum_proxy.web.tokens import ApiTokens

GET_LIVEZ = b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


# The integration tests' conftest overrides the loop policy the same way.
pytestmark = pytest.mark.filterwarnings('ignore:Overriding the "event_loop_policy"')


@pytest.fixture(params=["asyncio", "uvloop"])
def event_loop_policy(request: pytest.FixtureRequest) -> asyncio.AbstractEventLoopPolicy:
    """Every test on both loops: the daemon runs on uvloop, whose transports differ."""
    if request.param == "uvloop":
        import uvloop

        return uvloop.EventLoopPolicy()
    return asyncio.DefaultEventLoopPolicy()


@asynccontextmanager
async def running_api(**settings: Any) -> AsyncIterator[tuple[ApiServer, int]]:
    api = ApiServer(
        settings=ApiSettings(**settings),
        tokens=ApiTokens(required=False),
        backend=ApiBackend(
            proxy_stats=lambda: {"uptime_s": 1.0},
            pipeline_stats=dict,
            workers=WorkerStats(),
            spool_max_bytes=1 << 30,
        ),
        log=get_logger(),
    )
    _, port = await api.start("127.0.0.1", 0)
    try:
        yield api, port
    finally:
        await api.close()


async def request_livez(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(GET_LIVEZ.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
        async with asyncio.timeout(3):
            return await reader.read()
    finally:
        writer.close()


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """Everything the server sends until it closes; fails if it is still open by then."""
    async with asyncio.timeout(seconds):
        return await reader.read()


async def test_slowloris_is_closed_while_others_are_served() -> None:
    timeout = 0.6
    async with running_api(header_timeout_s=timeout) as (api, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.monotonic()

        async def drip() -> None:
            # A header byte at a time, never finishing the head.
            for byte in b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100:
                writer.write(bytes([byte]))
                await asyncio.sleep(0.05)

        dripping = asyncio.create_task(drip())
        await asyncio.sleep(0.2)
        # Meanwhile a normal client is served at once.
        answer = await request_livez(port)
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"ok\n")
        assert await closed_within(reader, timeout + 1.0) == b""
        elapsed = time.monotonic() - started
        assert timeout - 0.05 <= elapsed < timeout + 0.5
        dripping.cancel()
        writer.close()
        assert api.statistics()["slow_clients"] == 1


async def test_an_idle_keepalive_connection_is_closed_after_the_timeout() -> None:
    async with running_api(header_timeout_s=0.3) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(3):  # each response gives the client another header_timeout_s
            writer.write(GET_LIVEZ)
            head = await reader.readuntil(b"ok\n")
            assert head.startswith(b"HTTP/1.1 200")
            await asyncio.sleep(0.15)
        started = time.monotonic()
        assert await closed_within(reader, 2.0) == b""
        assert time.monotonic() - started < 0.5
        writer.close()


async def test_a_silent_connection_is_closed() -> None:
    async with running_api(header_timeout_s=0.3) as (api, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await closed_within(reader, 2.0) == b""
        writer.close()
        assert api.statistics() == {"connections": 0, "connections_refused": 0, "slow_clients": 1}


async def test_connections_past_the_cap_are_closed_at_once() -> None:
    async with running_api(max_connections=2, header_timeout_s=5.0) as (api, port):
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        await asyncio.sleep(0.05)
        assert api.statistics()["connections"] == 2
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(GET_LIVEZ)
        assert await closed_within(reader, 1.0) == b""  # closed without an answer
        writer.close()
        assert api.statistics()["connections_refused"] == 1
        # The held ones still work, and a slot freed is a slot taken again.
        r0, w0 = held[0]
        w0.write(GET_LIVEZ)
        assert (await r0.readuntil(b"ok\n")).startswith(b"HTTP/1.1 200")
        w0.close()
        await asyncio.sleep(0.05)
        answer = await request_livez(port)
        assert answer.startswith(b"HTTP/1.1 200")
        for _, w in held[1:]:
            w.close()


async def test_an_oversized_head_is_refused() -> None:
    async with running_api(max_header_bytes=1024) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 2048 + b"\r\n\r\n"
        )
        answer = await closed_within(reader, 2.0)
        writer.close()
        assert answer.split(b" ", 2)[1] in (b"400", b"413", b"431")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /" + b"a" * 2048 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = await closed_within(reader, 2.0)
        writer.close()
        assert answer.split(b" ", 2)[1] in (b"400", b"413", b"414", b"431")
        # Within the limit: fine.
        assert (await request_livez(port)).startswith(b"HTTP/1.1 200")


async def test_close_ends_open_connections() -> None:
    async with running_api(header_timeout_s=10.0) as (api, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.sleep(0.05)
        await api.close()
        assert await closed_within(reader, 2.0) == b""
        writer.close()


async def test_a_long_answer_to_a_reading_client_is_not_cut_but_a_stalled_one_is() -> None:
    big = b"r" * (32 * 1024 * 1024)

    async def query(sql: str) -> bytes:
        return big

    api = ApiServer(
        settings=ApiSettings(header_timeout_s=0.3),
        tokens=ApiTokens(required=False),
        backend=ApiBackend(
            proxy_stats=dict,
            pipeline_stats=dict,
            workers=WorkerStats(),
            spool_max_bytes=1,
            query=query,
        ),
        log=get_logger(),
    )
    _, port = await api.start("127.0.0.1", 0)
    post = b"POST /api/query HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\n\r\nx"
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        writer.write(post)
        received = 0
        started = time.monotonic()
        async with asyncio.timeout(20):
            while chunk := await reader.read(1 << 20):
                received += len(chunk)
                if received > len(big):
                    break
                # Slower than the server sends (about 50 MB/s), but steadily: the
                # tail left in the kernel's buffers is read well within the timeout.
                await asyncio.sleep(0.02)
        writer.close()
        assert received > len(big), "the answer was cut short"
        assert time.monotonic() - started > 0.6  # took longer than two header deadlines

        # A client that never reads its answer does not keep the connection.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        transport = writer.transport
        writer.write(post)
        await asyncio.sleep(0.1)
        transport.pause_reading()
        await asyncio.sleep(1.2)
        assert api.statistics()["connections"] == 0
        assert api.statistics()["slow_clients"] == 1
        writer.close()
    finally:
        await api.close()
