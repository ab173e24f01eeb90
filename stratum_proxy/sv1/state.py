"""What the pool has told the miner so far: extranonce, difficulty, mask, jobs.

Extranonce1 and difficulty are captured into each job when it is notified
(they apply to jobs sent after they changed); the version mask is read at
submit time (BIP310: a new mask is valid immediately).
"""

from __future__ import annotations

from stratum_proxy.shares import Job, swap_prevhash_words
from stratum_proxy.sv1.events import (
    DifficultySet,
    Event,
    ExtranonceChanged,
    PoolMessage,
    PoolReconnectRequested,
    Subscribed,
    VersionMaskSet,
)
from stratum_proxy.sv1.messages import (
    ClientReconnect,
    Notify,
    SetDifficulty,
    SetExtranonce,
    SetVersionMask,
    ShowMessage,
)
from stratum_proxy.sv1.params import parse_configure_result, parse_subscribe_result

# Stratum's difficulty before the first mining.set_difficulty.
DEFAULT_DIFFICULTY = 1.0


_Notification = (
    Notify | SetDifficulty | SetExtranonce | SetVersionMask | ClientReconnect | ShowMessage
)


class ConnectionState:
    """Mutable per-connection state; the job table is bounded (oldest dropped)."""

    # The pool notifications ``apply`` understands.
    NOTIFICATIONS = (
        Notify,
        SetDifficulty,
        SetExtranonce,
        SetVersionMask,
        ClientReconnect,
        ShowMessage,
    )

    __slots__ = (
        "_max_jobs",
        "difficulty",
        "extranonce1",
        "extranonce1_hex",
        "extranonce2_size",
        "jobs",
        "mask",
    )

    def __init__(self, max_jobs: int) -> None:
        if max_jobs < 1:
            raise ValueError(f"max_jobs must be positive, got {max_jobs}")
        self._max_jobs = max_jobs
        self.extranonce1 = b""
        self.extranonce1_hex = ""
        self.extranonce2_size = 0
        self.difficulty = DEFAULT_DIFFICULTY
        self.mask = 0  # BIP310 mask in force; 0 until the pool grants one
        self.jobs: dict[str, Job] = {}

    def set_extranonce(self, extranonce1_hex: str, extranonce2_size: int | None) -> None:
        """New extranonce1 (validated hex) and, when given, extranonce2 size."""
        self.extranonce1 = bytes.fromhex(extranonce1_hex)
        self.extranonce1_hex = extranonce1_hex
        if extranonce2_size is not None:
            self.extranonce2_size = extranonce2_size

    def add_job(self, notify: Notify) -> Job:
        """Record a notified job with the extranonce1 and difficulty in force.

        clean_jobs does not drop older jobs: shares on them still arrive and
        must be rebuilt (the pool rejects them as stale; we still want their
        difficulty).  A re-sent job id replaces the older job.
        """
        job = Job(
            job_id=notify.job_id,
            prevhash=swap_prevhash_words(notify.prevhash),
            coinb1=notify.coinb1,
            coinb2=notify.coinb2,
            merkle_branch=notify.merkle_branch,
            version=notify.version,
            nbits=notify.nbits,
            ntime=notify.ntime,
            clean_jobs=notify.clean_jobs,
            extranonce1=self.extranonce1,
            pool_difficulty=self.difficulty,
        )
        jobs = self.jobs
        jobs.pop(notify.job_id, None)
        jobs[notify.job_id] = job
        if len(jobs) > self._max_jobs:
            del jobs[next(iter(jobs))]
        return job

    def apply(
        self,
        msg: Notify
        | SetDifficulty
        | SetExtranonce
        | SetVersionMask
        | ClientReconnect
        | ShowMessage,
    ) -> Event | None:
        """Apply one pool notification; the event to report, if any."""
        if type(msg) is Notify:
            self.add_job(msg)
            return None
        if type(msg) is SetDifficulty:
            self.difficulty = msg.difficulty
            return DifficultySet(difficulty=msg.difficulty)
        if type(msg) is SetExtranonce:
            self.set_extranonce(msg.extranonce1, msg.extranonce2_size)
            return ExtranonceChanged(
                extranonce1=self.extranonce1_hex, extranonce2_size=self.extranonce2_size
            )
        if type(msg) is SetVersionMask:
            self.mask = msg.mask
            return VersionMaskSet(mask=msg.mask)
        if type(msg) is ClientReconnect:
            return PoolReconnectRequested(host=msg.host, port=msg.port, wait_s=msg.wait_s)
        if type(msg) is ShowMessage:
            return PoolMessage(text=msg.text)
        return None

    def apply_result(
        self, method: str, result: object, requested_mask: int | None
    ) -> Subscribed | VersionMaskSet | None:
        """Apply the pool's successful answer to the miner's subscribe/configure.

        Raises ``InvalidMessage`` when the result has an unusable shape.
        """
        if method == "mining.subscribe":
            extranonce1, size = parse_subscribe_result(result)
            self.set_extranonce(extranonce1, size)
            return Subscribed(extranonce1=extranonce1, extranonce2_size=size)
        if method == "mining.configure":
            granted, mask = parse_configure_result(result)
            if granted is None:
                return None
            if mask is None:  # granted without a mask: BIP310's default is the miner's
                mask = requested_mask if requested_mask is not None else 0xFFFFFFFF
            self.mask = mask
            return VersionMaskSet(mask=mask)
        return None
