"""SharePipeline: the proxy hands it records; it gets them into the store, durably.

    event loop ── put() ──▶ memory queue (bounded) ──────────────┐
                  │                                           writer thread ──▶ store
                  └──────▶ journal buffer ─▶ flusher thread ─▶ spool segments ─┘
                           (every row)       (grouped fsync)

Both buffers belong to the ``Handoff`` (``handoff.py``), the one owner of the
rows between the event loop and the threads; each side calls its methods.
``put`` is O(1), takes no lock and never raises: a seq, two deque appends.
Every row is journaled; the queue is only a fast path, so when it is full the
row is simply not queued (the writer reads it back from the spool), and only
when the spool is also at its disk cap is a row shed, counted and logged.

Loss bounds (honest): a clean ``close`` loses nothing (rows are in the store or
fsynced in the spool; only rows that found both the queue full *and* the spool
at its cap are shed, counted).  A SIGKILL or power cut loses at most the rows
received since the last grouped fsync (``fsync_interval_s``) that had not yet
reached the store; a restart logs where the durable journal ended.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import time
from collections.abc import Callable
from typing import Any

import structlog

from stratum_proxy.errors import StoreError
from stratum_proxy.store.flusher import SpoolFlusher
from stratum_proxy.store.handoff import Handoff
from stratum_proxy.store.priority import let_event_loop_run, thread_ids
from stratum_proxy.store.row_source import RowSource
from stratum_proxy.store.settings import StoreSettings, resolve_spool_dir
from stratum_proxy.store.spool import Recovery, Spool
from stratum_proxy.store.spool_reader import CorruptionReport, SpoolReader
from stratum_proxy.store.spool_state import save_state
from stratum_proxy.store.writer import Encode, StoreLike, StoreWriter, WriterConfig, row_encode


class SharePipeline:
    def __init__(
        self,
        settings: StoreSettings,
        *,
        proxy_id: str,
        logger: Any = None,
        store_factory: Callable[[], StoreLike] | None = None,
        api_address: str | None = None,
        encode: Encode | None = None,
    ) -> None:
        self.settings = settings
        self.proxy_id = proxy_id
        self.api_address = api_address
        self.spool_dir = resolve_spool_dir(settings)
        self.log = logger if logger is not None else structlog.get_logger("stratum_proxy.store")
        self._store_factory = store_factory or self._default_store_factory
        self._encode = encode
        self.rows_corrupt = 0
        # The flusher's watch (``_watch``): what was reported, and when.
        self._reported_shed = 0
        self._shed_warned_at = -10.0
        self._stall_reported = False
        self._stats_logged_at = time.monotonic()
        segment_bytes = min(
            settings.spool_segment_bytes, max(64 * 1024, settings.spool_max_bytes // 4)
        )
        self.spool = Spool(
            self.spool_dir, segment_bytes=segment_bytes, max_bytes=settings.spool_max_bytes
        )
        # The one owner of the rows between the event loop and the threads.
        self.handoff = Handoff(
            self.spool, queue_size=settings.queue_size, buffer_rows=settings.spool_buffer_rows
        )
        self.put = self.handoff.put  # the event loop's only call: bound once, no extra frame
        self._writer: StoreWriter | None = None
        self._flusher: SpoolFlusher | None = None

    @property
    def display_url(self) -> str:
        from stratum_proxy.store.url import redact_url

        return redact_url(self.settings.url)

    # -- start -----------------------------------------------------------------------

    def start(self) -> None:
        """Open the spool (StoreBusyError if another process uses it), start the threads.

        The store is opened by the writer thread, retrying while it is down.
        """
        known_threads = thread_ids()  # before the engine can start any of its own
        _preload_engine(self.settings.url)
        recovery = self.spool.open()
        state = recovery.state
        inflight_last = state.inflight.last_seq if state.inflight else 0
        floor = max(state.seq_hwm, recovery.last_seq, state.acked_seq, inflight_last)
        # Seqs never repeat, even after a crash or a deleted spool: a repeated
        # seq would repeat a dedup token, and ClickHouse would drop the new rows.
        self.handoff.next_seq = max(floor + 1, time.time_ns() // 1000)
        self._report_recovery(recovery)
        state.proxy_id, state.clean = self.proxy_id, False
        save_state(self.spool_dir, state, sync=True)
        reader = SpoolReader(
            self.spool_dir,
            lambda: [(s.first_seq, s.size) for s in self.spool.segments()],
            self._on_corruption,
            self.spool.note_rows,
        )
        source = RowSource(self.handoff, reader, next_seq=state.acked_seq + 1)
        cfg = self.settings
        self._writer = StoreWriter(
            config=WriterConfig(
                proxy_id=self.proxy_id,
                batch_rows=cfg.batch_rows,
                linger_s=cfg.linger_s,
                retry_initial_s=cfg.retry_initial_s,
                retry_max_s=cfg.retry_max_s,
            ),
            spool=self.spool,
            handoff=self.handoff,
            source=source,
            state=state,
            store_factory=self._store_factory,
            encode=row_encode(self._encode) if self._encode else _default_encode,
            log=self.log,
        )
        self._writer.known_threads = known_threads
        self._flusher = SpoolFlusher(
            self.handoff,
            fsync_interval_s=cfg.fsync_interval_s,
            watch=self._watch,
            warn=lambda event, **fields: self.log.warning(
                event, spool_dir=str(self.spool_dir), **fields
            ),
        )
        self._flusher.thread.start()
        self._writer.thread.start()

    def _report_recovery(self, recovery: Recovery) -> None:
        if recovery.segments == 0:
            return
        unclean = not recovery.state.clean
        log = self.log.warning if unclean or recovery.torn_bytes else self.log.info
        log(
            "spool_replay" if not unclean else "spool_replay_after_crash",
            spool_dir=str(self.spool_dir),
            segments=recovery.segments,
            bytes=recovery.bytes,
            rows_estimate=recovery.rows_estimate,
            acked_seq=recovery.state.acked_seq,
            durable_through_seq=recovery.last_seq,
            torn_bytes=recovery.torn_bytes,
            note=(
                "previous run did not stop cleanly: rows received after the last durable "
                f"seq (at most {self.settings.fsync_interval_s}s of traffic) and not yet in "
                "the store were lost"
            )
            if unclean
            else None,
        )

    def _watch(self) -> None:
        """After each fsync (flusher thread): what must not go unnoticed, rate-limited."""
        stats = self.statistics()
        shed = int(stats["rows_shed"] or 0)
        now = time.monotonic()
        if shed > self._reported_shed and now - self._shed_warned_at >= 10.0:
            self._shed_warned_at = now
            self.log.warning(
                "rows_shed",
                rows=shed - self._reported_shed,
                total=shed,
                reason="memory queue full and spool at its disk cap",
            )
            self._reported_shed = shed
        running = stats["insert_running_s"]
        if running is not None and running > self.settings.stall_warning_s:
            if not self._stall_reported:
                self.log.warning("store_insert_stalled", seconds=round(running, 1))
                self._stall_reported = True
        elif running is None:
            self._stall_reported = False
        if now - self._stats_logged_at >= self.settings.stats_log_interval_s:
            self._stats_logged_at = now
            self.log.info("share_pipeline", **stats)

    def _on_corruption(self, report: CorruptionReport) -> None:
        self.rows_corrupt += report.rows_lost
        report.log(self.log)

    def _default_store_factory(self) -> StoreLike:
        from stratum_proxy.store.backend import open_store

        return open_store(self.settings.url, self.settings, api_address=self.api_address)

    # -- queries, statistics, stop -----------------------------------------------------------

    def query(self, sql: str, timeout_s: float = 30.0) -> bytes:
        """Run SQL on the store from the writer thread (it owns the client)."""
        writer = self._writer
        if writer is None or not writer.thread.is_alive():
            raise StoreError("the share pipeline is not running", retryable=True)
        future = writer.submit_query(sql)
        try:
            return future.result(timeout=timeout_s)
        except TimeoutError:
            future.cancel()
            raise StoreError(
                f"query timed out after {timeout_s}s: the store writer is busy "
                f"({writer.counters.last_error or 'inserting'})",
                retryable=True,
            ) from None

    def statistics(self) -> dict[str, int | float | None]:
        writer = self._writer
        counters = writer.counters if writer is not None else None
        acked = writer.state.acked_seq if writer is not None else 0
        spool = self.spool
        started = counters.insert_started if counters else None
        handoff = self.handoff
        return {
            "rows_put": handoff.rows_put,
            "next_seq": handoff.next_seq,
            **handoff.snapshot(),
            "spool_bytes": spool.bytes_on_disk,
            "spool_rows": spool.unacked_rows(acked),
            "spool_durable_seq": spool.durable_seq,
            "batches_written": counters.batches_written if counters else 0,
            "rows_written": counters.rows_written if counters else 0,
            "retries": counters.retries if counters else 0,
            "rows_shed": handoff.rows_shed + spool.rows_shed + spool.rows_unencodable,
            "rows_corrupt": self.rows_corrupt,
            "rows_dead_lettered": counters.rows_dead_lettered if counters else 0,
            "last_write_ts": counters.last_write_ts if counters else None,
            "last_dead_letter_ts": counters.last_dead_letter_ts if counters else None,
            "store_up": int(counters.store_up) if counters else 0,
            "insert_running_s": time.monotonic() - started if started is not None else None,
        }

    def close(self, timeout_s: float | None = None) -> None:
        """Clean stop: every row ends in the store or fsynced in the spool."""
        if self.handoff.closed:
            return
        self.handoff.closed = True
        timeout = self.settings.shutdown_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout
        writer, flusher = self._writer, self._flusher
        if writer is None or flusher is None:
            return
        flusher.flush_now()  # durable first, then try the store
        # The writer gives up a little earlier so that it is seen to stop in time.
        writer.request_stop(deadline - min(0.5, timeout / 4))
        writer.thread.join(max(0.0, deadline - time.monotonic()))
        if writer.thread.is_alive():
            writer.abandoned = True
            self.log.warning("store_writer_did_not_stop", note="rows are safe in the spool")
        flusher.stop()
        self._finish(writer)

    def wait_writer_done(self, timeout_s: float) -> bool:
        """After ``close``: whether the writer thread has ended, waiting at most ``timeout_s``.

        A stop gives up on a writer stuck in a store call; that call goes on in the
        background, and its thread still uses the store (the embedded engine) until
        it ends.  Waiting here before the data directory goes away, or before the
        process exits, lets it end cleanly.
        """
        writer = self._writer
        if writer is None:
            return True
        writer.thread.join(timeout_s)
        return not writer.thread.is_alive()

    def _finish(self, writer: StoreWriter) -> None:
        spool, state = self.spool, writer.state
        lost = self.handoff.lost_after(state.acked_seq)
        if lost:
            spool.rows_shed += len(lost)
            self.log.error(
                "rows_lost_on_stop",
                rows=len(lost),
                reason="spool at its disk cap and store unavailable",
            )
        state.seq_hwm, state.clean = self.handoff.next_seq - 1, True
        save_state(self.spool_dir, state, sync=True)
        spool.close(state.acked_seq)
        self.log.info("share_pipeline_closed", **self.statistics())


_heap_frozen = False


def _preload_engine(url: str) -> None:
    # Loading chdb's large shared library holds the GIL for ~100 ms: do it now,
    # before miners connect, rather than from the writer thread mid-traffic.
    global _heap_frozen
    if not url.startswith("chdb:"):
        return
    with contextlib.suppress(ImportError):
        importlib.import_module("chdb.session")
    if not _heap_frozen:
        # chdb brings numpy and pyarrow along: tens of thousands of objects
        # that live as long as the process.  Out of the collector's view
        # (once per process), a full collection no longer walks them all
        # while miners wait on the GIL (40-60 ms pauses were measured).
        _heap_frozen = True
        gc.collect()
        gc.freeze()


def _default_encode(records: Any, token: str) -> Any:
    from stratum_proxy.store.backend import encode_batch

    return encode_batch(records, token, pause=let_event_loop_run)
