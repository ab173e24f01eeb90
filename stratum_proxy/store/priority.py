"""Background store threads yield the CPU to the event loop.

On Linux a thread has its own nice value, and threads it starts inherit it.
The share writer (and the embedded engine's worker threads it brings up when
it opens the store) and the spool flusher run niced, so that on a busy core
the scheduler prefers the miners' event loop: store work is allowed to fall
behind (rows wait in the queue or the spool), miners' round trips are not.
"""

from __future__ import annotations

import os
import threading

# Nice 10: CFS weight 110 against 1024 for the event loop at nice 0.
BACKGROUND_NICE = 10


def lower_thread_priority(nice: int = BACKGROUND_NICE) -> bool:
    """Lower the calling thread's priority; False where the platform has no per-thread nice."""
    setpriority = getattr(os, "setpriority", None)
    if setpriority is None:
        return False
    try:
        current = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        setpriority(os.PRIO_PROCESS, threading.get_native_id(), max(current, nice))
    except OSError:
        return False
    return True
