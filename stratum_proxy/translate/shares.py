"""One SV1 submit in translate mode: its row, its share math, the local checks.

Every submit becomes exactly one ShareRecord.  ``judge_locally`` (with
``check_submit`` for the share math) either returns the SV2 fields to forward
(the row already holds hash and difficulties) or the local rejection (SV1 code,
text for the miner, reason for the row).  Local reasons start with "proxy:" so
they never pass for the pool's own words.  ``settle`` turns the pool's verdict
into the final row and the miner's answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from stratum_proxy.shares import hex_u32, submitted_share
from stratum_proxy.store.record import (
    STATUS_ACCEPTED,
    STATUS_NO_RESPONSE,
    STATUS_REJECTED,
    ShareRecord,
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


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalReject:
    code: int  # SV1 error code for the miner
    message: str  # text for the miner
    reason: str  # the row's reject_reason


@dataclass(frozen=True, slots=True, kw_only=True)
class Forward:
    """What goes into SubmitSharesExtended."""

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


def new_record(
    submit: Submit,
    *,
    now: float,
    proxy_id: str,
    upstream: str,
    channel_id: int,
    connection_id: int,
    miner_addr: str,
    extranonce1: bytes,
    pool_difficulty: float,
) -> ShareRecord:
    """The row before any math: status no_response until a verdict is known.

    ``channel_id`` is the pool's SV2 channel, ``connection_id`` the miner's connection.
    """
    return ShareRecord(
        ts=now,
        proxy_id=proxy_id,
        upstream=upstream,
        protocol="sv1",
        channel_id=channel_id,
        worker=submit.worker,
        miner_addr=miner_addr,
        job_id=submit.job_id,
        extranonce2=submit.extranonce2,
        ntime=submit.ntime,
        nonce=submit.nonce,
        version=0,
        share_hash="",
        share_difficulty=0.0,
        pool_difficulty=pool_difficulty,
        network_difficulty=0.0,
        status=STATUS_NO_RESPONSE,
        reject_reason="",
        is_block=False,
        response_ms=0.0,
        version_bits=submit.version_bits or "",
        extranonce1=extranonce1.hex(),
        connection_id=connection_id,
        miner_difficulty=pool_difficulty,
    )


def check_submit(
    record: ShareRecord,
    submit: Submit,
    job: TranslatedJob,
    *,
    local: bytes,
    extranonce2_size: int,
    version_mask: int,
    channel_target: int,
) -> tuple[ShareRecord, Forward | LocalReject]:
    """Rebuild the share on ``job``, fill the row, decide whether the pool sees it.

    A share whose hash misses the channel target would be refused by the pool
    (difficulty-too-low) and counted against the farm there, so it is
    rejected here with the same SV1 code a pool uses (23).
    """
    # The miner works at the channel's target: its difficulty is the pool's.
    record = record._replace(
        pool_difficulty=job.difficulty,
        miner_difficulty=job.difficulty,
        network_difficulty=job.job.network_difficulty,
    )
    try:
        extranonce2 = bytes.fromhex(submit.extranonce2)
        if len(extranonce2) != extranonce2_size or len(submit.extranonce2) != 2 * extranonce2_size:
            raise ValueError(
                f"extranonce2 must be {extranonce2_size} bytes, got {submit.extranonce2[:80]!r}"
            )
        extranonce = local + extranonce2
        result = submitted_share(
            job.job, extranonce, submit.ntime, submit.nonce, submit.version_bits, version_mask
        )
    except ValueError as exc:
        return record, LocalReject(
            code=SV1_OTHER, message=f"malformed share: {exc}", reason=REASON_MALFORMED
        )
    record = record._replace(
        version=result.version,
        share_hash=result.hash_hex,
        share_difficulty=result.difficulty,
        is_block=result.is_block,
    )
    if not result.meets(channel_target):
        return record, LocalReject(
            code=SV1_LOW_DIFFICULTY, message="low difficulty share", reason=REASON_BELOW_TARGET
        )
    return record, Forward(
        job_id=job.sv2_job_id,
        nonce=hex_u32(submit.nonce),  # both known to be 8 hex digits by now
        ntime=hex_u32(submit.ntime),
        version=result.version,
        extranonce=extranonce,
    )


def judge_locally(
    record: ShareRecord, submit: Submit, miner: Miner, channel: Channel | None, malformed: str
) -> tuple[ShareRecord, Forward | LocalReject]:
    """What the proxy can tell before the pool: not subscribed, malformed, unknown job, math."""
    if channel is None or not miner.session.subscribed:
        return record, NOT_SUBSCRIBED
    if malformed:
        return record, LocalReject(code=SV1_OTHER, message=malformed, reason=REASON_MALFORMED)
    job_id = parse_job_id(submit.job_id)
    job = channel.jobs.get(job_id) if job_id is not None else None
    if job is None:
        return record, JOB_NOT_FOUND
    return check_submit(
        record,
        submit,
        job,
        local=miner.local,
        extranonce2_size=miner.session.extranonce2_size,
        version_mask=miner.session.version_mask,
        channel_target=channel.target,
    )


def settle(record: ShareRecord, verdict: ShareVerdict) -> tuple[ShareRecord, int | None, str]:
    """The final row, and the miner's answer: SV1 error code (None: accepted) and text.

    ``response_ms`` is the round trip on the clock the client was given (monotonic).
    """
    status = verdict.status
    if status == STATUS_ACCEPTED:
        code, text = None, ""
    elif status == STATUS_REJECTED:
        code, text = sv1_error_code(verdict.error_code), verdict.error_code
    else:
        code, text = SV1_OTHER, "no response from pool"
    record = record._replace(
        status=status,
        reject_reason="" if status == STATUS_ACCEPTED else verdict.error_code,
        verdict_by="" if status == STATUS_NO_RESPONSE else "pool",
    )
    if status != STATUS_NO_RESPONSE:
        record = record._replace(
            response_ms=max(0.0, (verdict.resolved_at - verdict.submitted_at) * 1000.0)
        )
    return record, code, text
