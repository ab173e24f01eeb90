"""One load-generator connection: a full handshake, then a cheap submit loop."""

from __future__ import annotations

import asyncio
import time
from array import array
from typing import cast

import orjson

_ID_KEY = b'"id":'
_perf_ns = time.perf_counter_ns


class Tally:
    """Counters shared by every connection of one run."""

    def __init__(self) -> None:
        self.measuring = False
        self.window_start_ns = 0
        self.sent = 0
        self.answered = 0
        self.rejected = 0
        self.rtt_ns: array[int] = array("q")

    def start_window(self) -> None:
        self.window_start_ns = _perf_ns()
        self.measuring = True


class LoadConnection(asyncio.Protocol):
    """Subscribes and authorizes with real JSON parsing, then only scans answers for ids."""

    def __init__(self, worker: str, index: int, tally: Tally) -> None:
        self.worker = worker
        self.index = index
        self.tally = tally
        self.closed_loop = False
        self.lost = False
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._transport: asyncio.Transport | None = None
        self._buffer = b""
        self._head = b""  # pre-formatted submit line up to the id
        self._tail = b""  # ... from after the id up to the nonce
        self._next_id = 100
        self._nonce = 0
        self._sent_ns: dict[int, int] = {}
        self._authorized = False
        self._job_id: str | None = None
        self._en2 = ""
        self._ntime = ""

    # --- asyncio.Protocol ---
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._transport.write(
            b'{"id":1,"method":"mining.subscribe","params":["simload/1.0"]}\n'
            + orjson.dumps({"id": 2, "method": "mining.authorize", "params": [self.worker, "x"]})
            + b"\n"
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed during handshake"))

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data
        start = 0
        while (end := buffer.find(b"\n", start)) >= 0:
            line = buffer[start:end]
            start = end + 1
            if self._head:
                self._on_answer(line)
            else:
                self._on_handshake_line(line)
        self._buffer = buffer[start:]

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    # --- submits ---
    def submit(self) -> None:
        if self.lost or not self._head:
            return
        self._next_id += 1
        self._nonce = (self._nonce + 1) & 0xFFFFFFFF
        msg_id = self._next_id
        line = b'%s%d%s%08x"]}\n' % (self._head, msg_id, self._tail, self._nonce)
        self._sent_ns[msg_id] = _perf_ns()
        assert self._transport is not None
        self._transport.write(line)
        if self.tally.measuring:
            self.tally.sent += 1

    def _on_answer(self, line: bytes) -> None:
        at = line.find(_ID_KEY)
        if at < 0:
            return
        at += len(_ID_KEY)
        while line[at : at + 1] == b" ":
            at += 1
        stop = at
        while line[stop : stop + 1].isdigit():
            stop += 1
        if stop == at:
            return  # a notification (id null) or an id that is not ours
        sent = self._sent_ns.pop(int(line[at:stop]), 0)
        if not sent:
            return
        tally = self.tally
        if tally.measuring and sent >= tally.window_start_ns:
            tally.answered += 1
            tally.rtt_ns.append(_perf_ns() - sent)
            if b"true" not in line:
                tally.rejected += 1
        if self.closed_loop:
            self.submit()

    # --- handshake ---
    def _on_handshake_line(self, line: bytes) -> None:
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError:
            return
        if not isinstance(message, dict):
            return
        method = message.get("method")
        if message.get("id") == 1 and method is None:
            result = message.get("result")
            if isinstance(result, list) and len(result) >= 3:
                size = int(result[2])
                self._en2 = (self.index % (1 << (8 * size))).to_bytes(size, "little").hex()
        elif message.get("id") == 2 and method is None:
            self._authorized = message.get("result") is True
        elif method == "mining.notify":
            params = message.get("params") or []
            if len(params) >= 8:
                self._job_id, self._ntime = str(params[0]), str(params[7])
        self._maybe_ready()

    def _maybe_ready(self) -> None:
        if not (self._authorized and self._job_id is not None and self._en2):
            return
        fields = [self.worker, self._job_id, self._en2, self._ntime]
        self._head = b'{"id":'
        self._tail = b',"method":"mining.submit","params":' + orjson.dumps(fields)[:-1] + b',"'
        if not self.ready.done():
            self.ready.set_result(None)
