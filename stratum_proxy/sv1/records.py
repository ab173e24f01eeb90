"""Turn one ``mining.submit`` into the share row it will be stored as.

The hot path: hex → ints, BIP310 version, one header hash (the merkle root is
cached per job and extranonce2).  A share that cannot be rebuilt (unknown job,
fields that are not 8 hex digits) is still a row, with share_hash '' and
share_difficulty 0.0: the pool will judge it anyway and the farm must see it.
"""

from __future__ import annotations

from dataclasses import dataclass
from hashlib import sha256 as _sha256
from typing import Any

import orjson

from stratum_proxy.shares import DIFF1_TARGET, Job
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


_fromhex = bytes.fromhex
_from_bytes = int.from_bytes
_new_record = tuple.__new__  # ShareRecord's own __new__ adds a Python call per row

# A share's row while the pool's answer is awaited: ShareRecord's values in
# order, in a list so that the verdict is set in place (a new 22-tuple built
# from slices costs three times as much); ``finish_row`` makes the record.
ShareDraft = list[Any]
_MAX_HASH = (1 << 256) - 1  # a zero hash (impossible in practice) keeps the division defined


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
    """``share_record`` from the submit's fields.

    The per-share hot path, so ``hex_u32``, ``rolled_version`` and
    ``compute_share`` are written out here (same rules, a third of the calls).
    """
    version = 0
    share_hash = ""
    share_difficulty = 0.0
    is_block = False
    if job is None:
        pool_difficulty, network_difficulty, extranonce1 = difficulty_now, 0.0, ""
    else:
        pool_difficulty = job.pool_difficulty
        network_difficulty = job.network_difficulty
        extranonce1 = job.extranonce1_hex
        try:
            if version_bits is None:
                version = job.version  # BIP310: no bits, no rolling
            else:
                bits = _fromhex(version_bits)
                if len(version_bits) != 8 or len(bits) != 4:
                    raise ValueError("version bits: expected 8 hex digits")
                version = (job.version & ~mask & 0xFFFFFFFF) | (_from_bytes(bits, "big") & mask)
            en2 = _fromhex(extranonce2)
            time_bytes = _fromhex(ntime)
            nonce_bytes = _fromhex(nonce)
            # fromhex skips spaces: "1f 2e 3d" is 8 chars but 3 bytes, hence both checks.
            if len(ntime) != 8 or len(time_bytes) != 4 or len(nonce) != 8 or len(nonce_bytes) != 4:
                raise ValueError("ntime and nonce: expected 8 hex digits")
        except ValueError:
            pass  # the pool will reject it; the row keeps hash '' and difficulty 0
        else:
            header = job.header(
                en2, _from_bytes(time_bytes, "big"), _from_bytes(nonce_bytes, "big"), version
            )
            digest = _sha256(_sha256(header).digest()).digest()
            hash_int = _from_bytes(digest, "little")
            share_hash = digest[::-1].hex()
            share_difficulty = DIFF1_TARGET / (hash_int or _MAX_HASH)
            is_block = hash_int <= job.network_target
    return [
        now,
        context.proxy_id,
        upstream,
        context.protocol,
        context.channel_id,
        worker,
        context.miner_addr,
        job_id,
        extranonce2,
        ntime,
        nonce,
        version,
        share_hash,
        share_difficulty,
        pool_difficulty,
        network_difficulty,
        STATUS_NO_RESPONSE,
        "",
        is_block,
        0.0,
        version_bits or "",
        extranonce1,
    ]


# ShareRecord fields the pool's answer fills in: status, reject_reason (16, 17),
# response_ms (19); is_block (18) stays.  record.py fixes the order.
_OUTCOME_AT = ShareRecord._fields.index("status")
assert ShareRecord._fields[_OUTCOME_AT : _OUTCOME_AT + 4] == (
    "status", "reject_reason", "is_block", "response_ms",
)  # fmt: skip
_REASON_AT = _OUTCOME_AT + 1
_RESPONSE_MS_AT = _OUTCOME_AT + 3
HASH_AT = ShareRecord._fields.index("share_hash")
IS_BLOCK_AT = ShareRecord._fields.index("is_block")


def finish_row(
    draft: ShareDraft, status: str, reject_reason: str, response_ms: float
) -> ShareRecord:
    """The draft with its verdict, as the record to store.  Uses the draft up."""
    draft[_OUTCOME_AT] = status
    draft[_REASON_AT] = reject_reason
    draft[_RESPONSE_MS_AT] = response_ms
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
