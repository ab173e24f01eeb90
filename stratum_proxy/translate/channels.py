"""The translator's view of miners and of the extended channels they mine on."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from stratum_proxy.shares.math import DIFF1_TARGET
from stratum_proxy.sv1.downstream import Sv1Downstream
from stratum_proxy.translate.jobs import TranslatedJob


@dataclass(slots=True, eq=False)
class Miner:
    miner_id: int
    addr: str
    session: Sv1Downstream
    row: tuple[Any, ...]  # the columns all its share rows have in common (shares.row_template)
    channel_id: int | None = None
    local: bytes = b""  # the proxy's extranonce bytes between the prefix and extranonce2
    worker: str = ""


@dataclass(slots=True, eq=False)
class Channel:
    """One upstream extended channel and the miners on it.

    ``jobs`` keeps recent jobs (stale ones too: a share on a job the pool has
    retired still goes to the pool, whose verdict, stale-share, is the truth).
    """

    channel_id: int
    prefix: bytes
    extranonce_size: int
    local_size: int  # extranonce bytes the proxy fills in before the miner's extranonce2
    target: int
    max_jobs: int
    jobs: OrderedDict[int, TranslatedJob] = field(default_factory=OrderedDict)
    current: TranslatedJob | None = None
    miners: set[int] = field(default_factory=set)
    _slots_used: set[int] = field(default_factory=set)
    _next_slot: int = 0

    @property
    def difficulty(self) -> float:
        return DIFF1_TARGET / self.target if self.target else float("inf")

    def add_job(self, job: TranslatedJob) -> None:
        self.jobs[job.sv2_job_id] = job
        self.jobs.move_to_end(job.sv2_job_id)
        while len(self.jobs) > self.max_jobs:
            self.jobs.popitem(last=False)
        self.current = job

    def retarget_current(self) -> TranslatedJob | None:
        """After SetTarget: the current job, now under the new target."""
        if self.current is None:
            return None
        job = TranslatedJob(
            sv2_job_id=self.current.sv2_job_id,
            job=self.current.job,
            target=self.target,
            version_rolling_allowed=self.current.version_rolling_allowed,
        )
        self.add_job(job)
        return job

    def attach(self, miner: Miner, *, aggregated: bool) -> bytes | None:
        """Give ``miner`` its local extranonce bytes (None: no slot left)."""
        if aggregated:
            slot = self._take_slot()
            if slot is None:
                return None
            local = slot.to_bytes(self.local_size, "big")
        else:
            local = bytes(self.local_size)  # one miner: zero padding only
        miner.channel_id, miner.local = self.channel_id, local
        self.miners.add(miner.miner_id)
        return local

    def detach(self, miner: Miner) -> None:
        self.miners.discard(miner.miner_id)
        if miner.local and self.local_size:
            self._slots_used.discard(int.from_bytes(miner.local, "big"))

    def _take_slot(self) -> int | None:
        space = 1 << (8 * self.local_size)
        if len(self._slots_used) >= space:
            return None
        # Round-robin from the last slot handed out, so a slot freed by a miner
        # that just left is reused last (its late shares stay distinguishable).
        while self._next_slot in self._slots_used:
            self._next_slot = (self._next_slot + 1) % space
        slot = self._next_slot
        self._slots_used.add(slot)
        self._next_slot = (slot + 1) % space
        return slot
