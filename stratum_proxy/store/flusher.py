"""The spool flusher thread: grouped write + fsync of the journal, and a watchdog.

Every ``fsync_interval_s`` it fsyncs the rows the event loop handed over
(``handoff.Handoff``; one fsync for the whole group: this interval is the
crash-loss bound).  Between fsyncs, every ``_WRITE_TICK_S``, it writes what
has gathered once that is at least ``_MIN_WRITE_ROWS`` rows.  Encoding holds
the GIL, and one burst of a whole interval's rows (~6,000 at 30,000 shares/s,
~8 ms of encoding) would stall the event loop that long, straight into
miners' round trips; small steady writes cost a round trip at most one small
chunk's encoding.  After each fsync it runs the pipeline's watch (shed rows,
an insert that does not return, the counters every ``stats_log_interval_s``);
spool write errors it logs itself, at most one line every 10 s.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from stratum_proxy.store.handoff import Handoff

# How often rows gathered since the last write are written (without fsync).
_WRITE_TICK_S = 0.005
# Fewer rows than this wait for the next tick (or the fsync): a chunk's fixed
# costs (header, CRC, a write call) stay small per row.
_MIN_WRITE_ROWS = 32


class SpoolFlusher:
    """Writes the journal in small steps, fsyncs it every ``fsync_interval_s``.

    It only talks to the hand-off (``journal``) and, on each fsync, calls
    ``watch`` (the pipeline's checks: shed rows, a stalled insert, the
    periodic statistics line).
    """

    def __init__(
        self,
        handoff: Handoff,
        *,
        fsync_interval_s: float,
        watch: Callable[[], None],
        warn: Callable[..., Any],
    ) -> None:
        self._handoff = handoff
        self._interval = fsync_interval_s
        self._watch = watch
        self._warn_log = warn
        self._stop = threading.Event()
        self._last_warning = 0.0
        self.thread = threading.Thread(target=self._run, name="spool-flusher", daemon=True)

    def _run(self) -> None:
        # Not niced (see priority.py): its work is short and mostly holds the GIL.
        interval = self._interval
        tick = min(interval, _WRITE_TICK_S)
        next_sync = time.monotonic() + interval
        while not self._stop.wait(tick):
            now = time.monotonic()
            if now >= next_sync:
                self.flush_now()
                self._watch()
                next_sync = time.monotonic() + interval  # a slow fsync does not chain another
            elif self._handoff.buffered() >= _MIN_WRITE_ROWS:
                self.write_now()

    def flush_now(self) -> None:
        """Write and fsync every buffered row."""
        self.write_now(sync=True)

    def write_now(self, *, sync: bool = False) -> None:
        """Write the buffered rows; without ``sync`` the next ``flush_now`` makes them durable."""
        try:
            self._handoff.journal(sync=sync)
        except OSError as exc:
            # At most one such line every 10 s: a full disk must not flood the log.
            now = time.monotonic()
            if now - self._last_warning >= 10.0:
                self._last_warning = now
                self._warn_log("spool_write_failed", error=str(exc))

    def stop(self) -> None:
        self._stop.set()
        self.thread.join()
        self.flush_now()
