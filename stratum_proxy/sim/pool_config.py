"""Options, verdict records and error shapes of the simulated pool."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from stratum_proxy.sim.chain import DEFAULT_VERSION_MASK, REGTEST_NBITS

# Stratum V1 error codes (slush's original protocol description, "Error codes").
OTHER = 20
JOB_NOT_FOUND = 21
DUPLICATE = 22
LOW_DIFFICULTY = 23
UNAUTHORIZED = 24
NOT_SUBSCRIBED = 25


class ErrorShape(enum.Enum):
    """How real pools spell a rejected submit (see docs/sv1_transcripts.md §3.5)."""

    LIST = "list"  # {"result":null,"error":[23,"Low difficulty share",null]}  (btcpool, slush)
    CKPOOL = "ckpool"  # {"result":false,"error":null,"reject-reason":"..."}
    STRING = "string"  # {"result":false,"error":"Stale"}
    JSONRPC2 = "jsonrpc2"  # {"jsonrpc":"2.0","error":{"code":22,"message":"...","data":null}}


@dataclass(slots=True, kw_only=True)
class PoolConfig:
    """Everything a test can turn on the pool; defaults behave like a healthy pool."""

    extranonce1_size: int = 4
    extranonce2_size: int = 8
    # Tiny, so that a Python miner finds a share in a few thousand hashes.
    difficulty: float = 1e-6
    version_mask: int = DEFAULT_VERSION_MASK  # 0: refuse version rolling
    nbits: int = REGTEST_NBITS
    start_height: int = 840_000
    branch_length: int = 3
    notify_interval: float = 0.0  # > 0: a new (not clean) job every so many seconds
    error_shape: ErrorShape = ErrorShape.LIST
    deny_workers: frozenset[str] = frozenset()
    # Load-test mode: every well-formed submit is accepted without hashing.
    accept_any: bool = False
    record_judged: bool = True
    seed: int = 1
    max_line_bytes: int = 64 * 1024
    # --- misbehaviour knobs for fault tests ---
    answer_delay: float = 0.0  # seconds before a submit is answered
    drop_every: int = 0  # the Nth, 2Nth... submit of a connection is never answered (1: none)
    hold_answers: int = 0  # > 1: answers are held and released in reverse order, this many at once
    hold_timeout: float = 0.5  # a partial batch of held answers is released after this long
    garbage_every: int = 0  # a non-JSON line after every Nth answer
    close_after_submits: int = 0  # the Nth submit closes the connection, unanswered
    # Only the first mining.authorize of a connection succeeds (pools that allow
    # one account per connection); later ones get error 24.
    single_authorization: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class JudgedShare:
    """One submit as the pool judged it: the oracle proxy records are compared with."""

    connection: int
    worker: str
    job_id: str
    extranonce1: str
    extranonce2: str
    ntime: str
    nonce: str
    version_bits: str | None
    version: int  # final header version; 0 when the share could not be built
    hash_hex: str  # block-explorer order; '' when the share could not be built
    difficulty: float  # computed from the hash; 0.0 when it could not be built
    pool_difficulty: float  # the difficulty of the share's job on this connection
    accepted: bool
    code: int  # 0 when accepted
    reason: str  # '' when accepted
    is_block: bool
    answered: bool = True  # False when a knob swallowed the answer


def error_reply(shape: ErrorShape, msg_id: object, code: int, message: str) -> dict[str, object]:
    """A rejected request's reply in the configured shape."""
    if shape is ErrorShape.LIST:
        return {"id": msg_id, "result": None, "error": [code, message, None]}
    if shape is ErrorShape.CKPOOL:
        return {"reject-reason": message, "result": False, "error": None, "id": msg_id}
    if shape is ErrorShape.STRING:
        return {"result": False, "error": message, "id": msg_id}
    return {
        "jsonrpc": "2.0",
        "error": {"code": code, "message": message, "data": None},
        "id": msg_id,
    }


def ok_reply(msg_id: object, result: object) -> dict[str, object]:
    return {"id": msg_id, "result": result, "error": None}
