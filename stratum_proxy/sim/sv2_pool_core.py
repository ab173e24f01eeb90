"""A Stratum V2 test pool, sans-I/O: jobs, channels and real share judging.

``Sv2PoolState`` holds what all connections share (the chain tip, jobs, the
verdict log: the oracle); ``Sv2PoolConnection`` is the server side of one
connection (Noise responder, setup, extended channels, verdicts).  The asyncio
shell in sv2_pool.py only moves bytes and fires timers; unit tests wire a
connection to the client in memory.

Shares are judged with the sim's own header rebuild (sim.chain), not with the
proxy's share code, so the pool is an independent oracle.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from stratum_proxy.sim.chain import (
    BASE_VERSION,
    Template,
    fake_branch,
    header_hash_int,
    share_target,
    split_coinbase,
)
from stratum_proxy.sim.chain import hash_difficulty as difficulty_of
from stratum_proxy.sim.sv2_pool_config import (
    MAX_TARGET,
    PoolJob,
    Sv2Judged,
    Sv2PoolConfig,
)
from stratum_proxy.sim.sv2_pool_conn import Sv2PoolConnection
from stratum_proxy.sv2.crypto import Rng


@dataclass(slots=True)
class Sv2PoolState:
    """What every connection shares: the tip, the jobs, the forced errors, the oracle."""

    config: Sv2PoolConfig
    jobs: dict[int, PoolJob] = field(default_factory=dict)
    judged: list[Sv2Judged] = field(default_factory=list)
    forced_errors: list[str] = field(default_factory=list)
    connections: dict[int, Sv2PoolConnection] = field(default_factory=dict)
    epoch: int = 0
    height: int = 840_000
    prevhash: bytes = b""
    target: int = 0
    _job_counter: int = 0
    _conn_counter: int = 0
    _rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.config.seed)
        self.target = min(share_target(self.config.difficulty), MAX_TARGET)
        self.next_template(new_block=True)

    # --- chain ------------------------------------------------------------------

    def next_template(self, *, new_block: bool, now: float = 1_700_000_000.0) -> PoolJob:
        if new_block or not self.prevhash:
            self.height += 1
            self.epoch += 1
            self.prevhash = self._rng.randbytes(32)
        self._job_counter += 1
        size = self.config.extranonce_prefix_size + self.config.extranonce_size
        coinb1, coinb2 = split_coinbase(self.height, size)
        template = Template(
            job_id=str(self._job_counter),
            height=self.height,
            prevhash=self.prevhash,
            coinb1=coinb1,
            coinb2=coinb2,
            branch=fake_branch(self._rng, self.config.branch_length),
            version=BASE_VERSION,
            nbits=self.config.nbits,
            ntime=int(now),
            clean=new_block,
        )
        job = PoolJob(
            job_id=self._job_counter, template=template, epoch=self.epoch, future=new_block
        )
        self.jobs[job.job_id] = job
        while len(self.jobs) > 64:
            self.jobs.pop(next(iter(self.jobs)))
        return job

    def current_job(self) -> PoolJob:
        return next(reversed(self.jobs.values()))

    def new_connection(self, now: float, rng: Rng) -> Sv2PoolConnection:
        self._conn_counter += 1
        conn = Sv2PoolConnection(self, self._conn_counter, now, rng)
        self.connections[conn.conn_id] = conn
        return conn

    # --- broadcasts ---------------------------------------------------------------

    def new_block(self, now: float) -> PoolJob:
        """A new prev_hash: a future job then SetNewPrevHash; older jobs become stale."""
        job = self.next_template(new_block=True, now=now)
        for conn in self.connections.values():
            conn.send_job(job)
        return job

    def new_job(self, now: float) -> PoolJob:
        """A job on the same prev_hash, active at once (min_ntime set)."""
        job = self.next_template(new_block=False, now=now)
        for conn in self.connections.values():
            conn.send_job(job)
        return job

    def set_difficulty(self, difficulty: float) -> None:
        self.target = min(share_target(difficulty), MAX_TARGET)
        for conn in self.connections.values():
            conn.send_target(self.target)

    def force_errors(self, *codes: str) -> None:
        """The next submits (any channel) are refused with these codes, in order."""
        self.forced_errors.extend(codes)

    # --- judging ------------------------------------------------------------------

    def coinbase_parts(self, template: Template) -> tuple[bytes, bytes]:
        """Prefix/suffix as sent; with segwit_coinbase the BIP141 form (spec says strip)."""
        if not self.config.segwit_coinbase:
            return template.coinb1, template.coinb2
        prefix = template.coinb1[:4] + b"\x00\x01" + template.coinb1[4:]
        suffix = template.coinb2[:-4] + b"\x01\x20" + bytes(32) + template.coinb2[-4:]
        return prefix, suffix

    def share_hash(
        self, job: PoolJob, full_extranonce: bytes, version: int, ntime: int, nonce: int
    ) -> int:
        """The header hash (little-endian int) from the stripped coinbase (the txid)."""
        t = job.template
        prefix = t.header_prefix(full_extranonce, b"")
        return header_hash_int(prefix, version, ntime, t.nbits, nonce)

    def difficulty_of(self, hash_int: int) -> float:
        return difficulty_of(hash_int)
