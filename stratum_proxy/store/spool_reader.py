"""Reading share rows back from spool segments, oldest first.

Used by the writer thread (replay after a restart, rows that overflowed the
memory queue) and by ``spool drain``/``spool status``.  The reader never reads
past the bytes the spool reports as written, so a record being appended is
never mistaken for a torn one.  Segments vanish under it when the store
acknowledged them; it then seeks to the segment holding the next wanted seq.
Rows come back as plain tuples (``Chunk.decode``).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stratum_proxy.store.priority import let_event_loop_run
from stratum_proxy.store.spool_format import (
    CHUNK_HEADER_SIZE,
    FILE_HEADER,
    MAX_PAYLOAD,
    Chunk,
    Corruption,
    list_segments,
    parse_records,
    segment_name,
)

# Read in pieces of at least this much; a piece always holds a whole record.
_MAX_RECORD = MAX_PAYLOAD + CHUNK_HEADER_SIZE
_MIN_CHUNK = 2 * _MAX_RECORD
_ROW_BYTES_GUESS = 400

Row = tuple[int, tuple[Any, ...]]  # seq, values in COLUMNS order (a plain tuple)
Segments = Callable[[], list[tuple[int, int]]]  # (first seq, readable bytes), oldest first


@dataclass(frozen=True, slots=True, kw_only=True)
class CorruptionReport:
    """A damaged stretch of a segment that was skipped."""

    path: Path
    offset: int
    length: int
    reason: str
    rows_lost: int
    exact: bool  # False: estimated from the bytes (the damage ran to the segment's end)

    def log(self, log: Any) -> None:
        """The one error line every spool reader writes for skipped damage."""
        log.error(
            "spool_corrupt_record_skipped",
            segment=str(self.path),
            offset=self.offset,
            bytes=self.length,
            reason=self.reason,
            rows_lost=self.rows_lost,
            exact=self.exact,
        )


def directory_segments(directory: Path) -> Segments:
    """Segments of a spool nobody is writing to (drain, status): every byte is final."""

    def segments() -> list[tuple[int, int]]:
        found = []
        for first, path in list_segments(directory):
            try:
                found.append((first, path.stat().st_size))
            except FileNotFoundError:
                continue
        return found

    return segments


class SpoolReader:
    def __init__(
        self,
        directory: Path,
        segments: Segments,
        on_corruption: Callable[[CorruptionReport], None],
        on_segment_done: Callable[[int, int, int], None] | None = None,
    ) -> None:
        self.directory = directory
        self._segments = segments
        self._on_corruption = on_corruption
        self._on_segment_done = on_segment_done
        self._seg: int | None = None  # first seq of the segment being read
        self._offset = 0
        self._last_seen = 0
        self._seg_rows = 0
        self._damage: list[tuple[int, int, str]] = []  # corruption awaiting its row count
        self.exhausted = False  # the last read reached the end of the spool
        self._below = 1 << 64
        self._blocked = False  # the last read stopped at a row >= below
        self._held: deque[Row] = deque()  # rows of a chunk that straddled ``below``
        self.rows_corrupt = 0

    def read(self, min_seq: int, max_rows: int, *, below: int | None = None) -> list[Row]:
        """Up to ``max_rows`` rows with ``min_seq <= seq < below``, in order.

        ``below`` stops the read before a row the caller has in memory anyway.
        """
        out: list[Row] = []
        self.exhausted = False
        self._below = below if below is not None else 1 << 64
        self._blocked = False
        self._serve_held(min_seq, max_rows, out)
        while len(out) < max_rows and not self._blocked:
            segs = self._segments()
            if not self._position(segs, min_seq):
                self.exhausted = True
                break
            assert self._seg is not None
            size = dict(segs)[self._seg]
            if self._offset >= size:
                if not self._advance(segs):
                    self.exhausted = True
                    break
                continue
            self._read_piece(size, min_seq, max_rows - len(out), out)
        return out

    def _position(self, segs: list[tuple[int, int]], min_seq: int) -> bool:
        if not segs:
            return False
        firsts = [first for first, _ in segs]
        target = firsts[0]
        for first in firsts:
            if first <= min_seq:
                target = first
        if self._seg is None or self._seg not in firsts or self._seg < target:
            self._start_segment(target)
        return True

    def _start_segment(self, first: int) -> None:
        self._seg, self._offset = first, len(FILE_HEADER)
        self._last_seen, self._seg_rows, self._damage = first - 1, 0, []

    def _advance(self, segs: list[tuple[int, int]]) -> bool:
        later = [first for first, _ in segs if self._seg is not None and first > self._seg]
        if not later:
            return False
        self._finish_segment(next_first=later[0])
        self._start_segment(later[0])
        return True

    def _finish_segment(self, next_first: int | None = None) -> None:
        if self._seg is None:
            return
        for i, (offset, length, reason) in enumerate(self._damage):
            if next_first is not None:
                # The damage ran to the segment's end: the next segment's first
                # seq (its name) tells exactly how many rows it held.
                gap = max(0, next_first - self._last_seen - 1)
                self._report(offset, length, reason, gap if i == 0 else 0, exact=True)
            else:  # the last segment: only its size tells
                rows = max(1, length // _ROW_BYTES_GUESS)
                self._report(offset, length, reason, rows, exact=False)
        self._damage = []
        if self._on_segment_done is not None and self._seg_rows:
            self._on_segment_done(self._seg, self._seg_rows, self._last_seen)

    def _read_piece(self, size: int, min_seq: int, want: int, out: list[Row]) -> None:
        assert self._seg is not None
        path = self.directory / segment_name(self._seg)
        length = min(size - self._offset, max(_MIN_CHUNK, want * _ROW_BYTES_GUESS))
        try:
            with open(path, "rb") as f:
                data = os.pread(f.fileno(), length, self._offset)
        except FileNotFoundError:
            self._seg = None  # trimmed under us: seek again
            return
        parsed = parse_records(data, 0, limit=want)
        end = parsed.end
        cut = parsed.corruptions[-1] if parsed.corruptions else None
        if cut and cut.offset + cut.length == len(data) and self._offset + len(data) < size:
            # The piece ended there, not the segment: a record may have been cut.
            parsed.corruptions.pop()
            if cut.offset > 0:
                end = cut.offset  # read it again, whole, next time
            else:
                # Damage fills the piece: skip it, but keep the room where a
                # record cut by the piece could start.
                end = len(data) - _MAX_RECORD
                parsed.corruptions.append(
                    Corruption(offset=0, length=end, reason=cut.reason, index=cut.index)
                )
        damage = deque(parsed.corruptions)
        limit = len(out) + want  # ``want`` counts from here; ``out`` may hold rows already
        for index, chunk in enumerate(parsed.records):
            while damage and damage[0].index <= index:
                c = damage.popleft()
                self._damage.append((self._offset + c.offset, c.length, c.reason))
            if len(out) >= limit or chunk.first_seq >= self._below:
                # Stay on this record for the next read: a read never decodes more
                # than it returns (plus the rest of one chunk, held).
                self._blocked = chunk.first_seq >= self._below
                self._offset += parsed.offsets[index]
                return
            if index:
                let_event_loop_run()  # decoding a chunk holds the GIL for ~1 ms
            self._take(chunk, self._offset + parsed.offsets[index], min_seq, limit, out)
        for c in damage:
            self._damage.append((self._offset + c.offset, c.length, c.reason))
        self._offset += end

    def _take(self, chunk: Chunk, offset: int, min_seq: int, limit: int, out: list[Row]) -> None:
        if self._damage:
            gap = max(0, chunk.first_seq - self._last_seen - 1)
            for i, (at, length, reason) in enumerate(self._damage):
                self._report(at, length, reason, gap if i == 0 else 0, exact=True)
            self._damage = []
        self._last_seen = chunk.last_seq
        self._seg_rows += chunk.rows
        if chunk.last_seq < min_seq:
            return
        try:
            records = chunk.decode()
        except (ValueError, TypeError) as exc:
            reason = f"undecodable rows: {exc}"
            self._report(offset, len(chunk.payload), reason, chunk.rows, exact=True)
            return
        seq = chunk.first_seq
        for record in records:
            if seq >= min_seq:
                self._held.append((seq, record))
            seq += 1
        self._serve_held(min_seq, limit, out)

    def _serve_held(self, min_seq: int, max_rows: int, out: list[Row]) -> None:
        # A chunk is decoded whole; rows the caller cannot take now wait here.
        held = self._held
        while held and held[0][0] < min_seq:
            held.popleft()
        while held and len(out) < max_rows:
            if held[0][0] >= self._below:
                self._blocked = True
                return
            out.append(held.popleft())

    def _report(self, offset: int, length: int, reason: str, rows: int, *, exact: bool) -> None:
        self.rows_corrupt += rows
        path = self.directory / segment_name(self._seg or 0)
        self._on_corruption(
            CorruptionReport(
                path=path, offset=offset, length=length, reason=reason, rows_lost=rows, exact=exact
            )
        )

    def finish(self) -> None:
        """Report damage pending at the end of the last segment (offline readers)."""
        self._finish_segment()
