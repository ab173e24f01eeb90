"""What crosses the proxy is byte-for-byte what would cross without it; bad peers are contained."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from stratum_proxy.sim.miner import MinerConfig, TestMiner
from stratum_proxy.sim.pool import TestPool


class RecordingPool:
    """A raw TCP peer: records every byte it receives, sends scripted bytes in odd chunks."""

    def __init__(self, script: list[bytes]) -> None:
        self.script = script
        self.received = bytearray()
        self.connected = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        self.connected.set()
        for chunk in self.script:
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(0.005)
        while data := await reader.read(65536):
            self.received += data

    async def close(self) -> None:
        for w in self.writers:
            w.close()
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


def _chunks(data: bytes, rng: random.Random) -> list[bytes]:
    out, i = [], 0
    while i < len(data):
        n = rng.randint(1, 40)
        out.append(data[i : i + n])
        i += n
    return out


# ruff: noqa: E501 - verbatim protocol lines are kept whole.
# Real lines from docs/sv1_transcripts.md (odd spacing, key orders, CRLF, junk
# and a partial line at the end) in both directions.
POOL_BYTES = (
    b'{"id":1,"result":[[["mining.notify","1e0a00001"],["mining.set_difficulty","1e0a00002"]],"1e0a0000",8],"error":null}\r\n'
    b'{"id": null, "method": "mining.set_difficulty", "params": [16383.75]}\n'
    b"\x00\xff not json at all\n"
    b'{"params":["00003000"], "id":null, "method": "mining.set_version_mask"}\n'
    b'{"id":null,"method":"client.show_message","params":["Welcome to the pool!"]}\n'
    b'{"id":2,"result":true,"error":null}\n'
    b'{"id":4,"result":null,"error":[21,"Job not found",""]}\n'
    b'{"id":null,"method":"mining.noti'
)
MINER_BYTES = (
    b'{"id": 1, "method": "mining.subscribe", "params": ["bmminer/2.0.0", "01000cc6", 1928847164]}\n'
    b'{"id":"auth","method":"mining.authorize","params":["aaa.2019","111"]}\r\n'
    b'{"id": 183506, "method": "mining.multi_version", "params": [1]}\n'
    b"\n\n garbage that is not json\n"
    b'{"params": ["w", "bf", "00000001", "504e86ed", "b2957c02"], "id": 4, "method": "mining.submit"}\n'
    b'{"id":5,"method":"mining.sub'
)


async def test_bytes_cross_unchanged_both_ways(proxy_factory: Any) -> None:
    rng = random.Random(7)
    pool = RecordingPool(_chunks(POOL_BYTES, rng))
    port = await pool.start()
    proxy = await proxy_factory([f"stratum+tcp://127.0.0.1:{port}"])
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    for chunk in _chunks(MINER_BYTES, rng):
        writer.write(chunk)
        await writer.drain()
    received = b""
    async with asyncio.timeout(10):
        while len(received) < len(POOL_BYTES):
            received += await reader.read(65536)
        while len(pool.received) < len(MINER_BYTES):
            await asyncio.sleep(0.01)
    assert received == POOL_BYTES
    assert bytes(pool.received) == MINER_BYTES
    writer.close()
    await proxy.shutdown()
    await pool.close()
    rows = proxy.rows()
    # The one submit got its verdict even though its job is unknown to the proxy.
    assert len(rows) == 1
    assert rows[0]["status"] == "rejected"
    assert rows[0]["reject_reason"].startswith("21 Job not found")
    assert rows[0]["share_hash"] == "" and rows[0]["share_difficulty"] == 0


async def test_overlong_line_closes_only_that_miner(proxy_factory: Any) -> None:
    pool = TestPool()
    await pool.start()
    proxy = await proxy_factory(
        [f"stratum+tcp://127.0.0.1:{pool.port}"], **{"limits.max_line_bytes": 4096}
    )
    good = TestMiner(MinerConfig(max_submits=20, pause=0.02))
    good_task = asyncio.create_task(good.run("127.0.0.1", proxy.port))
    await good.wait_ready(timeout=10)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b'{"id":1,"method":"mining.subscribe","params":["' + b"a" * (1 << 20))
    with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
        async with asyncio.timeout(10):
            while True:
                await writer.drain()
                if not await reader.read(65536):
                    raise ConnectionResetError("closed by the proxy")
    # Meanwhile the well-behaved miner kept mining and the event loop kept going.
    await asyncio.wait_for(good_task, 60)
    await proxy.shutdown()
    await pool.close()
    assert len(proxy.rows()) == 20


async def test_connection_limit_and_idle_timeout(proxy_factory: Any) -> None:
    pool = TestPool()
    await pool.start()
    proxy = await proxy_factory(
        [f"stratum+tcp://127.0.0.1:{pool.port}"],
        **{"limits.max_connections": 5, "limits.idle_timeout_s": 0.6},
    )
    conns = [await asyncio.open_connection("127.0.0.1", proxy.port) for _ in range(5)]
    await asyncio.sleep(0.2)
    extra = [await asyncio.open_connection("127.0.0.1", proxy.port) for _ in range(10)]
    async with asyncio.timeout(5):
        for reader, _ in extra:  # refused: closed at once
            assert await reader.read(100) == b""
    assert proxy.server.counters["connections_refused"] == 10
    assert len(proxy.server.relays) == 5
    async with asyncio.timeout(5):
        for reader, _ in conns:  # silent miners are closed by the idle timeout
            assert await reader.read(100) == b""
    assert len(proxy.server.relays) == 0
    for _, w in conns + extra:
        w.close()
    await proxy.shutdown()
    await pool.close()


async def test_huge_line_from_pool_closes_the_pair(proxy_factory: Any) -> None:
    pool = TestPool()
    await pool.start()
    proxy = await proxy_factory([f"stratum+tcp://127.0.0.1:{pool.port}"])
    miner = TestMiner(MinerConfig(max_submits=0, follow_reconnect=False))
    task = asyncio.create_task(miner.run("127.0.0.1", proxy.port))
    await miner.wait_ready(timeout=10)
    pool.send_huge_line(1 << 20)
    await asyncio.wait_for(task, 10)  # the proxy closed the miner's connection
    await proxy.shutdown()
    await pool.close()
