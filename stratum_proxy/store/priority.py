"""The embedded engine's work yields the CPU to the event loop.

On Linux a thread has its own nice value, and threads it starts inherit it.
The engine's C++ work (inserts, merges, its worker threads) runs niced, so that
on a busy core the scheduler prefers the miners' event loop: store work may
fall behind (rows wait in the queue or the spool), miners' round trips not.

Python work is *not* niced: it holds the GIL, so it never runs beside the
event loop's Python code anyway, and a niced GIL holder starved by the engine's
threads only makes the event loop wait longer for the GIL (priority
inversion: stalls of several ms were measured that way).  So the writer lowers
its priority only around calls into the engine (``engine_priority``).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator

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


@contextlib.contextmanager
def engine_priority(nice: int = BACKGROUND_NICE) -> Iterator[None]:
    """Run the body niced (threads it starts inherit that), then restore if allowed.

    Raising the priority back needs CAP_SYS_NICE (or RLIMIT_NICE); without it
    the thread simply stays niced, as if the whole thread were background.
    """
    tid = threading.get_native_id()
    try:
        before = os.getpriority(os.PRIO_PROCESS, tid)
    except (AttributeError, OSError):
        yield
        return
    lowered = before < nice and lower_thread_priority(nice)
    try:
        yield
    finally:
        if lowered:
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, tid, before)


def let_event_loop_run() -> None:
    """Give the GIL *and the CPU* away for a moment, between slices of background work.

    The interpreter's switch interval alone is not enough on a busy core: the
    event loop thread, once woken for the GIL, still waits for the scheduler
    to preempt the thread that dropped it, and measured stalls of 3-6 ms
    behind a Python-busy thread (p99 sleep overshoot 3.2 ms; with this call
    between ~0.2 ms slices: 0.3 ms).  A zero sleep releases the GIL in a
    system call, which is where the kernel switches to the waiting thread.
    """
    time.sleep(0)


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
