"""Client-side state of one extended channel: job activation and pending submits.

Job semantics (spec §5.3.15-16, notes §4.3): a job without ``min_ntime`` is a
*future* job that waits for the SetNewPrevHash naming it; a job with
``min_ntime`` is active at once on the current prev_hash.  A SetNewPrevHash
invalidates every other queued job of the channel.

Verdicts (spec §5.3.13-14): SubmitShares.Success acknowledges every submit up
to ``last_sequence_number`` that got no SubmitShares.Error (pools batch them,
SRI every 10); SubmitShares.Error names one sequence number.
"""

from __future__ import annotations

from typing import NamedTuple

from stratum_proxy.sv2.client_events import (
    STATUS_ACCEPTED,
    STATUS_NO_RESPONSE,
    STATUS_REJECTED,
    ClientEvent,
    JobActivated,
    ShareVerdict,
)
from stratum_proxy.sv2.messages import NewExtendedMiningJob, SetNewPrevHash

# Future jobs kept while waiting for their prev_hash.  Pools send one or two;
# the bound stops a broken pool from growing the table without end.
MAX_FUTURE_JOBS = 64
_SEQ_MOD = 1 << 32
_SEQ_HALF = 1 << 31


def seq_at_or_before(seq: int, last: int) -> bool:
    """``seq`` ≤ ``last`` in U32 serial arithmetic (sequence numbers wrap)."""
    return (last - seq) % _SEQ_MOD < _SEQ_HALF


class PendingSubmit(NamedTuple):
    """A submit on the wire, awaiting its verdict.

    A tuple made with ``tuple.__new__`` (``_pending``): one per share, and a
    tuple costs a fraction of a class instance to build.
    """

    sequence_number: int
    token: object
    submitted_at: float


_pending = tuple.__new__


class ClientChannel:
    """One extended channel as the client sees it."""

    def __init__(
        self,
        *,
        channel_id: int,
        target: int,
        extranonce_prefix: bytes,
        extranonce_size: int,
        group_channel_id: int | None,
    ) -> None:
        self.channel_id = channel_id
        self.target = target
        self.extranonce_prefix = extranonce_prefix
        self.extranonce_size = extranonce_size
        self.group_channel_id = group_channel_id
        self.prev_hash: SetNewPrevHash | None = None
        self.future_jobs: dict[int, NewExtendedMiningJob] = {}
        self.pending: dict[int, PendingSubmit] = {}
        self._next_seq = 0

    # --- jobs -------------------------------------------------------------------

    def on_job(self, job: NewExtendedMiningJob) -> JobActivated | str | None:
        """The activation, None for a stored future job, or a notice text."""
        if job.min_ntime is None:
            self.future_jobs[job.job_id] = job
            while len(self.future_jobs) > MAX_FUTURE_JOBS:
                self.future_jobs.pop(next(iter(self.future_jobs)))
            return None
        if self.prev_hash is None:
            return f"job {job.job_id} on channel {self.channel_id} arrived before any prev_hash"
        return JobActivated(
            channel_id=self.channel_id, job=job, prev_hash=self.prev_hash, clean=False
        )

    def on_prev_hash(self, msg: SetNewPrevHash) -> JobActivated | str:
        self.prev_hash = msg
        job = self.future_jobs.pop(msg.job_id, None)
        self.future_jobs.clear()  # spec: a new prev_hash invalidates every other queued job
        if job is None:
            return (
                f"SetNewPrevHash names unknown future job {msg.job_id} on channel {self.channel_id}"
            )
        return JobActivated(channel_id=self.channel_id, job=job, prev_hash=msg, clean=True)

    # --- submits ----------------------------------------------------------------

    def add_pending(self, token: object, now: float) -> int:
        seq = self._next_seq
        self._next_seq = (seq + 1) % _SEQ_MOD
        self.pending[seq] = _pending(PendingSubmit, (seq, token, now))
        return seq

    def _verdict(self, entry: PendingSubmit, status: str, code: str, now: float) -> ShareVerdict:
        return ShareVerdict(
            channel_id=self.channel_id,
            sequence_number=entry.sequence_number,
            token=entry.token,
            status=status,
            error_code=code,
            submitted_at=entry.submitted_at,
            resolved_at=now,
        )

    def on_success(self, last_seq: int, count: int, now: float, verdicts: list[ClientEvent]) -> str:
        """Accept every pending submit at or before ``last_seq``, appending their verdicts
        to ``verdicts``; returns a notice text if the pool's count differs ('' if not).

        ``pending`` is in submit order, which is sequence order (verdicts only
        remove entries), so the accepted ones are a prefix of it: the scan stops
        at the first later submit instead of visiting every pending one (a
        Success comes once per share, and an aggregated channel has many waiting).
        """
        pending = self.pending
        done: list[int] = []
        for seq in pending:
            if (last_seq - seq) % _SEQ_MOD >= _SEQ_HALF:  # not seq_at_or_before(seq, last_seq)
                # Every later submit is after last_seq too, unless last_seq is about
                # half the sequence space away (a broken pool; serial order wraps):
                # then each pending submit is judged on its own.
                newest = next(reversed(pending))
                if (newest - seq) % _SEQ_MOD > (last_seq - seq) % _SEQ_MOD - _SEQ_HALF:
                    done = [s for s in pending if seq_at_or_before(s, last_seq)]
                break
            done.append(seq)
        channel_id = self.channel_id
        for seq in done:
            _, token, submitted_at = pending.pop(seq)
            verdicts.append(
                ShareVerdict(
                    channel_id=channel_id,
                    sequence_number=seq,
                    token=token,
                    status=STATUS_ACCEPTED,
                    error_code="",
                    submitted_at=submitted_at,
                    resolved_at=now,
                )
            )
        if count != len(done):
            return (
                f"SubmitShares.Success on channel {self.channel_id} up to {last_seq} counts "
                f"{count} accepted, {len(done)} submits were waiting"
            )
        return ""

    def on_error(self, seq: int, code: str, now: float) -> ShareVerdict | None:
        entry = self.pending.pop(seq, None)
        if entry is None:
            return None
        return self._verdict(entry, STATUS_REJECTED, code, now)

    def expire(self, deadline: float, now: float, reason: str) -> list[ShareVerdict]:
        """Submits sent at or before ``deadline`` become no_response."""
        old = [s for s, e in self.pending.items() if e.submitted_at <= deadline]
        return [self._verdict(self.pending.pop(s), STATUS_NO_RESPONSE, reason, now) for s in old]

    def drop_pending(self, now: float, reason: str) -> list[ShareVerdict]:
        verdicts = [
            self._verdict(e, STATUS_NO_RESPONSE, reason, now) for e in self.pending.values()
        ]
        self.pending.clear()
        return verdicts

    def oldest_pending(self) -> float | None:
        # Insertion order is submit order, so the first entry is the oldest.
        for entry in self.pending.values():
            return entry.submitted_at
        return None
