"""Where the writer takes its next rows from: the memory queue, or the spool.

Every row has a seq; the writer consumes them strictly in seq order, so the
store's acknowledgements reduce to one number (``acked_seq``).  A row is in the
memory queue, or only in the spool (it arrived while the queue was full, or it
was replayed after a restart), or both.  ``take`` merges the two: the queue
head when it is the next seq (the normal, fast path), otherwise the oldest
spooled row, reading the spool as needed.  Seqs that are in neither were shed
(and counted where they were shed), so a gap is skipped, never waited on.
"""

from __future__ import annotations

import contextlib
from collections import deque

from stratum_proxy.store.handoff import Handoff, Row, Values
from stratum_proxy.store.spool_reader import SpoolReader

__all__ = ["Row", "RowSource", "Values"]


class RowSource:
    """The writer thread's view of all rows not yet batched (one thread only)."""

    def __init__(self, handoff: Handoff, reader: SpoolReader, next_seq: int) -> None:
        self.handoff = handoff
        self.queue = handoff.queue  # this is the queue's only consumer
        self.reader = reader
        self.next_seq = next_seq  # the lowest seq not yet taken
        self._ahead: deque[Row] = deque()  # rows read from the spool, not yet taken

    def take(self, max_rows: int, *, through: int | None = None) -> list[Row]:
        """Up to ``max_rows`` rows available now, in seq order (``through``: seq cap)."""
        out: list[Row] = []
        queue, ahead = self.queue, self._ahead
        limit = through if through is not None else 1 << 64
        while len(out) < max_rows:
            while queue and queue[0][0] == self.next_seq and self.next_seq <= limit:
                out.append(queue.popleft())  # the fast path
                self.next_seq += 1
                if len(out) >= max_rows:
                    return out
            self._drop_taken()
            if not ahead:
                self._fill(max_rows - len(out))
                self._drop_taken()
            source = self._oldest()
            if source is None or source[0][0] > limit:
                break
            out.append(source.popleft())
            self.next_seq = out[-1][0] + 1
        return out

    def _drop_taken(self) -> None:
        # A row can be in both the queue and the spool: the copy not taken goes.
        queue, ahead = self.queue, self._ahead
        while queue and queue[0][0] < self.next_seq:
            queue.popleft()
        while ahead and ahead[0][0] < self.next_seq:
            ahead.popleft()

    def _oldest(self) -> deque[Row] | None:
        """The source (queue or spool read-ahead) whose head is the lowest seq."""
        q_seq = self.queue[0][0] if self.queue else None
        a_seq = self._ahead[0][0] if self._ahead else None
        if a_seq is not None and (q_seq is None or a_seq <= q_seq):
            return self._ahead
        return self.queue if q_seq is not None else None

    def _fill(self, want: int) -> None:
        # Only the rows before the queue head: the rest are in memory already.
        below = self.queue[0][0] if self.queue else None
        rows = self.reader.read(self.next_seq, max(want, 1), below=below)
        handoff = self.handoff
        if (
            not rows
            and handoff.buffered()
            and handoff.spilling()  # else every buffered row is in the queue too
            and (below is None or handoff.journaled_through() < below - 1)
        ):
            # The rows we need may still be waiting for the flusher: write them now.
            # (Not otherwise: then they reach us through the queue, and writing
            # here would only move the flusher's work into this thread.)
            with contextlib.suppress(OSError):  # the flusher reports disk errors
                handoff.journal(sync=False)
            rows = self.reader.read(self.next_seq, max(want, 1), below=below)
        self._ahead.extend(rows)

    def caught_up(self) -> bool:
        """Nothing left anywhere: the queue may take live rows again (ends spill mode)."""
        if self.queue or self._ahead or self.handoff.buffered():
            return False
        self._fill(1)
        return not self._ahead and not self.handoff.buffered()

    def memory_empty(self) -> bool:
        """No row waits in memory (the spool holds the rest durably)."""
        return not self.queue and not self._ahead
