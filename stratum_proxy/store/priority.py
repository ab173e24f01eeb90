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


_TASKS = "/proc/self/task"


def thread_ids() -> set[int]:
    """Native ids of this process's threads now (empty where /proc is missing)."""
    try:
        return {int(name) for name in os.listdir(_TASKS)}
    except OSError:
        return set()


def lower_engine_threads(known: set[int], nice: int = BACKGROUND_NICE) -> int:
    """Lower every thread the embedded engine started; returns how many were changed.

    Not all of them inherit the writer's nice value: the engine starts some
    pools from threads of its own (merges, memory tracking at nice -20), and
    those then compete with the event loop at full weight on a busy core.  An
    engine thread is one not in ``known`` (the threads that existed before the
    engine was loaded) that the engine renamed; Python threads keep the
    process's own name, so the proxy's threads are never touched.
    """
    setpriority = getattr(os, "setpriority", None)
    if setpriority is None:
        return 0
    try:
        with open("/proc/self/comm") as f:
            own_name = f.read()
    except OSError:
        return 0
    changed = 0
    for tid in thread_ids() - known:
        try:
            with open(f"{_TASKS}/{tid}/comm") as f:
                if f.read() == own_name:
                    continue
            current = os.getpriority(os.PRIO_PROCESS, tid)
            if current < nice:
                setpriority(os.PRIO_PROCESS, tid, nice)
                changed += 1
        except OSError:
            continue  # the thread ended meanwhile
    return changed
