"""The on-disk format of the share spool: segment files of checksummed records.

A segment is ``seg-<first seq, 20 digits>.spool``: an 8-byte file header, then
records back to back.  A record is

    magic u16 | payload length u32 | crc32 u32 | seq u64 | payload

(little endian).  The CRC covers the seq and the payload, so a flipped bit in
either is caught.  The payload is the row as a JSON array in ``COLUMNS`` order
(orjson: floats are written in their shortest round-tripping form, so a row
comes back bit-for-bit).  Rows from an older release with fewer columns decode
with the defaults of the trailing fields.

Corruption policy: a record with a bad magic, an impossible length or a CRC
mismatch is reported and the parser *resynchronises* on the next offset where a
whole valid record starts.  The rows lost in between are counted from the gap
in sequence numbers (the spool's seqs are consecutive), so the loss is both
bounded and reported rather than taking the rest of the segment with it.
"""

from __future__ import annotations

import operator
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from stratum_proxy.store.record import COLUMNS, ShareRecord

FILE_HEADER = b"SPSPOOL1"
MAGIC = 0x5AA5
_MAGIC_BYTES = struct.pack("<H", MAGIC)
_HEADER = struct.Struct("<HIIQ")
RECORD_HEADER_SIZE = _HEADER.size
_SEQ = struct.Struct("<Q")
# A share row is a few hundred bytes; 1 MiB is far beyond any honest row and
# stops a corrupted length field from making us read (or wait for) gigabytes.
MAX_PAYLOAD = 1024 * 1024
SEGMENT_PREFIX = "seg-"
SEGMENT_SUFFIX = ".spool"

_values: Callable[[ShareRecord], tuple[Any, ...]] = operator.attrgetter(*COLUMNS)


def segment_name(first_seq: int) -> str:
    return f"{SEGMENT_PREFIX}{first_seq:020d}{SEGMENT_SUFFIX}"


def maybe_segment_seq(name: str) -> int | None:
    """The first seq encoded in a segment file name, or None for other files."""
    if not (name.startswith(SEGMENT_PREFIX) and name.endswith(SEGMENT_SUFFIX)):
        return None
    digits = name[len(SEGMENT_PREFIX) : -len(SEGMENT_SUFFIX)]
    return int(digits) if digits.isdigit() else None


def list_segments(directory: Path) -> list[tuple[int, Path]]:
    """Segments of a spool directory, oldest (lowest first seq) first."""
    found = []
    for path in directory.iterdir():
        seq = maybe_segment_seq(path.name)
        if seq is not None:
            found.append((seq, path))
    found.sort()
    return found


def encode_payload(record: ShareRecord) -> bytes:
    return orjson.dumps(_values(record))


def decode_payload(payload: bytes) -> ShareRecord:
    """A row back from its payload; ValueError/TypeError when it is not a row."""
    values = orjson.loads(payload)
    if not isinstance(values, list) or len(values) > len(COLUMNS):
        raise ValueError("payload is not a share row")
    return ShareRecord(*values)


def encode_record(seq: int, payload: bytes) -> bytes:
    seq_bytes = _SEQ.pack(seq)
    crc = zlib.crc32(payload, zlib.crc32(seq_bytes))
    return _HEADER.pack(MAGIC, len(payload), crc, seq) + payload


@dataclass(slots=True)
class Corruption:
    """Bytes of a segment that did not parse as records, and why."""

    offset: int
    length: int
    reason: str
    index: int = 0  # how many records of the same parse came before it


@dataclass(slots=True)
class Parsed:
    """What one parse of a buffer found: records, where it stopped, what was skipped."""

    records: list[tuple[int, bytes]] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)  # where each record starts
    end: int = 0
    corruptions: list[Corruption] = field(default_factory=list)


def parse_records(buf: bytes, start: int, *, limit: int | None = None) -> Parsed:
    """Parse records from ``buf[start:]``, stopping after ``limit`` records.

    ``buf`` must end on a boundary the writer completed (the end of a sealed
    segment, or the size of the active one that the spool reports after each
    write), so a record cut short at its end is corruption (a torn write).
    """
    out = Parsed(end=start)
    pos, size = start, len(buf)
    while pos < size and (limit is None or len(out.records) < limit):
        reason = _check_record(buf, pos)
        if reason is None:
            _magic, length, _crc, seq = _HEADER.unpack_from(buf, pos)
            body = pos + RECORD_HEADER_SIZE
            out.records.append((seq, buf[body : body + length]))
            out.offsets.append(pos)
            pos = body + length
            continue
        resume = _resync(buf, pos + 1)
        damage = Corruption(offset=pos, length=resume - pos, reason=reason, index=len(out.records))
        out.corruptions.append(damage)
        pos = resume
    out.end = pos
    return out


def _check_record(buf: bytes, pos: int) -> str | None:
    """None when a whole valid record starts at ``pos``, else why not."""
    if len(buf) - pos < RECORD_HEADER_SIZE:
        return "truncated"
    magic, length, crc, seq = _HEADER.unpack_from(buf, pos)
    if magic != MAGIC:
        return "bad magic"
    if length > MAX_PAYLOAD:
        return f"impossible length {length}"
    body = pos + RECORD_HEADER_SIZE
    if body + length > len(buf):
        return "truncated"
    view = memoryview(buf)[body : body + length]
    if zlib.crc32(view, zlib.crc32(_SEQ.pack(seq))) != crc:
        return "crc mismatch"
    return None


def _resync(buf: bytes, pos: int) -> int:
    """The next offset where a valid record starts (or the end of the buffer)."""
    while True:
        pos = buf.find(_MAGIC_BYTES, pos)
        if pos < 0:
            return len(buf)
        if _check_record(buf, pos) is None:
            return pos
        pos += 1
