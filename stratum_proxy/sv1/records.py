"""Turn one ``mining.submit`` into the share row it will be stored as.

The hot path: hex → ints, BIP310 version, one header hash (the merkle root is
cached per job and extranonce2).  A share that cannot be rebuilt (unknown job,
fields that are not 8 hex digits) is still a row, with share_hash '' and
share_difficulty 0.0: the pool will judge it anyway and the farm must see it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from stratum_proxy.shares import Job, submitted_share
from stratum_proxy.store.record import INDEX, STATUS_NO_RESPONSE, ShareRecord, empty_row
from stratum_proxy.sv1.messages import RpcId, Submit

_fromhex = bytes.fromhex


@dataclass(frozen=True, slots=True, kw_only=True)
class ShareContext:
    """Who and where: the constant columns of every row of one connection.

    ``channel_id`` is the channel the miner mines on and ``connection_id`` its
    connection (the same number in passthrough; see ``record.ShareRecord``).
    """

    proxy_id: str
    upstream: str
    channel_id: int
    miner_addr: str
    protocol: str = "sv1"
    connection_id: int = 0
    template: tuple[Any, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        row = empty_row()
        row[_AT["proxy_id"]] = self.proxy_id
        row[_AT["upstream"]] = self.upstream
        row[_AT["protocol"]] = self.protocol
        row[_AT["channel_id"]] = self.channel_id
        row[_AT["miner_addr"]] = self.miner_addr
        row[_AT["connection_id"]] = self.connection_id
        row[_AT["forwarded"]] = True  # passthrough forwards every submit it reads
        object.__setattr__(self, "template", tuple(row))


_new_record = tuple.__new__  # ShareRecord's own __new__ adds a Python call per row

# A share's row while the pool's answer is awaited: ShareRecord's values in
# column order, in a list so that the verdict is set in place (a new tuple
# built from slices costs three times as much); ``finish_row`` makes the
# record.  Every slot is addressed by its column's name (``_AT``).
ShareDraft = list[Any]
_AT = INDEX
_TS, _UPSTREAM, _WORKER, _JOB_ID = _AT["ts"], _AT["upstream"], _AT["worker"], _AT["job_id"]
_EXTRANONCE2, _NTIME, _NONCE = _AT["extranonce2"], _AT["ntime"], _AT["nonce"]
_VERSION_BITS, _POOL_DIFF = _AT["version_bits"], _AT["pool_difficulty"]
_NETWORK_DIFF, _EXTRANONCE1 = _AT["network_difficulty"], _AT["extranonce1"]
_VERSION, _HASH, _SHARE_DIFF = _AT["version"], _AT["share_hash"], _AT["share_difficulty"]
_STATUS, _REASON, _RESPONSE_MS = _AT["status"], _AT["reject_reason"], _AT["response_ms"]
_MINER_DIFF, _VERDICT_BY, FORWARDED_AT = (
    _AT["miner_difficulty"],
    _AT["verdict_by"],
    _AT["forwarded"],
)
HASH_AT, IS_BLOCK_AT = _HASH, _AT["is_block"]


def share_record(
    submit: Submit,
    job: Job | None,
    *,
    context: ShareContext,
    upstream: str,
    mask: int,
    difficulty_now: float,
    now: float,
) -> ShareDraft:
    """The row for ``submit``, status not yet known (``finish_row`` sets it).

    pool_difficulty is the job's (captured at notify time); for an unknown job
    it is the difficulty in force now, and version / network_difficulty are 0.
    ``mask`` is the BIP310 mask in force (0 when none was negotiated, so that
    version bits change nothing).
    """
    return draft_share_row(
        submit.worker,
        submit.job_id,
        submit.extranonce2,
        submit.ntime,
        submit.nonce,
        submit.version_bits,
        job,
        context,
        upstream,
        mask,
        difficulty_now,
        now,
    )


def draft_share_row(
    worker: str,
    job_id: str,
    extranonce2: str,
    ntime: str,
    nonce: str,
    version_bits: str | None,
    job: Job | None,
    context: ShareContext,
    upstream: str,
    mask: int,
    difficulty_now: float,
    now: float,
) -> ShareDraft:
    """``share_record`` from the submit's fields (the fast path calls this directly).

    The share is rebuilt by ``shares.submitted_share``, the same function every
    mode uses; fields it cannot read leave share_hash '' and difficulty 0.
    """
    row = [*context.template]
    row[_TS] = now
    row[_UPSTREAM] = upstream
    row[_WORKER] = worker
    row[_JOB_ID] = job_id
    row[_EXTRANONCE2] = extranonce2
    row[_NTIME] = ntime
    row[_NONCE] = nonce
    if version_bits is not None:
        row[_VERSION_BITS] = version_bits
    if job is None:
        row[_POOL_DIFF] = row[_MINER_DIFF] = difficulty_now
        return row
    # The miner works at the pool's difficulty: the proxy sets none of its own.
    row[_POOL_DIFF] = row[_MINER_DIFF] = job.pool_difficulty
    row[_NETWORK_DIFF] = job.network_difficulty
    row[_EXTRANONCE1] = job.extranonce1_hex
    try:
        share = submitted_share(job, _fromhex(extranonce2), ntime, nonce, version_bits, mask)
    except ValueError:
        return row  # the pool will reject it; the row keeps hash '' and difficulty 0
    row[_VERSION] = share.version
    row[_HASH] = share.hash_hex
    row[_SHARE_DIFF] = share.difficulty
    row[IS_BLOCK_AT] = share.is_block
    return row


def finish_row(
    draft: ShareDraft, status: str, reject_reason: str, response_ms: float
) -> ShareRecord:
    """The draft with its verdict, as the record to store.  Uses the draft up."""
    draft[_STATUS] = status
    draft[_REASON] = reject_reason
    draft[_RESPONSE_MS] = response_ms
    if status != STATUS_NO_RESPONSE:
        draft[_VERDICT_BY] = "pool"
    return _new_record(ShareRecord, draft)


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
