"""The single writer thread: it owns the store client and nothing else touches it.

clickhouse-driver's Client is not thread-safe and chdb holds its data path, so
one thread opens the store, creates the schema, forms batches, inserts them,
and also runs ad-hoc queries for the rest of the process (``submit_query``).

A batch is rows ``first_seq..last_seq`` with the dedup token
``"{proxy_id}:{first_seq}:{last_seq}"``.  Before it is sent its range and token
are saved (fsynced) as ``inflight`` in the spool state; after the store
acknowledged it ``acked_seq`` moves to ``last_seq`` and covered spool segments
are deleted.  So a retry — in this run, or after a SIGKILL between the
acknowledgement and the state update — sends exactly those rows with exactly
that token, and ClickHouse keeps them once (the tables set
``non_replicated_deduplication_window``).  Within a run the encoded bytes are
kept and resent as they are.

Retryable errors back off exponentially with full jitter, forever; the batch
stays the head of the line while new rows pile up in the spool.  Other errors
put the batch in the dead-letter file, and so does an exception no store
raises on purpose (a bug) once it repeats: it must not hold every later row
back for ever.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Any, Protocol

from stratum_proxy.errors import StoreError
from stratum_proxy.store.classify import is_known_failure
from stratum_proxy.store.deadletter import write_dead_letter
from stratum_proxy.store.handoff import Handoff
from stratum_proxy.store.mailbox import QueryMailbox
from stratum_proxy.store.priority import engine_priority, lower_engine_threads
from stratum_proxy.store.record import ShareRecord
from stratum_proxy.store.row_source import Row, RowSource, Values
from stratum_proxy.store.spool import Spool
from stratum_proxy.store.spool_state import Inflight, SpoolState, save_state

# Tries of an insert that raised something no store raises on purpose.
_UNEXPECTED_RETRIES = 3
# The store's own words for "that table (or database) is gone" (codes 60, 81).
_MISSING_TABLE = re.compile(r"UNKNOWN_(TABLE|DATABASE)")


class StoreLike(Protocol):
    """What the writer needs of a store (``stratum_proxy.store.backend.Store``)."""

    def ensure_schema(self) -> None: ...
    def insert(self, batch: Any) -> None: ...
    def query(self, sql: str) -> bytes: ...
    def close(self) -> None: ...


Encode = Callable[[Sequence[ShareRecord], str], Any]  # what a pipeline's caller may pass
RowEncode = Callable[[Sequence[Values], str], Any]  # what the writer calls (plain rows)


def row_encode(encode: Encode) -> RowEncode:
    """A caller's encoder, given ShareRecords (the memory queue holds plain tuples)."""
    return lambda rows, token: encode([ShareRecord._make(r) for r in rows], token)


@dataclass(slots=True)
class WriterCounters:
    """Written by the writer thread only; read by ``SharePipeline.statistics``."""

    batches_written: int = 0
    rows_written: int = 0
    retries: int = 0
    rows_dead_lettered: int = 0
    batches_dead_lettered: int = 0
    last_write_ts: float | None = None
    last_dead_letter_ts: float | None = None  # wall time of the last dead-lettered batch
    store_up: bool = False
    insert_started: float | None = None  # monotonic time of the insert under way
    last_error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WriterConfig:
    proxy_id: str
    batch_rows: int
    linger_s: float
    retry_initial_s: float
    retry_max_s: float
    poll_s: float = 0.02


class StoreWriter:
    def __init__(
        self,
        *,
        config: WriterConfig,
        spool: Spool,
        handoff: Handoff,
        source: RowSource,
        state: SpoolState,
        store_factory: Callable[[], StoreLike],
        encode: RowEncode,
        log: Any,
    ) -> None:
        self.config = config
        self.spool = spool
        self.source = source
        self.state = state
        self.counters = WriterCounters()
        self._store_factory = store_factory
        self._encode = encode
        self._log = log
        self.handoff = handoff
        self.mailbox = QueryMailbox()
        self._wake = threading.Event()
        self._stop_at: float | None = None  # monotonic deadline of a clean stop
        self.abandoned = False  # close() gave up on us: touch no shared state any more
        self._store: StoreLike | None = None
        self._rng = random.Random()
        self.known_threads: set[int] | None = None  # set by the owner: threads not the engine's
        self._next_renice = 0.0
        self.thread = threading.Thread(target=self._run, name="share-writer", daemon=True)

    # -- control (other threads) -----------------------------------------------------

    def submit_query(self, sql: str) -> Future[bytes]:
        future = self.mailbox.submit(sql)
        self._wake.set()
        return future

    def request_stop(self, deadline: float) -> None:
        self._stop_at = deadline
        self._wake.set()

    def drain(self, store: StoreLike, *, patience_s: float) -> int:
        """Write everything the source holds, synchronously (``spool drain``).

        Retryable errors are retried for ``patience_s`` per batch, then StoreError
        is raised; what was acknowledged so far stays acknowledged (and trimmed).
        Returns the rows written.
        """
        self._store = store
        self._stop_at = time.monotonic() + patience_s
        self._replay_inflight()
        while self.state.inflight is None:
            rows = self.source.take(self.config.batch_rows)
            if not rows:
                return self.counters.rows_written
            self._stop_at = time.monotonic() + patience_s
            self._deliver(rows, token=None)
        raise StoreError(
            f"store unavailable, gave up after {patience_s}s ({self.counters.last_error}); "
            "run the drain again: it resumes where it stopped",
            retryable=True,
        )

    # -- the thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._store = self._open_store()
            if self._store is None:
                return
            self._replay_inflight()
            while not self._should_stop():
                rows = self._collect()
                if rows:
                    self._deliver(rows, token=None)
                # After each batch: the queue takes live rows again once caught up.
                self.handoff.maybe_end_spill(self.source.caught_up)
        except Exception as exc:  # a bug must not kill the writer silently
            self._log.exception("share_writer_crashed", error=str(exc))
        finally:
            self.mailbox.fail_all("the share writer has stopped")
            if self._store is not None:
                self._close_store()  # even when abandoned: this thread owns the client

    def _should_stop(self) -> bool:
        if self._stop_at is None:
            return False
        # Rows in the spool are safe already; a stop only empties memory into the store.
        return time.monotonic() >= self._stop_at or self.source.memory_empty()

    def _open_store(self) -> StoreLike | None:
        attempt = 0
        while self._stop_at is None:
            try:
                with engine_priority():  # the engine's threads inherit it
                    store = self._store_factory()
                    store.ensure_schema()
            except Exception as exc:
                self._note_failure(exc, attempt, what="open")
                self._sleep(self._backoff(attempt))
                attempt += 1
                continue
            self.counters.store_up = True
            self._log.info("store_opened", attempts=attempt + 1)
            self._maybe_lower_engine_threads()
            return store
        return None

    def _replay_inflight(self) -> None:
        """Resend the batch a previous run sent without recording its acknowledgement."""
        inflight = self.state.inflight
        if inflight is None:
            return
        if inflight.last_seq < self.source.next_seq:  # acknowledged after all
            self._save(replace(self.state, inflight=None), sync=False)
            return
        self.source.next_seq = max(self.source.next_seq, inflight.first_seq)
        rows = self.source.take(1 << 62, through=inflight.last_seq)
        self._log.info(
            "spool_inflight_resent",
            token=inflight.token,
            rows=len(rows),
            first_seq=inflight.first_seq,
        )
        self.source.next_seq = inflight.last_seq + 1
        self._deliver(rows, token=inflight.token, first=inflight.first_seq, last=inflight.last_seq)

    def _collect(self) -> list[Row]:
        """A batch: ``batch_rows`` rows, or fewer once the oldest waited ``linger_s``."""
        cfg = self.config
        rows = self.source.take(cfg.batch_rows)
        if not rows:
            self._sleep(cfg.poll_s)
            return rows
        deadline = time.monotonic() + cfg.linger_s
        while len(rows) < cfg.batch_rows and self._stop_at is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._sleep(min(remaining, cfg.poll_s))
            rows += self.source.take(cfg.batch_rows - len(rows))
        return rows

    def _deliver(
        self, rows: list[Row], *, token: str | None, first: int = 0, last: int = 0
    ) -> None:
        first = first or (rows[0][0] if rows else 0)
        last = last or (rows[-1][0] if rows else 0)
        token = token or f"{self.config.proxy_id}:{first}:{last}"
        records = [record for _, record in rows]
        if not records:
            self._acknowledged(last, 0)
            return
        try:
            batch = self._encode(records, token)
        except Exception as exc:  # the rows themselves are unacceptable
            self._dead_letter(records, token, first, last, f"cannot encode batch: {exc}")
            return
        self._save(
            replace(self.state, inflight=Inflight(first_seq=first, last_seq=last, token=token))
        )
        self._insert(batch, records, token, first, last)

    def _insert(self, batch: Any, records: list[Values], token: str, first: int, last: int) -> None:
        attempt = unexpected = 0
        repaired = False
        while True:
            self._serve_queries()
            try:
                self.counters.insert_started = time.monotonic()
                assert self._store is not None
                with engine_priority():
                    self._store.insert(batch)
            except Exception as exc:
                if not is_known_failure(exc):
                    # Not an outage the stores report (a bug, or a failure nobody
                    # classified): retried a few times, then the batch goes to the
                    # dead-letter file (replayable) so the rows behind it move on.
                    unexpected += 1
                    self._log.error(
                        "store_unexpected_error",
                        error=f"{type(exc).__name__}: {exc}",
                        attempt=unexpected,
                        exc_info=exc,
                    )
                    if unexpected > _UNEXPECTED_RETRIES:
                        self._dead_letter(
                            records, token, first, last,
                            f"unexpected {type(exc).__name__} from the store, "
                            f"{unexpected} attempts: {exc}",
                        )  # fmt: skip
                        return
                    self._sleep(self._backoff(attempt))
                    attempt += 1
                    continue
                if isinstance(exc, StoreError) and not exc.retryable:
                    # A table dropped under us: rebuild the schema once and resend
                    # the same batch (same token) before giving it up.
                    if not repaired and _MISSING_TABLE.search(str(exc)):
                        repaired = True
                        if self._repair_schema(str(exc)):
                            continue
                    self._dead_letter(records, token, first, last, str(exc))
                    return
                self._note_failure(exc, attempt, what="insert")
                if self._stop_at is not None and time.monotonic() >= self._stop_at:
                    return  # stays in the spool (and in ``inflight``) for the next run
                self._sleep(self._backoff(attempt))
                attempt += 1
                continue
            finally:
                self.counters.insert_started = None
            if attempt:
                self._log.info("store_recovered", retries=attempt, token=token)
            self.counters.store_up = True
            self._maybe_lower_engine_threads()
            self.counters.batches_written += 1
            self.counters.rows_written += len(records)
            self.counters.last_write_ts = time.time()
            self._acknowledged(last, len(records))
            return

    def _repair_schema(self, error: str) -> bool:
        """Re-run the schema's creation (missing tables and views come back)."""
        self._log.warning("store_table_missing", error=error, action="recreating the schema")
        try:
            assert self._store is not None
            with engine_priority():
                self._store.ensure_schema()
        except Exception as exc:
            self._log.error("schema_repair_failed", error=str(exc))
            return False
        return True

    def _maybe_lower_engine_threads(self) -> None:
        # The engine starts threads lazily (the first merge, ...): look again
        # now and then, after an insert, not on every one.
        now = time.monotonic()
        if self.known_threads is None or now < self._next_renice:
            return
        self._next_renice = now + 5.0
        lower_engine_threads(self.known_threads)

    def _acknowledged(self, last_seq: int, rows: int) -> None:
        if self.abandoned:
            return
        self._save(
            replace(self.state, acked_seq=max(self.state.acked_seq, last_seq), inflight=None),
            sync=False,
        )
        self.spool.trim(self.state.acked_seq)
        self.handoff.acknowledged(last_seq)

    def _dead_letter(
        self, records: list[Values], token: str, first: int, last: int, error: str
    ) -> None:
        self._log.error(
            "batch_dead_lettered",
            error=error,
            rows=len(records),
            token=token,
            file="deadletter.jsonl",
        )
        while True:
            try:
                write_dead_letter(
                    self.spool.directory,
                    rows=[ShareRecord._make(r) for r in records],
                    error=error,
                    token=token,
                    first_seq=first,
                    last_seq=last,
                    now=time.time(),
                )
                break
            except OSError as exc:
                # Not written: the rows are still in the spool; keep trying.
                self._log.error("dead_letter_write_failed", error=str(exc))
                if self._stop_at is not None:
                    return
                self._sleep(self.config.retry_max_s)
        self.counters.rows_dead_lettered += len(records)
        self.counters.batches_dead_lettered += 1
        self.counters.last_dead_letter_ts = time.time()
        self._acknowledged(last, 0)

    def _save(self, state: SpoolState, *, sync: bool = True) -> None:
        if self.abandoned:
            return
        save_state(self.spool.directory, state, sync=sync)
        self.state = state

    # -- waiting, backoff, queries -----------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        # Full jitter: many proxies hitting one recovering server spread out.
        ceiling = min(
            self.config.retry_max_s, self.config.retry_initial_s * (2 ** min(attempt, 30))
        )
        return self._rng.uniform(ceiling / 2, ceiling)

    def _note_failure(self, exc: BaseException, attempt: int, *, what: str) -> None:
        self.counters.retries += 1 if what == "insert" else 0
        self.counters.last_error = f"{type(exc).__name__}: {exc}"
        if self.counters.store_up or attempt == 0:
            self._log.warning("store_unavailable", action=what, error=self.counters.last_error)
        elif attempt % 20 == 0:
            self._log.warning(
                "store_still_unavailable",
                action=what,
                attempts=attempt + 1,
                error=self.counters.last_error,
            )
        self.counters.store_up = False

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            self._serve_queries()
            if self._stop_at is not None:
                deadline = min(deadline, self._stop_at)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if self._wake.wait(remaining):
                self._wake.clear()

    def _serve_queries(self) -> None:
        if self.mailbox.waiting():
            with engine_priority():  # a report can keep the engine busy for a while
                self.mailbox.serve(self._store, self.counters.last_error)

    def _close_store(self) -> None:
        assert self._store is not None
        try:
            self._store.close()
        except Exception as exc:
            self._log.warning("store_close_failed", error=str(exc))
