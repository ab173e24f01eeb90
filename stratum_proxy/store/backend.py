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
from stratum_proxy.store.record import COLUMN_SPECS, COLUMNS, ts_millis
from stratum_proxy.store.schema import SchemaConfig
from stratum_proxy.store.settings import StoreSettings

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
    if len(values) != len(COLUMNS):
        return StoreError(
            f"share row has {len(values)} values, not {len(COLUMNS)}", retryable=False
        )
    for name, spec, value in zip(COLUMNS, COLUMN_SPECS, values, strict=True):
        if spec.type == _DATETIME and (
            not isinstance(value, int | float) or not math.isfinite(value)
        ):
            return StoreError(f"share {name} {value!r} is not a finite time", retryable=False)
        if spec.type == "UInt32" and (not isinstance(value, int) or not 0 <= value <= _MAX_UINT32):
            return StoreError(f"share {name}={value!r} does not fit UInt32", retryable=False)
    return StoreError(f"cannot encode share record: {exc}", retryable=False)


# Encoded forms of the strings that repeat across shares (names, addresses,
# statuses).  Bounded: cleared when full, which only costs speed.
_REPEATS: dict[str, bytes] = {}
_MAX_REPEATS = 65_536
_seen = _REPEATS.get


def _repeated_string(value: str) -> bytes:
    data = _seen(value)
    if data is None:
        data = _string(value)
        if len(_REPEATS) >= _MAX_REPEATS:
            _REPEATS.clear()
        _REPEATS[value] = data
    return data


def _datetime64_ms(value: float) -> bytes:
    return _INT64.pack(ts_millis(value))


def _bool(value: object) -> bytes:
    return b"\x01" if value else b"\x00"


# RowBinary (little-endian, no padding) of each ClickHouse type the share
# columns use.  DateTime64(3) travels as Int64 milliseconds; Bool as one byte.
_DATETIME = "DateTime64(3, 'UTC')"
_INT64 = struct.Struct("<q")
_FIXED: dict[str, struct.Struct] = {
    "UInt32": struct.Struct("<I"),
    "Float64": struct.Struct("<d"),
    "Float32": struct.Struct("<f"),
    "Bool": struct.Struct("<?"),
}
_PACKERS: dict[str, Callable[[Any], bytes]] = {
    _DATETIME: _datetime64_ms,
    "LowCardinality(String)": _repeated_string,
    "String": _string,
    "UInt32": _FIXED["UInt32"].pack,
    "Float64": _FIXED["Float64"].pack,
    "Float32": _FIXED["Float32"].pack,
    "Bool": _bool,
}
# One packer per column, in ``COLUMNS`` order (a KeyError here: a new column
# type needs its RowBinary form above).
_PACK_ROW: tuple[Callable[[Any], bytes], ...] = tuple(_PACKERS[c.type] for c in COLUMN_SPECS)


def encode_record(r: Sequence[Any]) -> bytes:
    """One row (a ShareRecord or a plain tuple in ``COLUMNS`` order) as RowBinary.

    The fast path checks nothing itself: struct refuses out-of-range integers
    and Float32 overflow, ts_millis refuses nan/inf, ``_string`` refuses what
    is not a str; ``_invalid`` then says why.
    """
    try:
        return b"".join([pack(value) for pack, value in zip(_PACK_ROW, r, strict=True)])
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
        for col, spec in zip(cols, COLUMN_SPECS, strict=True):
            value: object
            if spec.type == _DATETIME:
                value = _INT64.unpack_from(buf, pos)[0]
                pos += _INT64.size
            elif spec.type in _FIXED:
                fixed = _FIXED[spec.type]
                value = fixed.unpack_from(buf, pos)[0]
                pos += fixed.size
            else:
                value, pos = _pull_string(buf, pos)
            col.append(value)
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
