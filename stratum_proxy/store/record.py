"""The share record: one row of ``mining.shares`` per share a miner submitted.

This is the contract between the protocol side (which builds records) and the
store side (which writes them).  Field order is the column order of the table.
"""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

STATUS_ACCEPTED = "accepted"
STATUS_REJECTED = "rejected"
STATUS_NO_RESPONSE = "no_response"


class ShareRecord(NamedTuple):
    """One submitted share, whatever happened to it.

    A tuple on purpose: a record holds only strings and numbers, so its
    values, queued as a plain tuple (``SharePipeline.put``), leave the cyclic
    garbage collector's view, and the tens of thousands of rows waiting in the
    queue cost no collector pauses (which would show up in miners' round
    trips).  The SV1 tracker fills a list draft in place and makes the record
    once (``sv1.records.finish_row``); translate mode uses ``_replace``.

    ``ts`` is the proxy's receive time of the submit, as Unix seconds (float;
    the store keeps whole milliseconds, see ``ts_millis``).  ``version`` is the
    final header version (after BIP310 rolling).  ``share_hash`` is
    block-explorer order hex, '' and ``share_difficulty`` 0.0 when the share
    could not be rebuilt (unknown job, malformed fields).
    """

    ts: float
    proxy_id: str
    upstream: str
    protocol: str  # 'sv1' or 'sv2' on the miner side
    channel_id: int
    worker: str
    miner_addr: str
    job_id: str
    extranonce2: str
    ntime: str
    nonce: str
    version: int
    share_hash: str
    share_difficulty: float
    pool_difficulty: float
    network_difficulty: float
    status: str
    reject_reason: str
    is_block: bool
    response_ms: float
    # Columns beyond the DESIGN.md contract.
    version_bits: str = ""  # the 6th submit param as sent ('' when absent)
    extranonce1: str = ""  # the connection's extranonce1 for this job


COLUMNS: tuple[str, ...] = ShareRecord._fields


def record_values(record: ShareRecord) -> tuple[object, ...]:
    """The record as a tuple in ``COLUMNS`` order."""
    return tuple(record)


# Below this many ms a float has at most 2**-9 ms between neighbours: its
# product with 1000 is then close enough to the decimal form's (see ts_millis).
_EXACT_MS_BELOW = float(2**44)


def ts_millis(ts: float) -> int:
    """``ts`` in whole milliseconds, as the store keeps it (DateTime64(3)).

    The digits of ts's shortest decimal form beyond the millisecond are
    dropped (toward zero): 1795315021.1236 -> 1795315021123.  That is how the
    engine reads a time from text, and the fast JSON batches send ts as that
    text, so both batch encodings store the same instant.  The float product
    ts * 1000 is within 1.5 ulp of the decimal form's, so its integer part is
    the answer unless it lies within a hair of a whole millisecond (a ts with
    exactly 3 decimals); then the decimal form itself decides.  Raises
    ValueError, TypeError or an ArithmeticError for what is not a finite number.
    """
    if isinstance(ts, int):
        return int(ts) * 1000
    ms = ts * 1000
    whole = int(ms)
    if 0.01 < ms - whole < 0.99 and ms < _EXACT_MS_BELOW:
        return whole
    return int(Decimal(repr(ts)) * 1000)
