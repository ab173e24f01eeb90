"""A plain TCP byte relay: the floor any proxy is measured against.

Each accepted connection gets its own upstream connection and bytes are
copied both ways untouched, with the streams' flow control (``drain``).  The
benchmark runs it in place of the proxy to show what pure forwarding costs.
"""

from __future__ import annotations

import asyncio
import contextlib

_CHUNK = 64 * 1024


class ByteRelay:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = "127.0.0.1"
        self.port = 0
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = await asyncio.start_server(self._accept, host, port, backlog=4096)
        self.host, self.port = self._server.sockets[0].getsockname()[:2]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        # Closing the sockets ends every pipe; cancelling the handler tasks
        # instead would make asyncio's stream callback log each cancellation.
        for writer in list(self._writers):
            writer.close()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.connections += 1
        try:
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            except OSError:
                return
            self._writers.add(up_writer)
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(_pipe(reader, up_writer))
                    group.create_task(_pipe(up_reader, writer))
            except* (ConnectionError, OSError):
                pass
            finally:
                up_writer.close()
                self._writers.discard(up_writer)
        finally:
            writer.close()
            self._writers.discard(writer)
            self.connections -= 1
            self._tasks.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then half-close so the other side sees the end too."""
    while data := await reader.read(_CHUNK):
        writer.write(data)
        await writer.drain()
    # uvloop raises RuntimeError (not OSError) on a transport closed meanwhile.
    with contextlib.suppress(OSError, RuntimeError):
        if not writer.is_closing() and writer.can_write_eof():
            writer.write_eof()
