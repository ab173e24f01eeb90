from __future__ import annotations

import asyncio
import socket

import pytest

from stratum_proxy.errors import ConfigError
from stratum_proxy.logging import get_logger
from stratum_proxy.proxy.endpoints import parse_listen, parse_pool
from stratum_proxy.proxy.failover import NoPoolAvailable, PoolSelector


def test_parse_pool_forms() -> None:
    p = parse_pool("stratum+tcp://pool.example.com:3333")
    assert (p.name, p.host, p.port, p.protocol) == (
        "pool.example.com:3333",
        "pool.example.com",
        3333,
        "sv1",
    )
    p = parse_pool("main=stratum+tcp://10.0.0.1:3334")
    assert (p.name, p.host, p.port) == ("main", "10.0.0.1", 3334)
    key = "9bXiEd8boQVhq7WddEcERUL5tyyJVFYdU8th3HfbNXK3Yw6GRXh"
    p = parse_pool(f"stratum2+tcp://sv2.example:3336/{key}")
    assert (p.protocol, p.authority_key) == ("sv2", key)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("http://pool:1", "unsupported scheme"),
        ("stratum+tcp://pool", "host and a port"),
        ("stratum+tcp://:3333", "host and a port"),
        ("stratum+tcp://pool:99999", "host and a port"),
        ("stratum2+tcp://pool:3336", "authority public key"),
    ],
)
def test_parse_pool_errors(text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_pool(text)


def test_parse_listen() -> None:
    assert parse_listen("0.0.0.0:3333") == ("0.0.0.0", 3333)
    assert parse_listen(":3333") == ("0.0.0.0", 3333)
    assert parse_listen("[::1]:3333") == ("::1", 3333)
    for bad in ("3333", "host:", "host:abc", "h:70000"):
        with pytest.raises(ConfigError):
            parse_listen(bad)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_failover_skips_dead_pool_and_remembers() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    live_port = server.sockets[0].getsockname()[1]
    dead = parse_pool(f"dead=stratum+tcp://127.0.0.1:{_free_port()}")
    live = parse_pool(f"live=stratum+tcp://127.0.0.1:{live_port}")
    clock = [1000.0]
    spare = parse_pool(f"spare=stratum+tcp://127.0.0.1:{_free_port()}")
    selector = PoolSelector(
        [dead, live, spare], connect_timeout_s=2, retry_s=30, clock=lambda: clock[0]
    )
    log = get_logger()
    try:
        pool, transport, _ = await selector.connect(lambda p: asyncio.Protocol(), log)
        transport.close()
        assert pool is live
        assert not selector.is_up(dead)
        states = {name: s["state"] for name, s in selector.statistics().items()}
        assert states == {"dead": "down", "live": "up", "spare": "untried"}
        # While the dead pool rests, the live one is tried first.
        assert selector.candidates()[0] is live
        clock[0] += 31
        assert selector.candidates()[0] is dead
    finally:
        server.close()
        await server.wait_closed()


async def test_no_pool_available() -> None:
    dead = parse_pool(f"stratum+tcp://127.0.0.1:{_free_port()}")
    selector = PoolSelector([dead], connect_timeout_s=1, retry_s=30)
    with pytest.raises(NoPoolAvailable, match=r"127\.0\.0\.1"):
        await selector.connect(lambda p: asyncio.Protocol(), get_logger())


def test_sv2_url_without_key_uses_the_default() -> None:
    key = "9bXiEd8boQVhq7WddEcERUL5tyyJVFYdU8th3HfbNXK3Yw6GRXh"
    p = parse_pool("stratum2+tcp://sv2.example:3336", default_authority_key=key)
    assert (p.protocol, p.authority_key) == ("sv2", key)
    other = "9auqWEzQDVyd2oe1JVGFLMLHZtCo2FFqZwtKA5gd9xbuEu7PH72"
    assert (
        parse_pool(f"stratum2+tcp://h:1/{other}", default_authority_key=key).authority_key == other
    )


async def test_passthrough_never_connects_to_an_sv2_pool() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    key = "9bXiEd8boQVhq7WddEcERUL5tyyJVFYdU8th3HfbNXK3Yw6GRXh"
    sv2 = parse_pool(f"v2=stratum2+tcp://127.0.0.1:{port}/{key}")
    sv1 = parse_pool(f"v1=stratum+tcp://127.0.0.1:{port}")
    try:
        selector = PoolSelector([sv2, sv1], connect_timeout_s=2, retry_s=30)
        pool, transport, _ = await selector.connect(lambda p: asyncio.Protocol(), get_logger())
        transport.close()
        assert pool is sv1
        only_sv2 = PoolSelector([sv2], connect_timeout_s=2, retry_s=30)
        with pytest.raises(NoPoolAvailable, match="no sv1 pool configured"):
            await only_sv2.connect(lambda p: asyncio.Protocol(), get_logger())
    finally:
        server.close()
        await server.wait_closed()
