"""Aggregate mode's jobs: an upstream's notify as each miner sees it, and share checks.

A pool job becomes one miner job per (upstream job, pad) with a job id of the
proxy's own (``JobIds``): ids stay unique when miners move to another
upstream, whose pool may number its jobs the same way.  Toward the miner the
upstream's extranonce1 is folded into coinb1 and the pad into coinb2 (see
``extranonce``), so the miner's header is the pool's header.

Each miner keeps its recent jobs (``MinerJobs``) with the difficulty that was
in force for it when the job was sent: a share is judged by its own job's
difficulties, never by ones set later.  A job whose upstream sent a newer
``clean_jobs`` job, or whose upstream connection was lost, is stale.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from stratum_proxy.shares import Job, swap_prevhash_words
from stratum_proxy.shares.math import DIFF1_TARGET
from stratum_proxy.sv1 import messages as m

# Shares remembered per job to refuse duplicates (a miner resubmitting the same
# nonce would otherwise be credited twice); bounded against a hostile miner.
_MAX_SEEN_PER_JOB = 65_536


@dataclass(slots=True, eq=False)
class UpstreamJob:
    """One notify from one upstream connection."""

    upstream_id: int
    notify: m.Notify
    pool_difficulty: float
    extranonce1: bytes  # the upstream's, folded into coinb1 toward miners
    extranonce2_size: int  # the upstream's, when the job came
    pool_name: str = ""  # the pool's configured name: the rows' ``upstream``
    stale: bool = False  # a newer clean job came, or the connection was lost
    views: dict[tuple[int, int], MinerView] = field(default_factory=dict)  # by (pad, ntime)

    @property
    def pool_target(self) -> int:
        return _target(self.pool_difficulty)


@dataclass(slots=True, eq=False)
class MinerView:
    """An upstream job as miners with one pad size see it."""

    job_id: str  # the proxy's id
    upstream: UpstreamJob
    pad: int
    notify_params: list[Any]

    def share_job(self, prefix: bytes) -> Job:
        """The share-math view for a miner whose extranonce1 is ``prefix``."""
        n = self.upstream.notify
        return Job(
            job_id=self.job_id,
            prevhash=swap_prevhash_words(n.prevhash),
            coinb1=n.coinb1 + self.upstream.extranonce1,
            coinb2=bytes(self.pad) + n.coinb2,
            merkle_branch=n.merkle_branch,
            version=n.version,
            nbits=n.nbits,
            ntime=n.ntime,
            clean_jobs=n.clean_jobs,
            extranonce1=prefix,
            pool_difficulty=self.upstream.pool_difficulty,
        )


class JobIds:
    """The proxy's job ids: short hex, unique for the life of the process."""

    def __init__(self) -> None:
        self._next = 1

    def new(self) -> str:
        n = self._next
        self._next += 1
        return f"{n:x}"


def miner_view(job: UpstreamJob, pad: int, ids: JobIds, ntime: int | None = None) -> MinerView:
    """The job as miners with ``pad`` bytes of padding see it (built once per pad).

    ``ntime`` (default: the pool's) gives a keepalive copy of a job with a
    later time: a new job id for the miner, the same job for the pool.
    """
    n = job.notify
    ntime = n.ntime if ntime is None else ntime
    view = job.views.get((pad, ntime))
    if view is None:
        job_id = ids.new()
        params = [
            job_id,
            n.prevhash.hex(),
            (n.coinb1 + job.extranonce1).hex(),
            (bytes(pad) + n.coinb2).hex(),
            [node.hex() for node in n.merkle_branch],
            f"{n.version:08x}",
            f"{n.nbits:08x}",
            f"{ntime:08x}",
            n.clean_jobs,
        ]
        view = MinerView(job_id=job_id, upstream=job, pad=pad, notify_params=params)
        job.views[(pad, ntime)] = view
    return view


@dataclass(slots=True, eq=False)
class SentJob:
    """A job as one miner got it: the view, its share-math job, its difficulty then."""

    view: MinerView
    job: Job
    miner_difficulty: float
    seen: set[tuple[str, str, str, str | None]] = field(default_factory=set)

    @property
    def miner_target(self) -> int:
        return _target(self.miner_difficulty)

    def first_time(self, extranonce2: str, ntime: str, nonce: str, bits: str | None) -> bool:
        """False for a share this miner already submitted on this job (a duplicate)."""
        key = (extranonce2.lower(), ntime.lower(), nonce.lower(), bits.lower() if bits else bits)
        if key in self.seen:
            return False
        if len(self.seen) < _MAX_SEEN_PER_JOB:
            self.seen.add(key)
        return True


class MinerJobs:
    """One miner's recent jobs by the proxy's job id, oldest dropped first."""

    def __init__(self, keep: int) -> None:
        self._keep = keep
        self._jobs: OrderedDict[str, SentJob] = OrderedDict()

    def add(self, sent: SentJob) -> None:
        self._jobs[sent.view.job_id] = sent
        while len(self._jobs) > self._keep:
            self._jobs.popitem(last=False)

    def get(self, job_id: str) -> SentJob | None:
        return self._jobs.get(job_id)

    def latest(self) -> SentJob | None:
        return next(reversed(self._jobs.values()), None)


def _target(difficulty: float) -> int:
    return int(DIFF1_TARGET / difficulty) if difficulty > 0 else DIFF1_TARGET
