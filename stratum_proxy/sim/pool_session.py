"""One miner connection to the simulated pool: framing, methods, answer knobs."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

import orjson

from stratum_proxy.sim import judge
from stratum_proxy.sim.chain import Template
from stratum_proxy.sim.pool_config import (
    NOT_SUBSCRIBED,
    OTHER,
    UNAUTHORIZED,
    JudgedShare,
    PoolConfig,
    error_reply,
    ok_reply,
)

if TYPE_CHECKING:
    from stratum_proxy.sim.pool import TestPool


class PoolSession(asyncio.Protocol):
    """Server side of one connection; the pool object owns jobs and the verdict log."""

    def __init__(self, pool: TestPool, conn_id: int, extranonce1: bytes) -> None:
        self.pool = pool
        self.config: PoolConfig = pool.config
        self.conn_id = conn_id
        self.extranonce1 = extranonce1
        self.difficulty = self.config.difficulty
        self.version_mask: int | None = None  # set by mining.configure
        self.subscribed = False
        self.workers: set[str] = set()
        self.job_difficulty: dict[str, float] = {}  # job id -> difficulty when it was sent
        self.submits = 0
        self.answers = 0
        self.bad_lines = 0
        self.closed = False
        self.stalled = False  # connection open, but nothing sent any more (pool.stall)
        self._transport: asyncio.Transport | None = None
        self._buffer = b""
        self._held: list[bytes] = []
        self._hold_timer: asyncio.TimerHandle | None = None

    # --- asyncio.Protocol ---
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while not self.closed:
            end = self._buffer.find(b"\n")
            if end < 0:
                break
            line, self._buffer = self._buffer[:end], self._buffer[end + 1 :]
            self._handle_line(line)
        if len(self._buffer) > self.config.max_line_bytes:
            # A peer that never ends its line would grow the buffer forever.
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._hold_timer is not None:
            self._hold_timer.cancel()
        self.pool._forget(self)

    # --- output ---
    def send(self, message: dict[str, Any]) -> None:
        self.send_raw(orjson.dumps(message) + b"\n")

    def send_raw(self, data: bytes) -> None:
        if self._transport is not None and not self.closed and not self.stalled:
            self._transport.write(data)

    def send_set_extranonce(self, extranonce1: bytes, extranonce2_size: int) -> None:
        """Change this connection's extranonce; applies to the jobs notified after it."""
        self.extranonce1 = extranonce1
        self.config = replace(self.config, extranonce2_size=extranonce2_size)
        params = [extranonce1.hex(), extranonce2_size]
        self.send({"id": None, "method": "mining.set_extranonce", "params": params})

    def send_job(self, template: Template, *, clean: bool | None = None) -> None:
        self.job_difficulty[template.job_id] = self.difficulty
        if len(self.job_difficulty) > 2 * self.pool.max_templates:
            self.job_difficulty.pop(next(iter(self.job_difficulty)))
        params = template.notify_params()
        if clean is not None:
            params[-1] = clean
        self.send({"id": None, "method": "mining.notify", "params": params})

    def send_difficulty(self, difficulty: float) -> None:
        self.difficulty = difficulty
        self.send({"id": None, "method": "mining.set_difficulty", "params": [difficulty]})

    def close(self) -> None:
        if self._transport is not None and not self.closed:
            self._flush_held()
            self.closed = True
            self._transport.close()

    def abort(self) -> None:
        """Reset the connection: held answers are lost, as in a crash."""
        if self._transport is not None and not self.closed:
            self.closed = True
            self._transport.abort()

    # --- input ---
    def _handle_line(self, line: bytes) -> None:
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError:
            self.bad_lines += 1
            return
        if not isinstance(message, dict):
            self.bad_lines += 1
            return
        method = message.get("method")
        msg_id = message.get("id")
        params = message.get("params")
        if not isinstance(params, list):
            params = []
        if method == "mining.submit":
            self._on_submit(msg_id, params)
        elif method == "mining.subscribe":
            self._on_subscribe(msg_id)
        elif method == "mining.authorize":
            self._on_authorize(msg_id, params)
        elif method == "mining.configure":
            self._on_configure(msg_id, params)
        elif method in ("mining.suggest_difficulty", "mining.extranonce.subscribe"):
            self.send(ok_reply(msg_id, True))
        elif msg_id is not None and method is not None:
            self.send(error_reply(self.config.error_shape, msg_id, OTHER, "Method not found"))

    def _on_subscribe(self, msg_id: object) -> None:
        self.subscribed = True
        en1 = self.extranonce1.hex()
        subscriptions = [["mining.set_difficulty", en1], ["mining.notify", en1]]
        self.send(ok_reply(msg_id, [subscriptions, en1, self.config.extranonce2_size]))
        self.send_difficulty(self.difficulty)
        self.send_job(self.pool.current_template(), clean=True)

    def _on_authorize(self, msg_id: object, params: list[Any]) -> None:
        worker = params[0] if params and isinstance(params[0], str) else ""
        extra = self.config.single_authorization and bool(self.workers)
        if not worker or worker in self.config.deny_workers or extra:
            reply = error_reply(
                self.config.error_shape, msg_id, UNAUTHORIZED, "Unauthorized worker"
            )
            self.send(reply)
            return
        self.workers.add(worker)
        self.send(ok_reply(msg_id, True))

    def _on_configure(self, msg_id: object, params: list[Any]) -> None:
        # BIP310: the pool answers every requested extension; the mask it grants is
        # a subset of the one the miner asked for.
        names = params[0] if params and isinstance(params[0], list) else []
        options = params[1] if len(params) > 1 and isinstance(params[1], dict) else {}
        result: dict[str, object] = {}
        for name in names:
            result[str(name)] = False
        if "version-rolling" in names and self.config.version_mask:
            try:
                asked = int(str(options.get("version-rolling.mask", "ffffffff")), 16)
            except ValueError:
                asked = 0xFFFFFFFF
            self.version_mask = asked & self.config.version_mask
            result["version-rolling"] = True
            result["version-rolling.mask"] = f"{self.version_mask:08x}"
        self.send(ok_reply(msg_id, result))

    def _on_submit(self, msg_id: object, params: list[Any]) -> None:
        self.submits += 1
        limit = self.config.close_after_submits
        if limit and self.submits >= limit:
            self.close()
            return
        if not self.subscribed:
            share = judge.unparsed(self, params, NOT_SUBSCRIBED, "Not subscribed")
        elif self.config.accept_any:
            share = judge.accept_any(self, params)
        else:
            share = judge.judge(self, params)
        # A stalled pool still judges what it reads, but its answer never leaves.
        answered = not self._swallow() and not self.stalled
        if self.config.record_judged:
            self.pool._record(share, answered)
        else:
            self.pool._count(share)
        if not answered:
            return
        if share.accepted:
            reply = ok_reply(msg_id, True)
        else:
            reply = error_reply(self.config.error_shape, msg_id, share.code, share.reason)
        self._answer(orjson.dumps(reply) + b"\n")

    def _swallow(self) -> bool:
        every = self.config.drop_every
        return bool(every) and self.submits % every == 0

    # --- answer knobs ---
    def _answer(self, data: bytes) -> None:
        self.answers += 1
        every = self.config.garbage_every
        if every and self.answers % every == 0:
            data += b"this is not json {]\n"
        if self.config.hold_answers > 1:
            self._hold(data)
        elif self.config.answer_delay > 0:
            asyncio.get_running_loop().call_later(self.config.answer_delay, self.send_raw, data)
        else:
            self.send_raw(data)

    def _hold(self, data: bytes) -> None:
        self._held.append(data)
        if len(self._held) >= self.config.hold_answers:
            self._flush_held()
        elif self._hold_timer is None:
            loop = asyncio.get_running_loop()
            self._hold_timer = loop.call_later(self.config.hold_timeout, self._flush_held)

    def _flush_held(self) -> None:
        if self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None
        held, self._held = self._held, []
        # Reversed: the newest submit is answered first.
        self.send_raw(b"".join(reversed(held)))


__all__ = ["JudgedShare", "PoolSession"]
