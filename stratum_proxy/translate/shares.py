"""One SV1 submit in translate mode: its row, its share math, the local checks.

Every submit becomes exactly one ShareRecord.  While the share is judged and
then awaits the pool, its row is a draft: ShareRecord's values in a list,
filled in place by column (``store.record.INDEX``), the way the SV1 tracker
does it (``sv1.records``); the record is made once, with the verdict.

``new_draft`` starts the row from the miner's constant columns (``row_template``);
``judge_locally`` (with ``check_submit`` for the share math) either returns the
SV2 fields to forward (the draft then holds hash and difficulties) or the local
rejection (SV1 code, text for the miner, reason for the row), which
``local_verdict`` turns into the record.  Local reasons start with "proxy:" so
they never pass for the pool's own words.  ``settle`` turns the pool's verdict
into the final record and the miner's answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from stratum_proxy.shares import submitted_share
from stratum_proxy.store.record import (
    INDEX,
    STATUS_ACCEPTED,
    STATUS_NO_RESPONSE,
    STATUS_REJECTED,
    ShareRecord,
    empty_row,
)
from stratum_proxy.sv1.messages import Submit
from stratum_proxy.sv2.client_events import ShareVerdict
from stratum_proxy.translate.channels import Channel, Miner
from stratum_proxy.translate.jobs import (
    SV1_JOB_NOT_FOUND,
    SV1_LOW_DIFFICULTY,
    SV1_NOT_SUBSCRIBED,
    SV1_OTHER,
    TranslatedJob,
    parse_job_id,
    sv1_error_code,
)

REASON_NOT_SUBSCRIBED = "proxy: not subscribed"
REASON_JOB_NOT_FOUND = "proxy: job not found"
REASON_MALFORMED = "proxy: malformed submit"
REASON_BELOW_TARGET = "proxy: below pool target"

# A share's row until its verdict: ShareRecord's values in column order.
ShareDraft = list[Any]
_TS, _CHANNEL_ID, _WORKER = INDEX["ts"], INDEX["channel_id"], INDEX["worker"]
_JOB_ID, _EXTRANONCE2 = INDEX["job_id"], INDEX["extranonce2"]
_NTIME, _NONCE, _VERSION_BITS = INDEX["ntime"], INDEX["nonce"], INDEX["version_bits"]
_EXTRANONCE1, _POOL_DIFF, _MINER_DIFF = (
    INDEX["extranonce1"],
    INDEX["pool_difficulty"],
    INDEX["miner_difficulty"],
)
_NETWORK_DIFF, _VERSION, _HASH = (
    INDEX["network_difficulty"],
    INDEX["version"],
    INDEX["share_hash"],
)
_SHARE_DIFF, _IS_BLOCK = INDEX["share_difficulty"], INDEX["is_block"]
_STATUS, _REASON, _VERDICT_BY = INDEX["status"], INDEX["reject_reason"], INDEX["verdict_by"]
_RESPONSE_MS = INDEX["response_ms"]
FORWARDED_AT = INDEX["forwarded"]

_new_tuple = tuple.__new__  # NamedTuple's own __new__ adds a Python call per share
_fromhex = bytes.fromhex


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalReject:
    code: int  # SV1 error code for the miner
    message: str  # text for the miner
    reason: str  # the row's reject_reason


class Forward(NamedTuple):
    """What goes into SubmitSharesExtended (made with ``tuple.__new__``: once per share)."""

    job_id: int
    nonce: int
    ntime: int
    version: int
    extranonce: bytes


NOT_SUBSCRIBED = LocalReject(
    code=SV1_NOT_SUBSCRIBED, message="not subscribed", reason=REASON_NOT_SUBSCRIBED
)
JOB_NOT_FOUND = LocalReject(
    code=SV1_JOB_NOT_FOUND, message="job not found", reason=REASON_JOB_NOT_FOUND
)
BELOW_TARGET = LocalReject(
    code=SV1_LOW_DIFFICULTY, message="low difficulty share", reason=REASON_BELOW_TARGET
)


def row_template(
    *, proxy_id: str, upstream: str, miner_addr: str, connection_id: int
) -> tuple[Any, ...]:
    """The columns every row of one miner connection shares; status no_response."""
    row = empty_row()
    row[INDEX["proxy_id"]] = proxy_id
    row[INDEX["upstream"]] = upstream
    row[INDEX["protocol"]] = "sv1"
    row[INDEX["miner_addr"]] = miner_addr
    row[INDEX["connection_id"]] = connection_id
    return tuple(row)


def new_draft(
    submit: Submit,
    template: tuple[Any, ...],
    *,
    now: float,
    channel_id: int,
    extranonce1: bytes,
    pool_difficulty: float,
) -> ShareDraft:
    """The row before any math: status no_response until a verdict is known.

    ``channel_id`` is the pool's SV2 channel; ``template`` (``row_template``)
    holds the miner's connection.
    """
    row = [*template]
    row[_TS] = now
    row[_CHANNEL_ID] = channel_id
    row[_WORKER] = submit.worker
    row[_JOB_ID] = submit.job_id
    row[_EXTRANONCE2] = submit.extranonce2
    row[_NTIME] = submit.ntime
    row[_NONCE] = submit.nonce
    row[_POOL_DIFF] = row[_MINER_DIFF] = pool_difficulty
    row[_VERSION_BITS] = submit.version_bits or ""
    row[_EXTRANONCE1] = extranonce1.hex()
    return row


def check_submit(
    draft: ShareDraft,
    submit: Submit,
    job: TranslatedJob,
    *,
    local: bytes,
    extranonce2_size: int,
    version_mask: int,
    channel_target: int,
) -> Forward | LocalReject:
    """Rebuild the share on ``job``, fill the draft, decide whether the pool sees it.

    A share whose hash misses the channel target would be refused by the pool
    (difficulty-too-low) and counted against the farm there, so it is
    rejected here with the same SV1 code a pool uses (23).
    """
    # The miner works at the channel's target: its difficulty is the pool's.
    draft[_POOL_DIFF] = draft[_MINER_DIFF] = job.difficulty
    draft[_NETWORK_DIFF] = job.job.network_difficulty
    try:
        extranonce2 = _fromhex(submit.extranonce2)
        if len(extranonce2) != extranonce2_size or len(submit.extranonce2) != 2 * extranonce2_size:
            raise ValueError(
                f"extranonce2 must be {extranonce2_size} bytes, got {submit.extranonce2[:80]!r}"
            )
        extranonce = local + extranonce2
        result = submitted_share(
            job.job, extranonce, submit.ntime, submit.nonce, submit.version_bits, version_mask
        )
    except ValueError as exc:
        return LocalReject(
            code=SV1_OTHER, message=f"malformed share: {exc}", reason=REASON_MALFORMED
        )
    draft[_VERSION] = result.version
    draft[_HASH] = result.hash_hex
    draft[_SHARE_DIFF] = result.difficulty
    draft[_IS_BLOCK] = result.is_block
    if result.hash_int > channel_target:
        return BELOW_TARGET
    # submitted_share accepted ntime and nonce as exactly 8 hex digits each.
    return _new_tuple(
        Forward,
        (
            job.sv2_job_id,
            int(submit.nonce, 16),
            int(submit.ntime, 16),
            result.version,
            extranonce,
        ),
    )


def judge_locally(
    draft: ShareDraft, submit: Submit, miner: Miner, channel: Channel | None, malformed: str
) -> Forward | LocalReject:
    """What the proxy can tell before the pool: not subscribed, malformed, unknown job, math."""
    if channel is None or not miner.session.subscribed:
        return NOT_SUBSCRIBED
    if malformed:
        return LocalReject(code=SV1_OTHER, message=malformed, reason=REASON_MALFORMED)
    job_id = parse_job_id(submit.job_id)
    job = channel.jobs.get(job_id) if job_id is not None else None
    if job is None:
        return JOB_NOT_FOUND
    return check_submit(
        draft,
        submit,
        job,
        local=miner.local,
        extranonce2_size=miner.session.extranonce2_size,
        version_mask=miner.session.version_mask,
        channel_target=channel.target,
    )


def local_verdict(draft: ShareDraft, reject: LocalReject) -> ShareRecord:
    """The record of a share the proxy rejected itself (never forwarded).  Uses the draft up."""
    draft[_STATUS] = STATUS_REJECTED
    draft[_REASON] = reject.reason
    draft[_VERDICT_BY] = "proxy"
    record: ShareRecord = _new_tuple(ShareRecord, draft)
    return record


def settle(draft: ShareDraft, verdict: ShareVerdict) -> tuple[ShareRecord, int | None, str]:
    """The final record, and the miner's answer: SV1 error code (None: accepted) and text.

    ``response_ms`` is the round trip on the clock the client was given
    (monotonic).  Uses the draft up.
    """
    status = verdict.status
    draft[_STATUS] = status
    if status == STATUS_ACCEPTED:
        code, text = None, ""
    elif status == STATUS_REJECTED:
        code, text = sv1_error_code(verdict.error_code), verdict.error_code
        draft[_REASON] = verdict.error_code
    else:
        code, text = SV1_OTHER, "no response from pool"
        draft[_REASON] = verdict.error_code
    if status != STATUS_NO_RESPONSE:
        draft[_VERDICT_BY] = "pool"
        draft[_RESPONSE_MS] = max(0.0, (verdict.resolved_at - verdict.submitted_at) * 1000.0)
    record: ShareRecord = _new_tuple(ShareRecord, draft)
    return record, code, text
