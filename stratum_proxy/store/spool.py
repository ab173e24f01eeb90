"""The durable spool: an append-only journal of every share row, on disk.

Every row the pipeline accepts is appended here (write-ahead), not only the rows
that overflow the memory queue: that is what bounds a crash's loss to the rows
received since the last grouped fsync.  The pipeline's hand-off
(``handoff.Handoff``) buffers them for the flusher thread, which has them
written here in small steps and fsynced every ``fsync_interval_s``.  Segments are
deleted once the store acknowledged all their rows (``trim``), so on a healthy
store the spool stays around one segment.

Disk cap: a row that would take the spool past ``max_bytes`` is not written;
``write`` returns it, and the hand-off keeps its seq as in memory only (a
crash before it reaches the store would lose it) or counts it in
``rows_shed`` when the memory queue does not hold it.  ``full`` tells the
hand-off to shed such rows before they are even buffered.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stratum_proxy.store.deadletter import DEADLETTER_FILE
from stratum_proxy.store.priority import let_event_loop_run
from stratum_proxy.store.private_files import open_private, tighten_file, tighten_mode
from stratum_proxy.store.spool_format import (
    CHUNK_ROWS,
    FILE_HEADER,
    encode_chunk,
    list_segments,
    parse_records,
    segment_name,
)
from stratum_proxy.store.spool_state import (
    STATE_FILE,
    SpoolState,
    load_state,
    lock_directory,
    sync_directory,
    unlock_directory,
)

Values = tuple[Any, ...]  # a row's values in COLUMNS order (see row_source.Values)
Item = tuple[int, Values, bool]  # (seq, row, also in the memory queue)
_DEFAULT_ROW_BYTES = 400  # estimate for segments not yet read back


@dataclass(frozen=True, slots=True)
class WriteResult:
    written: int
    not_journaled: list[Item]  # rows the spool did not take (disk cap, disk error)
    error: OSError | None  # a disk error, for the caller to log


@dataclass(slots=True)
class Segment:
    first_seq: int
    path: Path
    size: int
    rows: int  # exact for segments written or read by this process, else an estimate
    last_seq: int | None


@dataclass(slots=True, kw_only=True)
class Recovery:
    """What ``Spool.open`` found from the previous run."""

    state: SpoolState
    segments: int
    bytes: int
    rows_estimate: int
    last_seq: int  # the last seq journaled before (0: empty spool)
    torn_bytes: int  # an unfinished record at the end, cut off (a crash while writing)


class Spool:
    """The journal of one spool directory; one writer process at a time (flock)."""

    def __init__(self, directory: Path, *, segment_bytes: int, max_bytes: int) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.max_bytes = max_bytes
        self.full = False  # at the disk cap: the hand-off sheds spool-only rows at once
        self.rows_shed = 0
        self.rows_unencodable = 0
        self.last_error: str | None = None
        self.written_seq = 0  # the last seq written to a segment file
        self.durable_seq = 0  # the last seq fsynced
        self._lock = threading.Lock()
        self._segments: list[Segment] = []
        self._fd: int | None = None  # the active (last) segment, open for appending
        self._dirty = False
        self._sync_lost = False  # an fsync failed: durable_seq stops moving (it is reported)
        self._lock_fd: int | None = None
        self._bytes = 0  # sum of segment sizes, kept current: checked for every row
        self._unwritten: list[Item] = []  # rows the write under way did not take

    # -- lifecycle -------------------------------------------------------------------

    def open(self) -> Recovery:
        """Lock the directory and take stock of what a previous run left behind."""
        self._lock_fd = lock_directory(self.directory)
        # Files an older release wrote world-readable; new ones are created 0600.
        for name in (STATE_FILE, DEADLETTER_FILE):
            tighten_file(self.directory / name)
        state = load_state(self.directory)
        torn = 0
        for first, path in list_segments(self.directory):
            st = path.stat()
            tighten_mode(path, st.st_mode)
            self._segments.append(Segment(first, path, st.st_size, 0, None))
        if self._segments:
            torn = self._repair_last()
        self._bytes = sum(s.size for s in self._segments)
        known = [s for s in self._segments if s.rows]
        avg = sum(s.size for s in known) // max(1, sum(s.rows for s in known)) or _DEFAULT_ROW_BYTES
        for seg in self._segments:
            if seg.last_seq is None:
                seg.rows = max(0, seg.size - len(FILE_HEADER)) // avg
        last_seq = next((s.last_seq for s in reversed(self._segments) if s.last_seq), 0)
        self.written_seq = self.durable_seq = last_seq
        return Recovery(
            state=state,
            segments=len(self._segments),
            bytes=self.bytes_on_disk,
            rows_estimate=sum(s.rows for s in self._segments),
            last_seq=last_seq,
            torn_bytes=torn,
        )

    def _repair_last(self) -> int:
        """Read the last segment whole; cut a torn tail; drop it if it holds no row."""
        seg = self._segments[-1]
        data = seg.path.read_bytes()
        parsed = parse_records(data, len(FILE_HEADER))
        if not parsed.records:
            seg.path.unlink()
            self._segments.pop()
            return max(0, len(data) - len(FILE_HEADER))
        seg.rows = sum(chunk.rows for chunk in parsed.records)
        seg.last_seq = parsed.records[-1].last_seq
        tail = parsed.corruptions[-1] if parsed.corruptions else None
        if tail is None or tail.offset + tail.length < len(data):
            return 0
        os.truncate(seg.path, tail.offset)
        seg.size = tail.offset
        return tail.length

    def close(self, acked_seq: int | None = None) -> None:
        """Seal the active segment, delete what ``acked_seq`` covers, unlock."""
        with self._lock:
            self._seal()
        if acked_seq is not None:
            self.trim(acked_seq)
        with self._lock:
            if self._lock_fd is not None:
                unlock_directory(self._lock_fd)
                self._lock_fd = None

    # -- writing (flusher thread, or the writer when it needs rows on disk now) ------

    def write(self, items: list[Item], *, sync: bool) -> WriteResult:
        """Append ``items`` (consecutive or not, in seq order); fsync when ``sync``.

        Rows not written (at the disk cap, or on a disk error: full disk, I/O
        error) are returned for the caller to account for; after a disk error
        the segment is cut back to its last whole record and the error is
        returned too.
        """
        with self._lock:
            self._unwritten = []
            try:
                written = self._write_items(items)
                if sync and self._dirty and self._fd is not None:
                    os.fsync(self._fd)
                    self._mark_durable()
            except OSError as exc:
                self._recover_from_write_error(items, exc)
                return WriteResult(0, self._unwritten, exc)
            return WriteResult(written, self._unwritten, None)

    def _write_items(self, items: list[Item]) -> int:
        # One record (and one os.write, which lets the GIL go) per run of at most
        # CHUNK_ROWS consecutive seqs; a gap (a row not journaled) starts a new one.
        total, start, n = 0, 0, len(items)
        while start < n:
            if start:
                let_event_loop_run()  # each chunk is ~0.2 ms of GIL-held work
            end = _run_end(items, start, min(n, start + CHUNK_ROWS))
            total += self._write_run(items[start:end])
            start = end
        return total

    def _write_run(self, run: list[Item]) -> int:
        written = 0
        for first, rows, entry in self._encode(run):
            if self._bytes + len(entry) > self.max_bytes:
                if len(rows) > 1:  # at the cap: keep as many rows as still fit
                    half = len(rows) // 2
                    written += self._write_run(rows[:half]) + self._write_run(rows[half:])
                    continue
                self.full = True
                self._not_journaled(rows)
                continue
            if self._needs_new_segment(len(entry)):
                self._rotate(first)
            self._write(entry, len(rows), first + len(rows) - 1)
            written += len(rows)
        return written

    def _not_journaled(self, rows: list[Item]) -> None:
        self._unwritten.extend(rows)

    def _encode(self, run: list[Item]) -> list[tuple[int, list[Item], bytes]]:
        """(first seq, rows, record bytes) for ``run``: one chunk unless a row is unencodable."""
        try:
            return [(run[0][0], run, encode_chunk(run[0][0], [tuple(r) for _, r, _ in run]))]
        except (TypeError, ValueError):
            pass
        out = []  # rare: find the culprit(s); every good row becomes its own record
        for item in run:
            seq, record, _queued = item
            try:
                out.append((seq, [item], encode_chunk(seq, [tuple(record)])))
            except (TypeError, ValueError) as exc:  # e.g. an int beyond 64 bits
                self.rows_unencodable += 1
                self.last_error = f"row seq {seq} cannot be spooled: {exc}"
        return out

    def _recover_from_write_error(self, items: list[Item], exc: OSError) -> None:
        already = {item[0] for item in self._unwritten}  # refused at the cap before the error
        self._not_journaled(
            [item for item in items if item[0] > self.written_seq and item[0] not in already]
        )
        self.last_error = f"spool write failed: {exc}"
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, self._segments[-1].size)
            except OSError:
                self._seal_quietly()

    def _seal_quietly(self) -> None:
        """Close the active segment after a disk error, fsyncing what it can."""
        if self._fd is None:
            return
        try:
            os.fsync(self._fd)
        except OSError as exc:
            # Rows written since the last fsync may be gone; a later fsync of
            # another segment must not report them durable.
            self._sync_lost = True
            self.last_error = f"spool fsync failed: {exc}"
        os.close(self._fd)
        self._fd = None
        self._mark_durable()

    def _needs_new_segment(self, entry: int) -> bool:
        if self._fd is None:
            return True
        seg = self._segments[-1]
        # never seal an empty segment
        return seg.rows > 0 and seg.size + entry > self.segment_bytes

    def _write(self, buf: bytes, count: int, last_seq: int) -> None:
        if self._fd is None:
            return
        view = memoryview(buf)
        while view:
            view = view[os.write(self._fd, view) :]
        seg = self._segments[-1]
        seg.size += len(buf)
        seg.rows += count
        seg.last_seq = last_seq
        self._bytes += len(buf)
        self.written_seq = last_seq
        self._dirty = True

    def _rotate(self, first_seq: int) -> None:
        self._seal()
        path = self.directory / segment_name(first_seq)
        self._fd = open_private(path, os.O_WRONLY | os.O_TRUNC | os.O_APPEND)
        os.write(self._fd, FILE_HEADER)
        self._segments.append(Segment(first_seq, path, len(FILE_HEADER), 0, None))
        self._bytes += len(FILE_HEADER)
        sync_directory(self.directory)

    def _seal(self) -> None:
        if self._fd is None:
            return
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = None
        self._mark_durable()

    def _mark_durable(self) -> None:
        self._dirty = False
        if not self._sync_lost:
            self.durable_seq = self.written_seq

    # -- reading and trimming (writer thread) ------------------------------------------

    def segments(self) -> list[Segment]:
        """A snapshot of the segments, oldest first."""
        with self._lock:
            return [
                Segment(s.first_seq, s.path, s.size, s.rows, s.last_seq) for s in self._segments
            ]

    def readable_size(self, first_seq: int) -> int | None:
        """Bytes of a segment that hold whole records (None: the segment is gone)."""
        with self._lock:
            for seg in self._segments:
                if seg.first_seq == first_seq:
                    return seg.size
            return None

    def note_rows(self, first_seq: int, rows: int, last_seq: int) -> None:
        """The reader counted a recovered segment exactly: replace the estimate."""
        with self._lock:
            for seg in self._segments:
                if seg.first_seq == first_seq and seg.last_seq is None:
                    seg.rows, seg.last_seq = rows, last_seq

    def trim(self, acked_seq: int) -> int:
        """Delete sealed segments whose rows are all acknowledged; returns how many."""
        with self._lock:
            removed = 0
            doomed = []
            while len(self._segments) > 1 and self._segments[1].first_seq <= acked_seq + 1:
                doomed.append(self._segments.pop(0))
            if self._fd is None and self._segments and self._all_acked(acked_seq):
                doomed.append(self._segments.pop())
            for seg in doomed:
                seg.path.unlink(missing_ok=True)
                self._bytes -= seg.size
                removed += 1
            if removed and self._bytes < self.max_bytes:
                self.full = False
            return removed

    def _all_acked(self, acked_seq: int) -> bool:
        last = self._segments[-1].last_seq
        return last is not None and last <= acked_seq

    def unacked_rows(self, acked_seq: int) -> int:
        """Rows in the spool not yet acknowledged (estimated for unread old segments)."""
        total = 0
        for seg in self.segments():
            if seg.last_seq is None:
                total += seg.rows
            elif seg.last_seq > acked_seq:
                total += min(seg.rows, seg.last_seq - max(acked_seq, seg.first_seq - 1))
        return total

    @property
    def bytes_on_disk(self) -> int:
        return self._bytes

    def statistics(self) -> dict[str, Any]:
        return {
            "spool_bytes": self.bytes_on_disk,
            "spool_segments": len(self._segments),
            "spool_durable_seq": self.durable_seq,
            "spool_full": self.full,
        }


def _run_end(items: list[Item], start: int, limit: int) -> int:
    """End (exclusive, at most ``limit``) of the run of consecutive seqs at ``start``.

    Seqs only grow, so ``seq - index`` is constant within a run and larger
    after a gap: a binary search finds the run's end without a look at each row.
    """
    base = items[start][0] - start
    if items[limit - 1][0] - (limit - 1) == base:
        return limit
    lo, hi = start + 1, limit - 1  # items[hi] lies beyond the run
    while lo < hi:
        mid = (lo + hi) // 2
        if items[mid][0] - mid == base:
            lo = mid + 1
        else:
            hi = mid
    return lo
