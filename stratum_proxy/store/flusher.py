"""The spool flusher thread: grouped write + fsync of the journal, and a watchdog.

Every ``fsync_interval_s`` it fsyncs the rows the event loop appended to the
spool's pending buffer (one fsync for the whole group: this interval is the
crash-loss bound).  Between fsyncs, every ``_WRITE_TICK_S``, it writes what
has gathered once that is at least ``_MIN_WRITE_ROWS`` rows.  Encoding holds
the GIL, and one burst of a whole interval's rows (~6,000 at 30,000 shares/s,
~8 ms of encoding) would stall the event loop that long, straight into
miners' round trips; small steady writes cost a round trip at most one small
chunk's encoding.  It also logs, rate-limited, what must not go unnoticed:
shed rows, spool write errors, an insert that does not return, and the
pipeline counters every ``stats_log_interval_s``.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stratum_proxy.store.pipeline import SharePipeline

# How often rows gathered since the last write are written (without fsync).
_WRITE_TICK_S = 0.005
# Fewer rows than this wait for the next tick (or the fsync): a chunk's fixed
# costs (header, CRC, a write call) stay small per row.
_MIN_WRITE_ROWS = 32


class SpoolFlusher:
    """Writes the spool in small steps, fsyncs it every ``fsync_interval_s``; watches the writer."""

    def __init__(self, pipeline: SharePipeline) -> None:
        self.pipeline = pipeline
        self._stop = threading.Event()
        self._last_warning = 0.0
        self._last_stats = time.monotonic()
        self._reported_shed = 0
        self._stall_reported = False
        self.thread = threading.Thread(target=self._run, name="spool-flusher", daemon=True)

    def _run(self) -> None:
        # Not niced (see priority.py): its work is short and mostly holds the GIL.
        interval = self.pipeline.settings.fsync_interval_s
        tick = min(interval, _WRITE_TICK_S)
        pending = self.pipeline.spool.pending
        next_sync = time.monotonic() + interval
        while not self._stop.wait(tick):
            now = time.monotonic()
            if now >= next_sync:
                self.flush_now()
                self._watch()
                next_sync = time.monotonic() + interval  # a slow fsync does not chain another
            elif len(pending) >= _MIN_WRITE_ROWS:
                self.write_now()

    def flush_now(self) -> None:
        """Write and fsync every pending row."""
        self.write_now(sync=True)

    def write_now(self, *, sync: bool = False) -> None:
        """Write the pending rows; without ``sync`` the next ``flush_now`` makes them durable."""
        try:
            self.pipeline.spool.write_pending(sync=sync)
        except OSError as exc:
            self._warn("spool_write_failed", error=str(exc), spool_dir=str(self.pipeline.spool_dir))

    def stop(self) -> None:
        self._stop.set()
        self.thread.join()
        self.flush_now()

    def _watch(self) -> None:
        stats = self.pipeline.statistics()
        shed = int(stats["rows_shed"] or 0)
        if shed > self._reported_shed:
            self._warn(
                "rows_shed",
                rows=shed - self._reported_shed,
                total=shed,
                reason="memory queue full and spool at its disk cap",
            )
            self._reported_shed = shed
        running = stats["insert_running_s"]
        stall = self.pipeline.settings.stall_warning_s
        if running is not None and running > stall and not self._stall_reported:
            self.pipeline.log.warning("store_insert_stalled", seconds=round(running, 1))
            self._stall_reported = True
        elif running is None:
            self._stall_reported = False
        now = time.monotonic()
        if now - self._last_stats >= self.pipeline.settings.stats_log_interval_s:
            self._last_stats = now
            self.pipeline.log.info("share_pipeline", **stats)

    def _warn(self, event: str, **fields: Any) -> None:
        # At most one such line every 10 s: a full disk must not flood the log.
        now = time.monotonic()
        if now - self._last_warning >= 10.0:
            self._last_warning = now
            self.pipeline.log.warning(event, **fields)
