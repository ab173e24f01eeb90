"""The translate shell's writes to the shared SV2 pool connection.

Every miner's submits go to one pool connection: what the core asks to send
during one turn of the event loop leaves in one write at the end of that turn
(or as soon as POOL_WRITE_BATCH bytes wait), in order, and nothing queued is
lost when the connection is closed.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from stratum_proxy.logging import get_logger
from stratum_proxy.proxy.endpoints import PoolEndpoint
from stratum_proxy.proxy.sv2_upstream import POOL_WRITE_BATCH, Sv2Upstream
from stratum_proxy.settings import load_settings
from stratum_proxy.sim.sv2_pool_config import TEST_AUTHORITY_SECRET
from stratum_proxy.sv2.crypto import xonly_pubkey
from stratum_proxy.sv2.noise import ACT1_SIZE


class FakeTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


def _upstream() -> tuple[Sv2Upstream, FakeTransport]:
    server: Any = SimpleNamespace(
        settings=load_settings(None),
        log=get_logger(),
        sv2_upstreams=SimpleNamespace(forget=lambda upstream: None),
    )
    endpoint = PoolEndpoint(name="pool", host="127.0.0.1", port=1, protocol="sv2")
    upstream = Sv2Upstream(server, endpoint, "127.0.0.1", 1, xonly_pubkey(TEST_AUTHORITY_SECRET))
    transport = FakeTransport()
    upstream.connection_made(transport)  # type: ignore[arg-type]
    return upstream, transport


async def test_bytes_of_one_loop_turn_leave_in_one_write_in_order() -> None:
    upstream, transport = _upstream()
    upstream._write_pool(b"first")
    upstream._write_pool(b"second")
    assert transport.writes == []  # not before the end of this turn
    await asyncio.sleep(0)
    (written,) = transport.writes
    assert len(written) == ACT1_SIZE + len(b"firstsecond")
    assert written.endswith(b"firstsecond")  # act 1 of the handshake, then the rest
    upstream._write_pool(b"third")
    await asyncio.sleep(0)
    assert transport.writes[1:] == [b"third"]
    upstream.fail("test over")


async def test_a_full_batch_leaves_at_once_and_the_rest_at_the_end_of_the_turn() -> None:
    upstream, transport = _upstream()
    await asyncio.sleep(0)  # act 1 of the handshake
    frames = [bytes([i]) * 70 for i in range(POOL_WRITE_BATCH // 70 + 3)]
    for frame in frames:
        upstream._write_pool(frame)
    (batch,) = transport.writes[1:]  # written within the turn, once the batch was full
    assert POOL_WRITE_BATCH <= len(batch) < POOL_WRITE_BATCH + 70
    await asyncio.sleep(0)
    assert b"".join(transport.writes[1:]) == b"".join(frames)
    assert len(transport.writes) == 3
    upstream.fail("test over")


async def test_bytes_queued_before_a_close_are_written_before_it() -> None:
    upstream, transport = _upstream()
    upstream._write_pool(b"last words")
    upstream.fail("test over")
    assert transport.closed
    assert b"".join(transport.writes).endswith(b"last words")
    await asyncio.sleep(0)  # the flush scheduled for this turn finds nothing left
    assert len(transport.writes) == 1
