"""One TCP session of the simulated miner: handshake, reading, the hashing loop."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

import orjson

from stratum_proxy.sim import hasher

if TYPE_CHECKING:
    from stratum_proxy.sim.miner import TestMiner

# A real pool line is a few KiB; the fault tests send 1 MB lines on purpose.
_READ_LIMIT = 4 * 1024 * 1024


class _Reconnect(Exception):
    def __init__(self, host: str, port: int) -> None:
        super().__init__(f"{host}:{port}")
        self.target = (host, port)


class MinerLink:
    def __init__(self, miner: TestMiner) -> None:
        self.miner = miner
        self.config = miner.config
        self._writer: asyncio.StreamWriter | None = None
        self._requests: dict[Any, asyncio.Future[dict[str, Any]]] = {}
        self._reconnect: tuple[str, int] | None = None
        self._host = ""
        self._port = 0

    def write(self, data: bytes) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(data)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

    async def session(self, host: str, port: int, started: float) -> tuple[str, int] | None:
        """Mine on one connection; returns where to reconnect, or None when done."""
        self._host, self._port = host, port
        reader, self._writer = await asyncio.open_connection(host, port, limit=_READ_LIMIT)
        try:
            async with asyncio.TaskGroup() as group:
                read_task = group.create_task(self._read(reader))
                await self._handshake()
                self.miner.ready = True
                self.miner.changed()
                await self._mine(started)
                await self.miner.wait_quiet()
                read_task.cancel()
        except* (ConnectionError, EOFError, TimeoutError) as group_error:
            # The pool went away or stopped answering: this session is over, and why is kept.
            self.miner.errors.extend(repr(error) for error in group_error.exceptions)
        except* _Reconnect as group_error:
            if self.config.follow_reconnect and not self.miner.finished(started):
                first = group_error.exceptions[0]
                assert isinstance(first, _Reconnect)
                self._reconnect = first.target
        finally:
            self.miner.ready = False
            self._writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.wait_closed()
            for future in self._requests.values():
                future.cancel()
        return self._reconnect

    async def _request(self, method: str, params: list[Any]) -> dict[str, Any]:
        msg_id = self.miner.new_id("request")
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._requests[msg_id] = future
        self.write(orjson.dumps({"id": msg_id, "method": method, "params": params}) + b"\n")
        try:
            async with asyncio.timeout(self.config.answer_timeout):
                return await future
        except TimeoutError:
            raise TimeoutError(f"no answer to {method} in {self.config.answer_timeout}s") from None

    async def _handshake(self) -> None:
        miner = self.miner
        if self.config.version_rolling:
            options = {"version-rolling.mask": f"{self.config.requested_mask:08x}"}
            answer = await self._request("mining.configure", [["version-rolling"], options])
            result = answer.get("result") or {}
            if isinstance(result, dict) and result.get("version-rolling") is True:
                miner.version_mask = int(str(result.get("version-rolling.mask", "0")), 16)
        answer = await self._request("mining.subscribe", [self.config.user_agent])
        result = answer.get("result")
        if not isinstance(result, list) or len(result) < 3:
            raise ConnectionError(f"bad subscribe answer: {answer!r}")
        miner.extranonce1 = bytes.fromhex(str(result[1]))
        miner.extranonce2_size = int(result[2])
        if self.config.extranonce_subscribe:
            await self._request("mining.extranonce.subscribe", [])
        for worker in self.config.workers:
            await self._request("mining.authorize", [worker, self.config.password])
        if self.config.suggest_difficulty > 0:
            await self._request("mining.suggest_difficulty", [self.config.suggest_difficulty])

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await reader.readline()
            except (asyncio.LimitOverrunError, ValueError):
                self.miner.garbage_lines += 1  # over-long line: skip it like a real miner
                continue
            if not line:
                raise EOFError("pool closed the connection")
            try:
                message = orjson.loads(line)
            except orjson.JSONDecodeError:
                self.miner.garbage_lines += 1
                continue
            if isinstance(message, dict):
                self._dispatch(message)
            else:
                self.miner.garbage_lines += 1

    def _dispatch(self, message: dict[str, Any]) -> None:
        method = message.get("method")
        msg_id = message.get("id")
        if method is None:
            future = self._requests.pop(msg_id, None)
            if future is not None and not future.done():
                future.set_result(message)
            elif not self.miner.settle(msg_id, message):
                self.miner.garbage_lines += 1
            return
        params = message.get("params") or []
        if method == "mining.notify":
            try:
                self.miner.on_notify(params)
            except (ValueError, TypeError):
                self.miner.garbage_lines += 1
        elif method == "mining.set_difficulty" and params:
            self.miner.difficulty = float(params[0])
        elif method == "mining.set_extranonce" and params and self.config.extranonce_subscribe:
            # Applies to the work units started after it (the pool sends a clean job next).
            self.miner.extranonce1 = bytes.fromhex(str(params[0]))
            if len(params) > 1:
                self.miner.extranonce2_size = int(params[1])
            self.miner.extranonce_changes += 1
        elif method == "mining.set_version_mask" and params:
            self.miner.version_mask = int(str(params[0]), 16)
        elif method == "client.reconnect":
            host = str(params[0]) if params else self._host
            port = int(params[1]) if len(params) > 1 else self._port
            raise _Reconnect(host, port)
        elif method == "mining.ping":
            self.write(orjson.dumps({"id": msg_id, "result": "pong", "error": None}) + b"\n")
        elif method == "client.get_version":
            reply = {"id": msg_id, "result": self.config.user_agent, "error": None}
            self.write(orjson.dumps(reply) + b"\n")

    async def _mine(self, started: float) -> None:
        miner = self.miner
        workers = self.config.workers
        if not self.config.autosubmit:
            await miner.wait_stopped()
        while not miner.finished(started):
            job = miner.job
            if job is None:
                await asyncio.sleep(0.001)
                continue
            en2_hex, counter = miner.next_extranonce2()
            mask = miner.version_mask
            bits = hasher.spread_bits(counter, mask) if mask else None
            version = job.template.version
            if bits is not None:
                version = (version & ~mask) | bits
            prefix = job.template.header_prefix(miner.extranonce1, bytes.fromhex(en2_hex))
            header = hasher.header76(job.template, prefix, version)
            await self._work(job, header, en2_hex, bits, started, workers)

    async def _work(
        self,
        job: hasher.MinerJob,
        header: bytes,
        en2_hex: str,
        bits: int | None,
        started: float,
        workers: tuple[str, ...],
    ) -> None:
        """Hash one work unit until the job changes, its nonces run out, or we finish."""
        miner = self.miner
        target = miner.target_for(job)
        nonce = 0
        while nonce < self.config.nonce_range and miner.job is job and not miner.finished(started):
            every = self.config.bad_share_every
            bad = bool(every) and (len(miner.submits) + 1) % every == 0
            count = min(self.config.chunk, self.config.nonce_range - nonce)
            found = hasher.search(header, target, nonce, count, want_valid=not bad)
            if found is None:
                nonce += self.config.chunk
                await asyncio.sleep(0)
                continue
            worker = workers[len(miner.submits) % len(workers)]
            t = job.template
            record = await miner.submit(
                worker,
                t.job_id,
                en2_hex,
                f"{t.ntime:08x}",
                f"{found:08x}",
                None if bits is None else f"{bits:08x}",
                meant_valid=not bad,
            )
            nonce = found + 1
            if self.config.wait_answers:
                await miner.wait_answer(record)
            await asyncio.sleep(self.config.pause)
