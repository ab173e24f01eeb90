"""The local HTTP endpoint: /metrics, /api/stats, /api/query, /healthz.

A deliberately small HTTP/1.1 server on asyncio streams (one request per
connection, bounded sizes).  It listens on 127.0.0.1 by default: /api/query
runs any SQL on the share store, so it must not face the farm network.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from stratum_proxy.errors import StratumProxyError

_MAX_HEADER_BYTES = 16 * 1024
_MAX_BODY_BYTES = 1024 * 1024
_READ_TIMEOUT_S = 10.0

Handler = Callable[[str, bytes], Awaitable[tuple[int, str, bytes]]]


class ApiServer:
    def __init__(
        self,
        *,
        stats: Callable[[], dict[str, Any]],
        metrics: Callable[[], str],
        query: Callable[[str], bytes] | None,
        log: Any,
    ) -> None:
        self._stats = stats
        self._metrics = metrics
        self._query = query
        self.log = log
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._serve, host, port)
        address = self._server.sockets[0].getsockname()[:2]
        self.log.info("api_listening", address=f"{address[0]}:{address[1]}")
        return address[0], address[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, ctype, body = await asyncio.wait_for(self._handle(reader), _READ_TIMEOUT_S * 6)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            status, ctype, body = 400, "text/plain", b"bad request\n"
        except Exception as exc:  # never let one request kill the API
            self.log.error("api_error", error=repr(exc))
            status, ctype, body = 500, "text/plain", f"internal error: {exc}\n".encode()
        reason = {
            200: "OK",
            400: "Bad Request",
            404: "Not Found",
            405: "Method Not Allowed",
            413: "Payload Too Large",
            500: "Internal Server Error",
            503: "Service Unavailable",
        }
        head = (
            f"HTTP/1.1 {status} {reason.get(status, 'Error')}\r\n"
            f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        try:
            writer.write(head.encode() + body)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader) -> tuple[int, str, bytes]:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT_S)
        if len(head) > _MAX_HEADER_BYTES:
            return 413, "text/plain", b"headers too large\n"
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = [*lines[0].split(" "), "", "", ""][:3]
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:] if h)
        }
        length = int(headers.get("content-length", "0") or 0)
        if length > _MAX_BODY_BYTES:
            return 413, "text/plain", b"body too large\n"
        body = (
            await asyncio.wait_for(reader.readexactly(length), _READ_TIMEOUT_S) if length else b""
        )
        path = path.split("?", 1)[0]
        if path == "/healthz":
            return 200, "text/plain", b"ok\n"
        if path == "/metrics":
            return 200, "text/plain; version=0.0.4", self._metrics().encode()
        if path == "/api/stats":
            return 200, "application/json", orjson.dumps(self._stats(), default=str)
        if path == "/api/query":
            if method != "POST":
                return 405, "text/plain", b"POST the SQL as the request body\n"
            return await self._run_query(body.decode("utf-8", "replace"))
        return 404, "text/plain", b"not found\n"

    async def _run_query(self, sql: str) -> tuple[int, str, bytes]:
        if self._query is None:
            return 503, "text/plain", b"no store\n"
        try:
            result = await asyncio.to_thread(self._query, sql)
        except StratumProxyError as exc:
            return 400, "text/plain", f"{exc}\n".encode()
        return 200, "application/octet-stream", result
