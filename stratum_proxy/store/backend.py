"""The ``Store`` contract used by the single writer thread, and batch encoding.

A batch is encoded once, in one of two ClickHouse input formats:

* ``JSONCompactEachRow`` (``json_rows``): one orjson call per slice of rows,
  used whenever cheap checks over the batch's columns prove that the engine
  stores exactly what RowBinary would (nearly always);
* ``RowBinary``: every value packed by Python (no text escaping, floats as
  their IEEE bits), for the rest.  It checks each value, so a record no
  column can hold gets a precise, non-retryable StoreError.

Both store the same values (ts cut to whole milliseconds by
``record.ts_millis``).  ``encode_batch`` is deterministic: the same records
and token give the same format and bytes, so a retried batch is the same batch.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from stratum_proxy.errors import ConfigError, StoreError
from stratum_proxy.store import json_rows
from stratum_proxy.store.record import COLUMNS, ShareRecord, ts_millis
from stratum_proxy.store.schema import SchemaConfig
from stratum_proxy.store.settings import StoreSettings

# RowBinary layouts (little-endian, no padding) of the fixed-width column runs.
# DateTime64(3) travels as Int64 milliseconds; Bool as one byte.
_TS = struct.Struct("<q")
_UINT32 = struct.Struct("<I")
_FLOATS = struct.Struct("<ddd")  # share, pool, network difficulty
_TAIL = struct.Struct("<?f")  # is_block, response_ms (Float32)
_MAX_UINT32 = 0xFFFFFFFF

ROW_BINARY = "RowBinary"
JSON_ROWS = json_rows.FORMAT


@dataclass(frozen=True, slots=True, kw_only=True)
class EncodedBatch:
    """A batch ready to insert: ``rows`` rows in ``COLUMNS`` order, in ``format``.

    ``format`` is a ClickHouse input format name (``ROW_BINARY`` or
    ``JSON_ROWS``).  Backends that cannot send the bytes as they are
    (clickhouse-driver builds Native blocks) decode them with
    ``decode_columns``, so both backends store exactly the same values.
    """

    token: str
    rows: int
    payload: bytes
    format: str = ROW_BINARY


def format_settings(fmt: str) -> dict[str, object]:
    """Query settings an insert of a batch in ``fmt`` needs besides ``insert_settings``."""
    return dict(json_rows.INSERT_SETTINGS) if fmt == JSON_ROWS else {}


class Store(Protocol):
    """What the writer needs from a ClickHouse backend.  Not thread-safe: one owner."""

    url: str  # as given, password included: never log it
    display_url: str  # password masked

    def ensure_schema(self) -> None:
        """Create the schema if missing and migrate it forward; idempotent."""

    def insert(self, batch: EncodedBatch) -> None:
        """Insert with ``insert_deduplication_token=batch.token``; StoreError(retryable=...)."""

    def query(self, sql: str) -> bytes:
        """ClickHouse's own output for ``sql`` (TabSeparated unless it says FORMAT)."""

    def close(self) -> None:
        """Release the connection (and the embedded store's lock)."""


def _varuint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


# Most strings are short: precomputed single-byte lengths avoid a call per field.
_LEN1 = [bytes([n]) for n in range(0x80)]


def _string(value: str) -> bytes:
    # surrogatepass: a lone surrogate a miner sent in JSON ("\\ud800") is kept
    # as its bytes instead of failing the whole batch; String columns hold bytes.
    data = value.encode("utf-8", "surrogatepass")
    n = len(data)
    return (_LEN1[n] if n < 0x80 else _varuint(n)) + data


def _invalid(values: Sequence[object], exc: Exception) -> StoreError:
    """Why a row cannot be encoded (the fast path only knows that it failed)."""
    try:
        r = ShareRecord._make(values)
    except TypeError:
        return StoreError(
            f"share row has {len(values)} values, not {len(COLUMNS)}", retryable=False
        )
    if not isinstance(r.ts, int | float) or not math.isfinite(r.ts):
        return StoreError(f"share ts {r.ts!r} is not a finite time", retryable=False)
    for name in ("channel_id", "version"):
        value = getattr(r, name)
        if not isinstance(value, int) or not 0 <= value <= _MAX_UINT32:
            return StoreError(f"share {name}={value!r} does not fit UInt32", retryable=False)
    return StoreError(f"cannot encode share record: {exc}", retryable=False)


# Encoded forms of the strings that repeat across shares (names, addresses,
# job ids, statuses).  Bounded: cleared when full, which only costs speed.
_REPEATS: dict[str, bytes] = {}
_MAX_REPEATS = 65_536


def _repeat(value: str) -> bytes:
    data = _string(value)
    if len(_REPEATS) >= _MAX_REPEATS:
        _REPEATS.clear()
    _REPEATS[value] = data
    return data


_pack_ts = _TS.pack
_pack_u32 = _UINT32.pack
_pack_floats = _FLOATS.pack
_pack_tail = _TAIL.pack
_seen = _REPEATS.get


def encode_record(r: Sequence[Any]) -> bytes:
    """One row (a ShareRecord or a plain tuple in ``COLUMNS`` order) as RowBinary.

    The hot path checks nothing itself: unpacking refuses a wrong column count,
    struct refuses out-of-range integers and Float32 overflow, ts_millis
    refuses nan/inf; ``_invalid`` then says why.  Repeating strings are looked up
    inline (``_seen(v) or _repeat(v)``): a hit costs no Python call.
    """
    s, c, seen = _string, _repeat, _seen
    try:
        (ts, proxy_id, upstream, protocol, channel_id, worker, miner_addr, job_id, extranonce2,
         ntime, nonce, version, share_hash, share_difficulty, pool_difficulty,
         network_difficulty, status, reject_reason, is_block, response_ms, version_bits,
         extranonce1) = r  # fmt: skip
        return b"".join(
            (
                _pack_ts(ts_millis(ts)),
                seen(proxy_id) or c(proxy_id),
                seen(upstream) or c(upstream),
                seen(protocol) or c(protocol),
                _pack_u32(channel_id),
                seen(worker) or c(worker),
                seen(miner_addr) or c(miner_addr),
                seen(job_id) or c(job_id),
                s(extranonce2),
                seen(ntime) or c(ntime),
                s(nonce),
                _pack_u32(version),
                s(share_hash),
                _pack_floats(share_difficulty, pool_difficulty, network_difficulty),
                seen(status) or c(status),
                seen(reject_reason) or c(reject_reason),
                _pack_tail(bool(is_block), response_ms),
                seen(version_bits) or c(version_bits),
                seen(extranonce1) or c(extranonce1),
            )
        )
    except (struct.error, TypeError, ValueError, ArithmeticError, AttributeError) as exc:
        raise _invalid(r, exc) from exc


# Rows encoded between two ``pause`` calls: ~0.2 ms of GIL-held work.
_SLICE_ROWS = 64


def encode_batch(
    records: Sequence[Sequence[Any]], token: str, *, pause: Callable[[], None] | None = None
) -> EncodedBatch:
    """Encode ``records`` (ShareRecords or plain tuples) for one insert carrying ``token``.

    JSON rows when ``json_rows`` finds every value fit to travel so, else
    RowBinary.  ``pause`` is called between slices of rows (a background
    thread lets the event loop run there).  Raises StoreError(retryable=False)
    for a record no ClickHouse column can hold (non-finite ts, out-of-range
    UInt32): retrying could never succeed.
    """
    if not token:
        raise ValueError("a batch needs a non-empty deduplication token")
    payload = json_rows.maybe_encode(records, pause=pause)
    if payload is not None:
        return EncodedBatch(token=token, rows=len(records), payload=payload, format=JSON_ROWS)
    return encode_row_binary(records, token, pause=pause)


def encode_row_binary(
    records: Sequence[Sequence[Any]], token: str, *, pause: Callable[[], None] | None = None
) -> EncodedBatch:
    """``encode_batch`` always as RowBinary: every value checked (and tests compare the two)."""
    if not token:
        raise ValueError("a batch needs a non-empty deduplication token")
    if pause is None:
        payload = b"".join([encode_record(r) for r in records])
    else:
        parts: list[bytes] = []
        for start in range(0, len(records), _SLICE_ROWS):
            parts += [encode_record(r) for r in records[start : start + _SLICE_ROWS]]
            pause()
        payload = b"".join(parts)
    return EncodedBatch(token=token, rows=len(records), payload=payload, format=ROW_BINARY)


def insert_columns_sql(table: str) -> str:
    """``INSERT INTO table (c1, ..., cN)`` in ``COLUMNS`` order."""
    return f"INSERT INTO {table} ({', '.join(COLUMNS)})"


def _pull_string(buf: bytes, pos: int) -> tuple[bytes, int]:
    n = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        shift += 7
    end = pos + n
    if end > len(buf):
        raise ValueError("string runs past the end of the payload")
    return buf[pos:end], end


def decode_columns(batch: EncodedBatch) -> list[list[object]]:
    """The payload back as one list per column, whatever its format.

    Strings as UTF-8 bytes, ts as integer milliseconds, response_ms as its
    Float32 value.  The inverse of ``encode_batch``; used by the server
    backend and by tests.  ValueError (or IndexError) for a corrupt payload.
    """
    if batch.format == JSON_ROWS:
        return json_rows.decode_columns(batch.payload, batch.rows)
    if batch.format != ROW_BINARY:
        raise ValueError(f"unknown batch format {batch.format!r}")
    cols: list[list[object]] = [[] for _ in COLUMNS]
    buf, pos = batch.payload, 0
    for _ in range(batch.rows):
        values: list[object] = [_TS.unpack_from(buf, pos)[0]]
        pos += _TS.size
        for _ in range(3):  # proxy_id, upstream, protocol
            value, pos = _pull_string(buf, pos)
            values.append(value)
        values.append(_UINT32.unpack_from(buf, pos)[0])
        pos += _UINT32.size
        for _ in range(6):  # worker .. nonce
            value, pos = _pull_string(buf, pos)
            values.append(value)
        values.append(_UINT32.unpack_from(buf, pos)[0])
        pos += _UINT32.size
        share_hash, pos = _pull_string(buf, pos)
        values.append(share_hash)
        values.extend(_FLOATS.unpack_from(buf, pos))
        pos += _FLOATS.size
        for _ in range(2):  # status, reject_reason
            value, pos = _pull_string(buf, pos)
            values.append(value)
        values.extend(_TAIL.unpack_from(buf, pos))
        pos += _TAIL.size
        for _ in range(2):  # version_bits, extranonce1
            value, pos = _pull_string(buf, pos)
            values.append(value)
        for col, item in zip(cols, values, strict=True):
            col.append(item)
    if pos != len(buf):
        raise ValueError(f"payload has {len(buf) - pos} bytes after {batch.rows} rows")
    return cols


def schema_for(url: str, settings: StoreSettings) -> SchemaConfig:
    """The schema a store URL and the ``[store]`` settings call for."""
    from stratum_proxy.store.url import ClickHouseUrl, parse_store_url

    parsed = parse_store_url(url)
    return SchemaConfig(
        database=parsed.database if isinstance(parsed, ClickHouseUrl) else "mining",
        retention_days=settings.retention_days,
        aggregate_retention_days=settings.aggregate_retention_days,
        cluster=settings.cluster,
    )


def open_store(url: str, settings: StoreSettings, *, api_address: str | None = None) -> Store:
    """Open the store ``url`` names (not ``settings.url``: the CLI may override it).

    ``api_address`` is written into an embedded store's lock file so that other
    processes can send their queries to this one.  Raises ConfigError for a bad
    URL, StoreBusyError when an embedded path is held, StoreError otherwise.
    """
    from stratum_proxy.store.url import ChdbUrl, parse_store_url

    parsed = parse_store_url(url)
    schema = schema_for(url, settings)
    if isinstance(parsed, ChdbUrl):
        if settings.cluster:
            raise ConfigError("store.cluster is set but the store is embedded (chdb://); unset it")
        from stratum_proxy.store.chdb_store import ChdbStore

        return ChdbStore(parsed.path, schema, api_address=api_address)
    from stratum_proxy.store.clickhouse_store import ClickHouseStore

    return ClickHouseStore(url, parsed, schema)
