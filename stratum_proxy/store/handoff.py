"""The rows between the event loop and the pipeline's two threads, with one owner.

``Handoff`` holds every row the pipeline has accepted and not yet written
(the memory queue, the journal's buffer, the seqs of rows in memory only) and
the spill flag.  Each side talks to it through methods, never through another
object's attributes:

* the event loop: ``put`` (O(1), no lock, no I/O, never raises);
* the flusher thread: ``journal`` (write the buffered rows to the spool, and
  fsync them on its interval);
* the writer thread: ``queue`` is its to consume (through ``RowSource``, the
  only consumer: a deque's append and popleft are atomic), ``journal`` when
  it needs rows on disk now, ``acknowledged`` when the store took rows,
  ``maybe_end_spill`` when it caught up;
* statistics and stop: ``snapshot`` and ``lost_after``.

Every row goes to the journal's buffer; the queue is only a fast path, so a
full queue means "spill": rows go to the spool only until the writer caught
up.  A row is shed (counted) only when the buffer is full too or the spool is
at its disk cap.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from stratum_proxy.store.spool import Item, Spool

# A row's values in ``COLUMNS`` order: a plain tuple of them (in the memory
# queue, the journal's buffer and what the spool reader decodes; a ShareRecord is
# accepted wherever a row is, e.g. from tests).  Plain on purpose: the cyclic
# collector untracks an exact tuple of strings and numbers at its first pass,
# but never a tuple subclass such as ShareRecord, so queued ShareRecords would
# pile up in the older generations and make every collection slower.
Values = tuple[Any, ...]
Row = tuple[int, Values]


class Handoff:
    """Owner of the queue / journal hand-off of one pipeline."""

    def __init__(self, spool: Spool, *, queue_size: int, buffer_rows: int) -> None:
        self._spool = spool
        self.queue: deque[Row] = deque()  # consumed by the writer's RowSource only
        self._queue_size = queue_size
        self._pending: deque[Item] = deque()  # (seq, values, also queued), for the journal
        self._pending_max = buffer_rows
        # Seqs of rows only in the memory queue (spool full or failing): a stop
        # with the store down would lose them, so they are tracked until acked.
        self._unjournaled: deque[int] = deque()
        self._spill = False  # the queue overflowed: rows go to the spool only
        self._journal_lock = threading.Lock()  # the flusher and the writer both journal
        self.next_seq = 1
        self.closed = False
        self.rows_put = 0
        self.rows_shed = 0  # shed by put (spool full or its buffer full, or after close)

    # -- the event loop ----------------------------------------------------------------

    def put(self, record: Any) -> None:
        """Hand over one row: O(1), no lock, no I/O, never raises."""
        pending = self._pending
        if self.closed:
            self.rows_shed += 1
            return
        seq = self.next_seq
        values = tuple(record)  # see Values: not a tracked ShareRecord
        if self._spill or len(self.queue) >= self._queue_size:
            if self._spool.full or len(pending) >= self._pending_max:
                self.rows_shed += 1
                return
            self.next_seq = seq + 1
            self._spill = True
            pending.append((seq, values, False))
        else:
            self.next_seq = seq + 1
            if len(pending) < self._pending_max:
                pending.append((seq, values, True))
            else:
                self._unjournaled.append(seq)
            self.queue.append((seq, values))
        self.rows_put += 1

    # -- the threads -------------------------------------------------------------------

    def buffered(self) -> int:
        """Rows waiting for the journal."""
        return len(self._pending)

    def journal(self, *, sync: bool) -> int:
        """Write the buffered rows to the spool (fsync when ``sync``); returns rows written.

        Rows the spool could not take (at its cap, or a disk error) are tracked
        as in memory only, or counted as shed when they were spool-only.  A disk
        error is raised after that, for the caller to log.
        """
        with self._journal_lock:
            popleft = self._pending.popleft
            items = [popleft() for _ in range(len(self._pending))]
            result = self._spool.write(items, sync=sync)
            for seq, _values, queued in result.not_journaled:
                if queued:
                    self._unjournaled.append(seq)
                else:
                    self._spool.rows_shed += 1
            if result.error is not None:
                raise result.error
            return result.written

    def spilling(self) -> bool:
        """Rows go to the journal only (else every buffered row is in the queue too)."""
        return self._spill

    def journaled_through(self) -> int:
        """The last seq written to the spool."""
        return self._spool.written_seq

    def maybe_end_spill(self, caught_up: Callable[[], bool]) -> None:
        """The writer is idle: the queue takes live rows again once nothing is behind."""
        if self._spill and caught_up():
            self._spill = False

    def acknowledged(self, last_seq: int) -> None:
        """The store has every row through ``last_seq``."""
        unjournaled = self._unjournaled
        while unjournaled and unjournaled[0] <= last_seq:
            unjournaled.popleft()

    # -- statistics and stop -----------------------------------------------------------

    def snapshot(self) -> dict[str, int]:
        return {
            "queue_depth": len(self.queue),
            "spill": int(self._spill),
            "spool_pending": len(self._pending),
            "rows_unjournaled": len(self._unjournaled),
        }

    def lost_after(self, acked_seq: int) -> list[int]:
        """Seqs in memory only that the store never took: lost if the process ends now."""
        return [seq for seq in self._unjournaled if seq > acked_seq]
