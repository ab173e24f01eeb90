"""Pieces of ``stratum-proxy demo``: a test pool, hashing miners, a live table.

The CLI starts the proxy in-process between them::

    farm = SimFarm(FarmConfig(miners=4))
    pool = await farm.start_pool()
    ... start the proxy with upstream 127.0.0.1:{pool.port}, listening on host:port ...
    await farm.start_miners(host, port)
    print(render_table(farm.rows()))
    await farm.stop()

or hands the proxy start to ``run_demo(start_proxy=...)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from stratum_proxy.sim.miner import MinerConfig, TestMiner
from stratum_proxy.sim.pool import TestPool
from stratum_proxy.sim.pool_config import PoolConfig

# Network difficulty about 15x the share difficulty: roughly one share in 15 is
# a block, so the demo shows block candidates without every share being one.
DEMO_NBITS = 0x1F00FFFF
CANDIDATES_NOTE = (
    "cands: block candidates on the test pool's own chain (its easy network target), "
    "not Bitcoin blocks"
)
ProxyStarter = Callable[[str, int], Awaitable[tuple[str, int]]]


@dataclass(slots=True, kw_only=True)
class FarmConfig:
    miners: int = 4
    workers_per_miner: int = 1
    account: str = "demo"
    difficulty: float = 1e-6
    nbits: int = DEMO_NBITS
    block_interval: float = 15.0  # a new block (clean job) this often; 0: never
    pause: float = 0.02  # rest after each share so the demo does not eat a whole core


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerRow:
    worker: str
    submitted: int
    accepted: int
    rejected: int
    unanswered: int
    # Accepted shares that met the test chain's network target (the pool's verdict):
    # block candidates on a chain of the test pool's own, not blocks found on Bitcoin.
    candidates: int
    best_difficulty: float
    hashrate: float  # H/s: sum of accepted pool difficulty * 2**32 / seconds
    mean_rtt_ms: float
    last_reject: str


class SimFarm:
    """Owns one TestPool and N TestMiners and the tasks that run them."""

    def __init__(self, config: FarmConfig | None = None) -> None:
        self.config = config or FarmConfig()
        self.pool: TestPool | None = None
        self.miners: list[TestMiner] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._started = time.monotonic()

    async def start_pool(self, host: str = "127.0.0.1", port: int = 0) -> TestPool:
        cfg = self.config
        self.pool = TestPool(PoolConfig(difficulty=cfg.difficulty, nbits=cfg.nbits))
        await self.pool.start(host, port)
        if cfg.block_interval > 0:
            self._tasks.append(asyncio.create_task(self._blocks(), name="demo-blocks"))
        return self.pool

    async def start_miners(self, host: str, port: int) -> list[TestMiner]:
        """Start every miner against host:port (the proxy, or the pool itself)."""
        cfg = self.config
        self._started = time.monotonic()
        for index in range(cfg.miners):
            workers = tuple(
                f"{cfg.account}.rig{index + 1}" + (f"w{w + 1}" if cfg.workers_per_miner > 1 else "")
                for w in range(cfg.workers_per_miner)
            )
            miner = TestMiner(
                MinerConfig(
                    user_agent=f"simminer/1.0 rig{index + 1}",
                    workers=workers,
                    version_rolling=index % 2 == 0,  # half the rigs roll version bits
                    pause=cfg.pause,
                )
            )
            self.miners.append(miner)
            task = asyncio.create_task(miner.run(host, port), name=f"demo-miner-{index + 1}")
            self._tasks.append(task)
        return self.miners

    async def stop(self) -> None:
        for miner in self.miners:
            await miner.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self.pool is not None:
            await self.pool.close()

    async def _blocks(self) -> None:
        while True:
            await asyncio.sleep(self.config.block_interval)
            if self.pool is not None:
                self.pool.new_block()

    def rows(self) -> list[WorkerRow]:
        """Per-worker figures: the miners' view, plus candidates and best share from the pool."""
        elapsed = max(time.monotonic() - self._started, 1e-3)
        judged = self.pool.judged if self.pool is not None else []
        rows = []
        for miner in self.miners:
            for worker in miner.config.workers:
                records = [r for r in miner.submits if r.worker == worker]
                accepted = [r for r in records if r.accepted]
                rejected = [r for r in records if r.accepted is False]
                rtts = [r.rtt for r in records if r.rtt is not None]
                mine = [j for j in judged if j.worker == worker and j.accepted]
                rows.append(
                    WorkerRow(
                        worker=worker,
                        submitted=len(records),
                        accepted=len(accepted),
                        rejected=len(rejected),
                        unanswered=len(records) - len(accepted) - len(rejected),
                        candidates=sum(1 for j in mine if j.is_block),
                        best_difficulty=max((j.difficulty for j in mine), default=0.0),
                        hashrate=sum(r.job_difficulty for r in accepted) * 2**32 / elapsed,
                        mean_rtt_ms=1000 * sum(rtts) / len(rtts) if rtts else 0.0,
                        last_reject=_reason(rejected[-1].answer) if rejected else "",
                    )
                )
        return rows


def _reason(answer: dict[str, object] | None) -> str:
    if not answer:
        return ""
    error = answer.get("error")
    if isinstance(error, list) and len(error) > 1:
        return str(error[1])
    if isinstance(error, dict):
        return str(error.get("message", ""))
    return str(error or answer.get("reject-reason") or "rejected")


def _si(value: float) -> str:
    for unit in ("", "k", "M", "G", "T", "P"):
        if abs(value) < 1000:
            return f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} E"


def render_table(rows: list[WorkerRow], *, title: str = "") -> str:
    """A fixed-width text table of worker rows, a totals line and what ``cands`` counts."""
    header = (
        f"{'worker':<18} {'sent':>6} {'acc':>6} {'rej':>5} {'wait':>5} {'cands':>6} "
        f"{'best diff':>10} {'hashrate':>11} {'rtt ms':>7}  last reject"
    )
    lines = [title] if title else []
    lines += [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row.worker:<18.18} {row.submitted:>6} {row.accepted:>6} {row.rejected:>5} "
            f"{row.unanswered:>5} {row.candidates:>6} {row.best_difficulty:>10.3g} "
            f"{_si(row.hashrate) + 'H/s':>11} {row.mean_rtt_ms:>7.2f}  {row.last_reject}"
        )
    total = _si(sum(r.hashrate for r in rows)) + "H/s"
    lines.append("-" * len(header))
    lines.append(
        f"{'total':<18} {sum(r.submitted for r in rows):>6} {sum(r.accepted for r in rows):>6} "
        f"{sum(r.rejected for r in rows):>5} {sum(r.unanswered for r in rows):>5} "
        f"{sum(r.candidates for r in rows):>6} {'':>10} {total:>11}"
    )
    lines.append(CANDIDATES_NOTE)
    return "\n".join(lines)


async def run_demo(
    proxy_address: tuple[str, int] | None = None,
    *,
    start_proxy: ProxyStarter | None = None,
    config: FarmConfig | None = None,
    pool_port: int = 0,
    seconds: float = 20.0,
    refresh: float = 1.0,
    out: Callable[[str], None] = print,
) -> list[WorkerRow]:
    """Pool → (proxy) → miners for ``seconds``, printing the table every ``refresh`` s.

    The miners connect to ``proxy_address``, or to what ``start_proxy(pool_host,
    pool_port)`` returns once the pool is up, or straight to the pool if neither
    is given.  Returns the final rows.
    """
    farm = SimFarm(config)
    try:
        pool = await farm.start_pool(port=pool_port)
        if start_proxy is not None:
            proxy_address = await start_proxy(pool.host, pool.port)
        host, port = proxy_address or (pool.host, pool.port)
        await farm.start_miners(host, port)
        # A fixed schedule (every ``refresh`` s, the last frame at ``seconds``), so a
        # sliver of time left after a late timer does not print an extra frame.
        start = time.monotonic()
        frames = max(1, math.ceil(seconds / refresh - 1e-9))
        for i in range(1, frames + 1):
            await asyncio.sleep(max(0.0, start + min(i * refresh, seconds) - time.monotonic()))
            out(render_table(farm.rows(), title=f"miners -> {host}:{port}, pool :{pool.port}"))
        return farm.rows()
    finally:
        await farm.stop()
