"""The fast batch encoding: rows as JSON arrays, inserted as ``JSONCompactEachRow``.

orjson writes a slice of rows in one C call (~0.3 us/row, where the RowBinary
encoder spends 1.5-4 us/row in Python), and the engine reads rows separated
by commas.  But the engine reads JSON with its text parsers, which accept more
than RowBinary does and store some values differently.  So a slice goes this
way only when checks over whole columns (C loops: zip, join, sum, struct)
prove that the engine will store exactly what the RowBinary encoder would
send; otherwise ``maybe_encode`` returns None and the batch is encoded as
RowBinary, which also says which value is wrong.  A false alarm only costs
speed.  What the checks rule out, and why (each was seen in chdb 26):

* anything orjson refuses (lone surrogates, ints beyond 64 bits, other types),
  and rows without exactly one value per column;
* a non-str in a String column: orjson writes UUIDs, enums and numbers as
  JSON the engine would store as text, where RowBinary refuses them;
* NaN and +-inf: orjson writes null, which the engine stores as 0.  Checked
  with sum() per number column, so a column whose sum overflows (values near
  1e308) is a false alarm;
* a UInt32 column value that struct refuses: the parser wraps 2**33 to 0;
* Float32 beyond its range (the parser gives inf, RowBinary refuses), and a
  value exactly halfway between two Float32s: RowBinary rounds the double
  (ties to even), the parser rounds its shortest decimal form, which lies a
  hair to one side of the tie (40 % of such values came out different);
* a ts outside [1e9, 1e10) s (years 2001-2286): inside, the parser's reading
  of the decimal text was checked against ``record.ts_millis`` (which the
  RowBinary encoder uses too); that also rules out bools;
* a Bool column value that is not a bool (RowBinary stores any value's truth).

Float64 values travel as their shortest round-trip text and come back bit for
bit (``precise_float_parsing``); bools in number columns are read as 1/0, as
struct packs them.  ``INSERT_SETTINGS`` pins both.
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from stratum_proxy.store.record import COLUMNS, columns_of_type, ts_millis

FORMAT = "JSONCompactEachRow"
# Settings the exactness argument above relies on: pinned, not left to defaults.
INSERT_SETTINGS: dict[str, object] = {
    "precise_float_parsing": 1,
    "input_format_json_read_bools_as_numbers": 1,
}

# Rows per orjson call and per round of checks: ~0.15 ms of GIL-held work.
SLICE_ROWS = 256

_TS_MIN, _TS_MAX = 1e9, 1e10


(_TS,) = columns_of_type("DateTime64(3, 'UTC')")
_STRINGS = columns_of_type("String") + columns_of_type("LowCardinality(String)")
_UINT32 = columns_of_type("UInt32")
_FLOAT64 = columns_of_type("Float64")
_BOOLS = columns_of_type("Bool")
(_FLOAT32,) = columns_of_type("Float32")
# A column added to the table must be checked here too before it may travel as JSON.
assert sorted((_TS, *_STRINGS, *_UINT32, *_FLOAT64, *_BOOLS, _FLOAT32)) == list(range(len(COLUMNS)))


def maybe_encode(
    records: Sequence[Sequence[Any]], *, pause: Callable[[], None] | None = None
) -> bytes | None:
    """The rows as ``JSONCompactEachRow`` text, or None when a value may not travel so.

    ``pause`` is called between slices of rows (a background thread lets the
    event loop run there).
    """
    parts: list[bytes] = []
    for start in range(0, len(records), SLICE_ROWS):
        part = _maybe_slice(records[start : start + SLICE_ROWS])
        if part is None:
            return None
        parts.append(part)
        if pause is not None:
            pause()
    return b",".join(parts)


def _maybe_slice(rows: Sequence[Sequence[Any]]) -> bytes | None:
    try:
        columns = list(zip(*rows, strict=True))
        if len(columns) != len(COLUMNS) or not _representable(columns):
            return None
        # default=tuple: ShareRecords (namedtuples) are rows too; anything else
        # it is called for fails a column check above or raises here.
        return orjson.dumps(rows, default=tuple)[1:-1]
    except (TypeError, ValueError, OverflowError, struct.error):  # orjson's errors are TypeErrors
        return None


def _representable(columns: list[tuple[Any, ...]]) -> bool:
    """Whether the engine stores these columns' values as RowBinary would; may raise."""
    n = len(columns[0])
    ts = columns[_TS]
    if not (math.isfinite(sum(ts)) and min(ts) >= _TS_MIN and max(ts) < _TS_MAX):
        return False
    for i in _STRINGS:
        "".join(columns[i])  # TypeError unless every value is a str
    for i in _UINT32:
        struct.pack(f"<{n}I", *columns[i])  # struct.error unless ints in range
    for i in _FLOAT64:
        if not math.isfinite(sum(columns[i])):  # TypeError for non-numbers
            return False
    for i in _BOOLS:
        if {*map(type, columns[i])} != {bool}:
            return False
    f32 = columns[_FLOAT32]
    if not math.isfinite(sum(f32)):
        return False
    struct.pack(f"<{n}f", *f32)  # OverflowError beyond Float32
    return not _has_float32_tie(struct.pack(f"<{n}d", *f32), n)


@functools.lru_cache(maxsize=8)
def _lanes(n: int) -> int:
    """An int with a 1 at the bottom of each of ``n`` 64-bit lanes."""
    return int.from_bytes((b"\x01" + bytes(7)) * n, "little")


def _has_float32_tie(doubles: bytes, n: int) -> bool:
    """Whether a double may round to Float32 differently from its decimal form.

    All ``n`` doubles are tested at once, as 64-bit lanes of one big int
    (adding per-lane constants never carries into the next lane).  Above
    2**-126 a double is a tie when its fraction's low 29 bits are 1 and 28
    zeros; below (Float32 subnormals) ties look different, and any such tiny
    non-zero value counts as one.
    """
    x, one = int.from_bytes(doubles, "little"), _lanes(n)
    low = (x & (0x1FFF_FFFF * one)) ^ (0x1000_0000 * one)  # 0 in a tie's lane
    bit29 = 0x2000_0000 * one
    if (low + 0x1FFF_FFFF * one) & bit29 != bit29:  # a lane stayed below 2**29: it was 0
        return True
    exponent = (x >> 52) & (0x7FF * one)
    bit11 = 0x800 * one
    not_zero = (exponent + 0x7FF * one) & bit11  # exponent >= 1
    not_tiny = (exponent + (0x800 - 897) * one) & bit11  # exponent >= 897: |x| >= 2**-126
    return not_zero & (bit11 ^ not_tiny) != 0


def decode_columns(payload: bytes, rows: int) -> list[list[object]]:
    """A ``maybe_encode`` payload as one list per column, as ``backend.decode_columns`` gives.

    Strings as UTF-8 bytes, ts as integer milliseconds, response_ms rounded to
    Float32: the values a RowBinary payload of the same records holds.
    """
    values = orjson.loads(b"[" + payload + b"]")
    if len(values) != rows:
        raise ValueError(f"payload holds {len(values)} rows, not {rows}")
    if not values:
        return [[] for _ in COLUMNS]
    columns: list[list[Any]] = [list(c) for c in zip(*values, strict=True)]
    if len(columns) != len(COLUMNS):
        raise ValueError(f"rows have {len(columns)} values, not {len(COLUMNS)}")
    columns[_TS] = [ts_millis(v) for v in columns[_TS]]
    for i in _STRINGS:
        columns[i] = [v.encode("utf-8") for v in columns[i]]
    for i in _UINT32:
        columns[i] = [int(v) for v in columns[i]]
    for i in _FLOAT64:
        columns[i] = [float(v) for v in columns[i]]
    for i in _BOOLS:
        columns[i] = [bool(v) for v in columns[i]]
    f32 = columns[_FLOAT32]
    columns[_FLOAT32] = list(struct.unpack(f"<{rows}f", struct.pack(f"<{rows}f", *f32)))
    return columns
