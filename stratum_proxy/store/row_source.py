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

from collections import deque
from collections.abc import Callable
from typing import Any

from stratum_proxy.store.spool import Spool
from stratum_proxy.store.spool_reader import SpoolReader

# A row's values in ``COLUMNS`` order: a plain tuple of them (in the memory
# queue, the spool's buffer and what the spool reader decodes; a ShareRecord is
# accepted wherever a row is, e.g. from tests).  Plain on purpose: the cyclic
# collector untracks an exact tuple of strings and numbers at its first pass,
# but never a tuple subclass such as ShareRecord, so queued ShareRecords would
# pile up in the older generations and make every collection slower.
Values = tuple[Any, ...]
Row = tuple[int, Values]


class RowSource:
    """The writer thread's view of all rows not yet batched (one thread only)."""

    def __init__(
        self,
        queue: deque[Row],
        spool: Spool,
        reader: SpoolReader,
        next_seq: int,
        *,
        spilling: Callable[[], bool] = lambda: True,
    ) -> None:
        self.queue = queue
        self.spool = spool
        self.reader = reader
        # True while rows may go to the spool only (the queue overflowed); else
        # every row not yet written to the spool is in the queue too.
        self._spilling = spilling
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
        if (
            not rows
            and self.spool.pending
            and self._spilling()
            and (below is None or self.spool.written_seq < below - 1)
        ):
            # The rows we need may still be waiting for the flusher: write them now.
            # (Not otherwise: then they reach us through the queue, and writing
            # here would only move the flusher's work into this thread.)
            self.spool.write_pending(sync=False)
            rows = self.reader.read(self.next_seq, max(want, 1), below=below)
        self._ahead.extend(rows)

    def caught_up(self) -> bool:
        """Nothing left anywhere: the queue may take live rows again (ends spill mode)."""
        if self.queue or self._ahead or self.spool.pending:
            return False
        self._fill(1)
        return not self._ahead and not self.spool.pending

    def memory_empty(self) -> bool:
        """No row waits in memory (the spool holds the rest durably)."""
        return not self.queue and not self._ahead
