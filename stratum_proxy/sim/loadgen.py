"""Benchmark load: many light SV1 connections that submit without hashing.

Point it at a pool started with ``PoolConfig(accept_any=True)`` (every
well-formed submit is accepted), directly or through the proxy.  Submit lines
are pre-formatted and answers are only scanned for their id, so one core can
drive far more load than the proxy under test can take.

Modes: ``closed`` (each connection submits, waits for the answer, submits
again), ``open`` (a fixed total rate spread over connections, whatever the
answers do), ``idle`` (connect, subscribe, authorize, then stay quiet).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from array import array
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from stratum_proxy.sim.load_conn import LoadConnection, Tally

T = TypeVar("T")
Mode = Literal["closed", "open", "idle"]
_OPEN_TICK = 0.001  # open-loop scheduler granularity (seconds)


@dataclass(slots=True, kw_only=True)
class LoadConfig:
    host: str
    port: int
    mode: Mode = "closed"
    connections: int = 100
    seconds: float = 10.0
    rate: float = 1000.0  # open loop: submits per second over all connections
    warmup: float = 1.0  # seconds of load before measuring starts
    worker: str = "load.w"
    connect_parallel: int = 256  # connects in flight at once (listen backlogs are finite)
    handshake_timeout: float = 30.0


@dataclass(slots=True, kw_only=True)
class LoadResult:
    mode: str
    connections: int  # established and ready
    failed: int  # connections that could not connect or finish the handshake
    sent: int  # submits sent during the measured window
    answered: int  # answers received during the measured window
    rejected: int
    seconds: float  # length of the measured window
    rtt_ns: array[int] = field(default_factory=lambda: array("q"))

    def summary(self) -> dict[str, float | int | str]:
        """Throughput and round-trip percentiles (milliseconds)."""
        ordered = sorted(self.rtt_ns)

        def pct(p: float) -> float:
            if not ordered:
                return 0.0
            return ordered[min(len(ordered) - 1, int(p * len(ordered)))] / 1e6

        return {
            "mode": self.mode,
            "connections": self.connections,
            "failed": self.failed,
            "sent": self.sent,
            "answered": self.answered,
            "rejected": self.rejected,
            "seconds": round(self.seconds, 3),
            "shares_per_s": round(self.answered / self.seconds, 1) if self.seconds else 0.0,
            "p50_ms": round(pct(0.50), 4),
            "p90_ms": round(pct(0.90), 4),
            "p99_ms": round(pct(0.99), 4),
            "max_ms": round(ordered[-1] / 1e6, 4) if ordered else 0.0,
        }


async def open_connections(config: LoadConfig, tally: Tally) -> tuple[list[LoadConnection], int]:
    """Connect and handshake ``config.connections`` clients; returns (ready ones, failures)."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(config.connect_parallel)

    async def one(index: int) -> LoadConnection | None:
        async with gate:
            worker = f"{config.worker}{index}"
            try:
                _, conn = await loop.create_connection(
                    lambda: LoadConnection(worker, index, tally), config.host, config.port
                )
                async with asyncio.timeout(config.handshake_timeout):
                    await conn.ready
            except (OSError, TimeoutError, ConnectionError):
                return None
            return conn

    results = await asyncio.gather(*(one(i) for i in range(config.connections)))
    ready = [conn for conn in results if conn is not None]
    return ready, len(results) - len(ready)


WindowHook = Callable[[str], None]


def _no_hook(phase: str) -> None:
    pass


async def run_load(config: LoadConfig, on_window: WindowHook = _no_hook) -> LoadResult:
    """Run one measurement and close every connection afterwards.

    ``on_window("start")`` and ``on_window("end")`` mark the measured window
    (the benchmark reads the CPU time of the process under test there).
    """
    tally = Tally()
    conns, failed = await open_connections(config, tally)
    try:
        if config.mode == "idle" or not conns:
            return LoadResult(
                mode=config.mode,
                connections=len(conns),
                failed=failed,
                sent=0,
                answered=0,
                rejected=0,
                seconds=0.0,
            )
        if config.mode == "closed":
            window = await _closed_loop(config, conns, tally, on_window)
        else:
            window = await _open_loop(config, conns, tally, on_window)
        return LoadResult(
            mode=config.mode,
            connections=len(conns),
            failed=failed,
            sent=tally.sent,
            answered=tally.answered,
            rejected=tally.rejected,
            seconds=window,
            rtt_ns=tally.rtt_ns,
        )
    finally:
        for conn in conns:
            conn.close()
        await asyncio.sleep(0)


async def _closed_loop(
    config: LoadConfig, conns: list[LoadConnection], tally: Tally, on_window: WindowHook
) -> float:
    for conn in conns:
        conn.closed_loop = True
        conn.submit()
    await asyncio.sleep(config.warmup)
    on_window("start")
    tally.start_window()
    started = time.perf_counter()
    await asyncio.sleep(config.seconds)
    tally.measuring = False
    on_window("end")
    for conn in conns:
        conn.closed_loop = False
    return time.perf_counter() - started


async def _open_loop(
    config: LoadConfig, conns: list[LoadConnection], tally: Tally, on_window: WindowHook
) -> float:
    total = config.warmup + config.seconds
    began = time.perf_counter()
    window_start = 0.0
    issued = 0
    turn = 0
    while (now := time.perf_counter()) - began < total:
        if not window_start and now - began >= config.warmup:
            on_window("start")
            tally.start_window()
            window_start = now
        due = int(config.rate * (now - began)) - issued
        for _ in range(due):
            conns[turn].submit()
            turn = (turn + 1) % len(conns)
        issued += max(due, 0)
        await asyncio.sleep(_OPEN_TICK)
    tally.measuring = False
    on_window("end")
    return time.perf_counter() - (window_start or began)


class IdleFarm:
    """K quiet connections held open (memory tests); ``await farm.close()`` to end."""

    def __init__(self, conns: list[LoadConnection], failed: int) -> None:
        self.conns = conns
        self.failed = failed

    @classmethod
    async def open(cls, host: str, port: int, count: int, **options: object) -> IdleFarm:
        config = LoadConfig(host=host, port=port, mode="idle", connections=count, **options)  # type: ignore[arg-type]
        conns, failed = await open_connections(config, Tally())
        return cls(conns, failed)

    def alive(self) -> int:
        return sum(1 for conn in self.conns if not conn.lost)

    async def close(self) -> None:
        for conn in self.conns:
            conn.close()
        with contextlib.suppress(Exception):
            await asyncio.sleep(0)


def run_load_sync(
    config: LoadConfig, on_window: WindowHook = _no_hook
) -> dict[str, float | int | str]:
    """Entry point for a separate process: run on uvloop when available, return the summary."""
    return run_fast(run_load(config, on_window)).summary()


def run_fast(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on uvloop when it is installed (it is, except on Windows)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(main)
    return uvloop.run(main)
