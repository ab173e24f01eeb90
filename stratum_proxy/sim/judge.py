"""How the simulated pool judges a mining.submit, with its own header rebuild.

Checks run in the order real pools use (ckpool's ``parse_submit``/``test_nonce``):
params shape, worker, job, extranonce2 size, version bits, duplicate, target.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stratum_proxy.sim.chain import hash_difficulty, header_hash_int, network_target, share_target
from stratum_proxy.sim.pool_config import (
    DUPLICATE,
    JOB_NOT_FOUND,
    LOW_DIFFICULTY,
    OTHER,
    UNAUTHORIZED,
    JudgedShare,
)

if TYPE_CHECKING:
    from stratum_proxy.sim.pool_session import PoolSession


class _Reject(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _fields(params: list[Any]) -> list[str]:
    """The 5 or 6 submit params as strings ('' for any that are missing)."""
    texts = [p if isinstance(p, str) else "" for p in params[:6]]
    return texts + [""] * (5 - len(texts))


def _hex_int(text: str, width: int, what: str) -> int:
    if len(text) != 2 * width:
        raise _Reject(OTHER, f"Invalid {what}")
    try:
        return int(text, 16)
    except ValueError:
        raise _Reject(OTHER, f"Invalid {what}") from None


def unparsed(session: PoolSession, params: list[Any], code: int, reason: str) -> JudgedShare:
    """A rejected submit whose header was never built."""
    worker, job_id, en2, ntime, nonce, *rest = _fields(params)
    return JudgedShare(
        connection=session.conn_id,
        worker=worker,
        job_id=job_id,
        extranonce1=session.extranonce1.hex(),
        extranonce2=en2,
        ntime=ntime,
        nonce=nonce,
        version_bits=rest[0] if rest else None,
        version=0,
        hash_hex="",
        difficulty=0.0,
        pool_difficulty=session.job_difficulty.get(job_id, 0.0),
        accepted=code == 0,
        code=code,
        reason=reason,
        is_block=False,
    )


def accept_any(session: PoolSession, params: list[Any]) -> JudgedShare:
    """Load-test verdict: any submit with at least five params is accepted unhashed."""
    if len(params) < 5:
        return unparsed(session, params, OTHER, "Invalid params")
    return unparsed(session, params, 0, "")


def judge(session: PoolSession, params: list[Any]) -> JudgedShare:
    """Rebuild the share's header and accept or reject it with the real reason."""
    try:
        return _judge(session, params)
    except _Reject as reject:
        return unparsed(session, params, reject.code, reject.reason)


def _judge(session: PoolSession, params: list[Any]) -> JudgedShare:
    pool = session.pool
    if len(params) not in (5, 6) or not all(isinstance(p, str) for p in params):
        raise _Reject(OTHER, "Invalid params")
    worker, job_id, en2_hex, ntime_hex, nonce_hex, *rest = params
    if worker not in session.workers:
        raise _Reject(UNAUTHORIZED, "Unauthorized worker")
    template = pool.templates.get(job_id)
    if template is None or job_id not in session.job_difficulty:
        raise _Reject(JOB_NOT_FOUND, "Job not found")
    if template.prevhash != pool.prevhash:
        raise _Reject(JOB_NOT_FOUND, "Stale job")
    size = session.config.extranonce2_size  # set_extranonce may have changed it
    if len(en2_hex) != 2 * size:
        raise _Reject(OTHER, "Invalid extranonce2 length")
    en2 = _hex_int(en2_hex, size, "extranonce2").to_bytes(size, "big")
    ntime = _hex_int(ntime_hex, 4, "ntime")
    nonce = _hex_int(nonce_hex, 4, "nonce")
    version = template.version
    if rest:
        bits = _hex_int(rest[0], 4, "version bits")
        mask = session.version_mask or 0
        if bits & ~mask:
            raise _Reject(OTHER, "Invalid version mask")
        # BIP310: nVersion = (job_version & ~mask) | (version_bits & mask)
        version = (version & ~mask) | (bits & mask)
    key = (session.extranonce1, job_id, en2, ntime, nonce, version)
    if key in pool.seen:
        raise _Reject(DUPLICATE, "Duplicate share")
    prefix = template.header_prefix(session.extranonce1, en2)
    hash_int = header_hash_int(prefix, version, ntime, template.nbits, nonce)
    pool_difficulty = session.job_difficulty[job_id]
    accepted = hash_int <= share_target(pool_difficulty)
    if accepted:
        pool.seen.add(key)
    digest = hash_int.to_bytes(32, "little")
    return JudgedShare(
        connection=session.conn_id,
        worker=worker,
        job_id=job_id,
        extranonce1=session.extranonce1.hex(),
        extranonce2=en2_hex,
        ntime=ntime_hex,
        nonce=nonce_hex,
        version_bits=rest[0] if rest else None,
        version=version,
        hash_hex=digest[::-1].hex(),
        difficulty=hash_difficulty(hash_int),
        pool_difficulty=pool_difficulty,
        accepted=accepted,
        code=0 if accepted else LOW_DIFFICULTY,
        reason="" if accepted else "Low difficulty share",
        is_block=hash_int <= network_target(template.nbits),
    )
