"""The share record: one row of ``mining.shares`` per share a miner submitted.

This is the contract between the protocol side (which builds records) and the
store side (which writes them), and the one definition of the share columns:
``ShareRecord`` names each column, its Python type and, in its ``Column``
annotation, its ClickHouse type, codec and the schema migration that added
it.  The table's DDL (``schema``), both batch encoders (``backend``,
``json_rows``), the spool and the dead-letter file all derive from it.

Columns are only ever appended, each new one with a default: the spool and the
dead-letter file keep rows as arrays in this order, and a row written before a
column existed reads back with that column's default.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, NamedTuple, get_type_hints

STATUS_ACCEPTED = "accepted"
STATUS_REJECTED = "rejected"
STATUS_NO_RESPONSE = "no_response"


@dataclass(frozen=True, slots=True)
class Column:
    """How a ``ShareRecord`` field is stored."""

    type: str  # the ClickHouse type
    codec: str = ""  # e.g. "ZSTD(1)"; '' for the default compression
    since: int = 1  # the schema migration (``schema.MIGRATIONS``) that added the column

    @property
    def ddl(self) -> str:
        """The column's type in a CREATE TABLE or ADD COLUMN statement."""
        return f"{self.type} CODEC({self.codec})" if self.codec else self.type


_LC = "LowCardinality(String)"
_TEXT = Column("String", "ZSTD(1)")


class ShareRecord(NamedTuple):
    """One submitted share, whatever happened to it.

    A tuple on purpose: a record holds only strings and numbers, so its
    values, queued as a plain tuple (``SharePipeline.put``), leave the cyclic
    garbage collector's view, and the tens of thousands of rows waiting in the
    queue cost no collector pauses (which would show up in miners' round
    trips).  The SV1 tracker fills a list draft in place and makes the record
    once (``sv1.records.finish_row``); translate mode fills a draft the same way.

    ``ts`` is the proxy's receive time of the submit, as Unix seconds (float;
    the store keeps whole milliseconds, see ``ts_millis``).  ``version`` is the
    final header version (after BIP310 rolling).  ``share_hash`` is
    block-explorer order hex, '' and ``share_difficulty`` 0.0 when the share
    could not be rebuilt (unknown job, malformed fields).  ``channel_id`` is
    the channel the miner mines on: its connection in passthrough, the pool's
    SV2 channel in translate mode; ``connection_id`` is always the miner's
    connection.  The proxy numbers connections uniquely across restarts
    (``store.connection_ids``); rows recorded before that column existed hold 0.
    """

    ts: Annotated[float, Column("DateTime64(3, 'UTC')", "Delta, ZSTD(1)")]
    proxy_id: Annotated[str, Column(_LC)]
    upstream: Annotated[str, Column(_LC)]
    protocol: Annotated[str, Column(_LC)]  # 'sv1' or 'sv2' on the miner side
    channel_id: Annotated[int, Column("UInt32")]
    worker: Annotated[str, Column(_LC)]
    miner_addr: Annotated[str, _TEXT]
    job_id: Annotated[str, _TEXT]
    extranonce2: Annotated[str, _TEXT]
    ntime: Annotated[str, _TEXT]
    nonce: Annotated[str, _TEXT]
    version: Annotated[int, Column("UInt32")]
    share_hash: Annotated[str, _TEXT]
    # Random per share: Gorilla cannot help.
    share_difficulty: Annotated[float, Column("Float64", "ZSTD(1)")]
    # Constant for long runs: Gorilla stores a repeat in one bit.
    pool_difficulty: Annotated[float, Column("Float64", "Gorilla, ZSTD(1)")]
    network_difficulty: Annotated[float, Column("Float64", "Gorilla, ZSTD(1)")]
    status: Annotated[str, Column(_LC)]
    reject_reason: Annotated[str, _TEXT]
    is_block: Annotated[bool, Column("Bool")]
    response_ms: Annotated[float, Column("Float32", "ZSTD(1)")]
    # Columns beyond the DESIGN.md contract.
    version_bits: Annotated[str, Column("String", "ZSTD(1)", since=2)] = ""  # 6th submit param
    extranonce1: Annotated[str, Column("String", "ZSTD(1)", since=2)] = ""  # for this job
    connection_id: Annotated[int, Column("UInt32", since=4)] = 0
    # The difficulty the miner worked at for this share: the pool's in passthrough
    # and translate mode, the proxy's own (vardiff) in aggregate mode.
    miner_difficulty: Annotated[float, Column("Float64", "Gorilla, ZSTD(1)", since=5)] = 0.0
    forwarded: Annotated[bool, Column("Bool", since=5)] = False  # sent on to the pool
    verdict_by: Annotated[str, Column(_LC, since=5)] = ""  # 'pool', 'proxy', '' (no verdict)
    # A share that did not pass through the proxy, recorded by ``POST /api/shares``
    # (a miner on another pool, a pool's webhook): never counted with measured
    # shares unless a reader asks for it.
    manual: Annotated[bool, Column("Bool", since=6)] = False


COLUMNS: tuple[str, ...] = ShareRecord._fields
# Each column's storage, in ``COLUMNS`` order.
COLUMN_SPECS: tuple[Column, ...] = tuple(
    hint.__metadata__[0] for hint in get_type_hints(ShareRecord, include_extras=True).values()
)
assert len(COLUMN_SPECS) == len(COLUMNS)
# What a row written before a column existed holds in it.
DEFAULTS: dict[str, Any] = dict(ShareRecord._field_defaults)
# The column index of each name, for code that fills a row in place.
INDEX: dict[str, int] = {name: i for i, name in enumerate(COLUMNS)}


_EMPTY: dict[type, Any] = {int: 0, float: 0.0, str: "", bool: False}
_EMPTY_ROW: tuple[Any, ...] = tuple(
    _EMPTY[hint.__origin__] for hint in get_type_hints(ShareRecord, include_extras=True).values()
)


def empty_row() -> list[Any]:
    """A row of a share nothing is known about yet, as a list to fill in by ``INDEX``.

    Every column holds its type's empty value; status is ``no_response``.
    """
    row = [*_EMPTY_ROW]
    row[INDEX["status"]] = STATUS_NO_RESPONSE
    return row


def columns_since(migration: int) -> list[tuple[str, Column]]:
    """The columns migration ``migration`` added, in order."""
    return [(n, c) for n, c in zip(COLUMNS, COLUMN_SPECS, strict=True) if c.since == migration]


def columns_of_type(ch_type: str) -> tuple[int, ...]:
    """Indices of the columns stored as ``ch_type`` (codec aside)."""
    return tuple(i for i, c in enumerate(COLUMN_SPECS) if c.type == ch_type)


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
