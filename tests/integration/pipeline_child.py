"""A child process for the SIGKILL/SIGTERM pipeline tests (not a test module).

    python pipeline_child.py SPOOL_DIR STORE_URL ROWS MODE

Puts ROWS synthetic rows (nonce = index) at a steady pace and prints
``progress <rows_put> <durable_index>`` lines, where durable_index is the
highest index known fsynced in the spool.  On SIGTERM it closes the pipeline
and prints ``closed <rows_put>`` then exits 0.  MODE ``kill_after_ack=N``
SIGKILLs itself right after the store acknowledged its N-th batch (before the
pipeline records the acknowledgement or trims the spool).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

from stratum_proxy.logging import configure_logging
from stratum_proxy.store.backend import open_store
from stratum_proxy.store.faults import FaultyStore, synthetic_record
from stratum_proxy.store.pipeline import SharePipeline
from stratum_proxy.store.settings import StoreSettings


def main() -> int:
    configure_logging("warning", "json", stream=sys.stderr)  # stdout carries progress only
    spool_dir, url, rows, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    settings = StoreSettings(
        url=url,
        spool_dir=Path(spool_dir),
        batch_rows=500,
        linger_s=0.05,
        fsync_interval_s=0.05,
        retry_initial_s=0.05,
        retry_max_s=0.2,
        shutdown_timeout_s=5.0,
    )

    def factory() -> FaultyStore:
        store = FaultyStore(open_store(url, settings))
        if mode.startswith("kill_after_ack="):
            limit = int(mode.split("=")[1])
            store.after_insert = lambda n: (
                os.kill(os.getpid(), signal.SIGKILL) if n >= limit else None
            )
        return store

    pipeline = SharePipeline(settings, proxy_id="child", store_factory=factory)
    pipeline.start()
    first_seq = int(pipeline.statistics()["next_seq"] or 0)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    put = 0
    while put < rows and not stop.is_set():
        for _ in range(100):
            pipeline.put(synthetic_record(put, proxy_id="child"))
            put += 1
        durable = int(pipeline.statistics()["spool_durable_seq"] or 0) - first_seq
        print(f"progress {put} {durable}", flush=True)
        time.sleep(0.005)
    while not stop.is_set():
        stop.wait(0.05)
    pipeline.close()
    print(f"closed {put} {pipeline.statistics()['rows_shed']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
