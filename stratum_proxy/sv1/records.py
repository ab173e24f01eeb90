"""Turn one ``mining.submit`` into the share row it will be stored as.

The hot path: hex → ints, BIP310 version, one header hash (the merkle root is
cached per job and extranonce2).  A share that cannot be rebuilt (unknown job,
fields that are not 8 hex digits) is still a row, with share_hash '' and
share_difficulty 0.0: the pool will judge it anyway and the farm must see it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from stratum_proxy.shares import Job, compute_share, rolled_version
from stratum_proxy.store.record import STATUS_NO_RESPONSE, ShareRecord
from stratum_proxy.sv1.messages import RpcId, Submit


@dataclass(frozen=True, slots=True, kw_only=True)
class ShareContext:
    """Who and where: the constant columns of every row of one connection."""

    proxy_id: str
    upstream: str
    channel_id: int
    miner_addr: str
    protocol: str = "sv1"


def hex_u32(text: str) -> int:
    """Exactly 8 hex digits (submit's ntime, nonce, version bits) → int."""
    if len(text) != 8:
        raise ValueError(f"expected 8 hex digits, got {text[:80]!r}")
    raw = bytes.fromhex(text)
    if len(raw) != 4:  # fromhex skips spaces: "1f 2e 3d" is 8 chars, 3 bytes
        raise ValueError(f"expected 8 hex digits, got {text!r}")
    return int.from_bytes(raw, "big")


def share_record(
    submit: Submit,
    job: Job | None,
    *,
    context: ShareContext,
    upstream: str,
    mask: int,
    difficulty_now: float,
    now: float,
) -> ShareRecord:
    """The row for ``submit``, status not yet known (set when the pool answers).

    pool_difficulty is the job's (captured at notify time); for an unknown job
    it is the difficulty in force now, and version / network_difficulty are 0.
    ``mask`` is the BIP310 mask in force (0 when none was negotiated, so that
    version bits change nothing).
    """
    record = ShareRecord(
        ts=now,
        proxy_id=context.proxy_id,
        upstream=upstream,
        protocol=context.protocol,
        channel_id=context.channel_id,
        worker=submit.worker,
        miner_addr=context.miner_addr,
        job_id=submit.job_id,
        extranonce2=submit.extranonce2,
        ntime=submit.ntime,
        nonce=submit.nonce,
        version=0,
        share_hash="",
        share_difficulty=0.0,
        pool_difficulty=difficulty_now,
        network_difficulty=0.0,
        status=STATUS_NO_RESPONSE,
        reject_reason="",
        is_block=False,
        response_ms=0.0,
        version_bits=submit.version_bits or "",
    )
    if job is not None:
        record.pool_difficulty = job.pool_difficulty
        record.network_difficulty = job.network_difficulty
        record.extranonce1 = job.extranonce1.hex()
        _fill_share(record, submit, job, mask)
    return record


def _fill_share(record: ShareRecord, submit: Submit, job: Job, mask: int) -> None:
    try:
        bits = None if submit.version_bits is None else hex_u32(submit.version_bits)
        version = rolled_version(job.version, mask, bits)
        record.version = version
        extranonce2 = bytes.fromhex(submit.extranonce2)
        result = compute_share(
            job, extranonce2, hex_u32(submit.ntime), hex_u32(submit.nonce), version
        )
    except ValueError:
        return  # the pool will reject it; the row keeps hash '' and difficulty 0
    record.share_hash = result.hash_hex
    record.share_difficulty = result.difficulty
    record.is_block = result.is_block


def salvage_submit(msg_id: RpcId, params: Any) -> Submit:
    """A best-effort ``Submit`` from params that failed validation.

    Every field becomes text (JSON for non-strings, '' when absent) so the row
    shows what the miner actually sent; the share is computed only if those
    texts still make a valid share (e.g. only the worker was not a string).
    """
    p = params if type(params) is list else []

    def text(i: int) -> str:
        if i >= len(p) or p[i] is None:
            return ""
        return p[i] if type(p[i]) is str else orjson.dumps(p[i]).decode()

    bits = text(5) if len(p) > 5 else None
    return Submit(
        id=msg_id,
        worker=text(0),
        job_id=text(1),
        extranonce2=text(2),
        ntime=text(3),
        nonce=text(4),
        version_bits=bits,
    )
