"""A Stratum V1 miner that really hashes (sha256d over the 80-byte header).

With the tiny difficulty the test pool hands out, a share takes a few thousand
hashes (milliseconds).  Every submit and the answer it got is kept in
``miner.submits``; tests compare them with the pool's and the proxy's view.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from stratum_proxy.sim import hasher
from stratum_proxy.sim.chain import share_target
from stratum_proxy.sim.miner_link import MinerLink

IdStyle = Literal["int", "const", "str"]


@dataclass(slots=True, kw_only=True)
class MinerConfig:
    user_agent: str = "simminer/1.0"
    workers: tuple[str, ...] = ("sim.worker1",)
    password: str = "x"
    version_rolling: bool = False
    requested_mask: int = 0xFFFFFFFF  # what mining.configure asks for (the pool may grant less)
    # "int": 1, 2, 3...; "const": every submit has id 4 like cpuminer; "str": "s1", "s2"...
    id_style: IdStyle = "int"
    max_submits: int = 0  # stop after this many submits (0: no limit)
    duration: float = 0.0  # stop after this many seconds (0: no limit)
    bad_share_every: int = 0  # every Nth submit is a nonce that misses the target
    pause: float = 0.0  # seconds to rest after each share
    wait_answers: bool = False  # closed loop: wait for each answer before hashing on
    autosubmit: bool = True  # False: connect and authorize only; the test calls submit()
    chunk: int = 2048  # nonces hashed between yields to the event loop
    # Nonces per work unit; each unit has its own extranonce2 and version bits, so a
    # short run still shows many of both (at difficulty 1e-6: ~4 shares per unit).
    nonce_range: int = 1 << 14
    follow_reconnect: bool = True
    extranonce_subscribe: bool = False  # send mining.extranonce.subscribe (obey set_extranonce)
    suggest_difficulty: float = 0.0  # > 0: send mining.suggest_difficulty after authorizing
    answer_timeout: float = 5.0  # how long a finishing miner waits for outstanding answers


@dataclass(slots=True, kw_only=True)
class SubmitRecord:
    """One mining.submit sent, and what came back."""

    id: Any
    worker: str
    params: list[str]
    job_difficulty: float
    meant_valid: bool  # False for deliberate bad nonces
    sent_at: float = field(default_factory=time.time)
    _sent_perf: float = field(default_factory=time.perf_counter, repr=False)
    answer: dict[str, Any] | None = None
    rtt: float | None = None  # seconds
    answered_at: float | None = None  # time.perf_counter() when the answer arrived

    @property
    def accepted(self) -> bool | None:
        """True/False once answered (None while waiting)."""
        if self.answer is None:
            return None
        return self.answer.get("result") is True and not self.answer.get("error")

    def settle(self, answer: dict[str, Any]) -> None:
        self.answer = answer
        self.answered_at = time.perf_counter()
        self.rtt = self.answered_at - self._sent_perf


class TestMiner:
    """``await miner.run(host, port)`` mines until a limit, ``stop()``, or the pool closes."""

    __test__ = False

    def __init__(self, config: MinerConfig | None = None) -> None:
        self.config = config or MinerConfig()
        self.submits: list[SubmitRecord] = []
        self.garbage_lines = 0
        self.errors: list[str] = []  # why sessions ended early (EOF, reset, no answer)
        self.reconnects = 0
        self.extranonce_changes = 0  # mining.set_extranonce obeyed
        self.version_mask = 0
        self.extranonce1 = b""
        self.extranonce2_size = 0
        self.difficulty = 1.0
        self.jobs: dict[str, hasher.MinerJob] = {}
        self.job: hasher.MinerJob | None = None
        self._pending: defaultdict[Any, deque[SubmitRecord]] = defaultdict(deque)
        self._link: MinerLink | None = None
        self.ready = False  # subscribed and every worker authorized
        self._stopping = False
        self._changed = asyncio.Event()
        self._next_id = 10
        self._en2_counter = 0

    # --- lifecycle ---
    async def run(self, host: str, port: int) -> None:
        self._stopping = False
        target: tuple[str, int] | None = (host, port)
        started = time.monotonic()
        while target is not None and not self._stopping:
            link = MinerLink(self)
            self._link = link
            try:
                target = await link.session(*target, started)
            finally:
                self._link = None
            if target is not None:
                self.reconnects += 1
                self._changed.set()

    async def stop(self) -> None:
        self._stopping = True
        self._changed.set()
        if self._link is not None:
            self._link.close()

    async def wait_ready(self, timeout: float = 5.0) -> None:
        """Until subscribed, authorized and holding a job."""
        await self._wait_for(lambda: self.ready and self.job is not None, timeout)

    async def wait_submits(self, count: int, timeout: float = 10.0) -> None:
        """Until ``count`` submits have been answered."""
        await self._wait_for(lambda: self.answered() >= count, timeout)

    async def wait_answer(self, record: SubmitRecord) -> None:
        """Until ``record`` is answered or ``answer_timeout`` passed (it then stays unanswered)."""
        with contextlib.suppress(TimeoutError):
            await self._wait_for(lambda: record.answer is not None, self.config.answer_timeout)

    async def wait_until(self, ready: Callable[[], bool], timeout: float = 10.0) -> None:
        """Until ``ready()`` holds, re-checked on every notify, answer and session change."""
        await self._wait_for(ready, timeout)

    async def _wait_for(self, ready: Callable[[], bool], timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while not ready():
                self._changed.clear()
                await self._changed.wait()

    def answered(self) -> int:
        return sum(1 for record in self.submits if record.answer is not None)

    # --- submits ---
    def new_id(self, kind: str = "submit") -> Any:
        if kind == "submit" and self.config.id_style == "const":
            return 4  # cpuminer answers every submit with id 4
        self._next_id += 1
        return f"s{self._next_id}" if self.config.id_style == "str" else self._next_id

    async def submit(
        self,
        worker: str,
        job_id: str,
        extranonce2: str,
        ntime: str,
        nonce: str,
        version_bits: str | None = None,
        *,
        meant_valid: bool = True,
    ) -> SubmitRecord:
        """Send one submit with exactly these fields (for tests crafting shares)."""
        params = [worker, job_id, extranonce2, ntime, nonce]
        if version_bits is not None:
            params.append(version_bits)
        job = self.jobs.get(job_id)
        record = SubmitRecord(
            id=self.new_id(),
            worker=worker,
            params=params,
            job_difficulty=job.difficulty if job else 0.0,
            meant_valid=meant_valid,
        )
        if self._link is None:
            raise ConnectionError("miner is not connected")
        self.submits.append(record)
        self._pending[record.id].append(record)
        message = {"params": params, "id": record.id, "method": "mining.submit"}
        self._link.write(orjson.dumps(message) + b"\n")
        return record

    def settle(self, msg_id: Any, answer: dict[str, Any]) -> bool:
        """Match an answer to the oldest submit waiting with that id."""
        waiting = self._pending.get(msg_id)
        if not waiting:
            return False
        waiting.popleft().settle(answer)
        if not waiting:
            del self._pending[msg_id]
        self._changed.set()
        return True

    def outstanding(self) -> int:
        return sum(len(queue) for queue in self._pending.values())

    # --- job state (called by the link) ---
    def on_notify(self, params: list[Any]) -> None:
        template = hasher.template_from_notify(params)
        if template.clean:
            self.jobs.clear()
        job = hasher.MinerJob(template=template, difficulty=self.difficulty)
        self.jobs[template.job_id] = job
        while len(self.jobs) > 64:
            self.jobs.pop(next(iter(self.jobs)))
        self.job = job
        self._changed.set()

    def next_extranonce2(self) -> tuple[str, int]:
        """A fresh extranonce2 (little-endian counter hex, as cgminer writes it) and its counter."""
        self._en2_counter += 1
        size = self.extranonce2_size
        value = self._en2_counter % (1 << (8 * size)) if size else 0
        return value.to_bytes(size, "little").hex(), self._en2_counter

    def target_for(self, job: hasher.MinerJob) -> int:
        return share_target(job.difficulty)

    def finished(self, started: float) -> bool:
        cfg = self.config
        if self._stopping:
            return True
        if cfg.max_submits and len(self.submits) >= cfg.max_submits:
            return True
        return bool(cfg.duration) and time.monotonic() - started >= cfg.duration

    async def wait_quiet(self) -> None:
        """Give outstanding submits ``answer_timeout`` to be answered."""
        with contextlib.suppress(TimeoutError):
            await self._wait_for(lambda: self.outstanding() == 0, self.config.answer_timeout)

    async def wait_stopped(self) -> None:
        while not self._stopping:
            self._changed.clear()
            await self._changed.wait()

    def changed(self) -> None:
        self._changed.set()
