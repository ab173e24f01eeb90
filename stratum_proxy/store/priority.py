"""The embedded engine's work waits for CPU the event loop does not use.

On Linux a thread has its own scheduling policy and nice value, and threads
it starts inherit them.  The engine's C++ work (inserts, merges, its worker
threads) runs under ``SCHED_IDLE``: it gets a core only when nothing else
wants it, so on a busy core the miners' event loop always goes first and the
store falls behind instead (rows wait in the queue and the spool; they are
journaled already, so nothing is at risk).  Nice 10 is not enough: CFS still
gives a nice-10 thread about a tenth of a contended core, and it takes more
than that right after each wakeup.  Measured in ``scripts/bench``'s closed
loop (proxy on one core, saturated): 17.7 k shares/s with the engine at nice
10, 28 k with it idle (medians of five runs).

Python work is *not* lowered: it holds the GIL, so it never runs beside the
event loop's Python code anyway, and a lowered GIL holder starved by the
engine's threads only makes the event loop wait longer for the GIL (priority
inversion: stalls of several ms were measured that way).  So the writer
lowers itself only around calls into the engine (``engine_priority``), and
only to a level it can come back from: leaving ``SCHED_IDLE`` (or lowering
the nice value) needs CAP_SYS_NICE or an RLIMIT_NICE that allows it.  Without
that, the writer nices itself instead and stays niced (as before), and the
engine's own threads still go idle (lowering is always allowed).

The flip side, for operators: a core kept 100 % busy by *another* program
starves the idle engine too.  Rows then wait in the spool (``spool_rows`` in
the metrics) until the core frees up; the spool's disk cap bounds the wait.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator

# Nice 10: CFS weight 110 against 1024 for the event loop at nice 0 (the
# fallback where SCHED_IDLE cannot be left again, and off Linux).
BACKGROUND_NICE = 10
_SCHED_IDLE: int | None = getattr(os, "SCHED_IDLE", None)
_CAP_SYS_NICE = 23  # bit in /proc/self/status CapEff
_may_raise: bool | None = None


def may_raise_priority() -> bool:
    """Whether this process can take back a lowered priority (checked once).

    CAP_SYS_NICE allows it (root, a container's default root); so does an
    RLIMIT_NICE of at least 20 - nice (``ulimit -e``).
    """
    global _may_raise
    if _may_raise is None:
        _may_raise = _has_cap_sys_nice() or _rlimit_allows_nice(os.getpriority(os.PRIO_PROCESS, 0))
    return _may_raise


def _has_cap_sys_nice() -> bool:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> _CAP_SYS_NICE & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False


def _rlimit_allows_nice(nice: int) -> bool:
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NICE)[0]
    except (ImportError, AttributeError, OSError, ValueError):
        return False
    return bool(soft == resource.RLIM_INFINITY or soft >= 20 - nice)


def lower_thread_priority(nice: int = BACKGROUND_NICE) -> bool:
    """Nice the calling thread; False where the platform has no per-thread nice."""
    setpriority = getattr(os, "setpriority", None)
    if setpriority is None:
        return False
    try:
        current = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        setpriority(os.PRIO_PROCESS, threading.get_native_id(), max(current, nice))
    except OSError:
        return False
    return True


def _make_idle(tid: int) -> bool:
    """Put a thread under SCHED_IDLE (always allowed: it only lowers priority)."""
    if _SCHED_IDLE is None:
        return False
    try:
        if os.sched_getscheduler(tid) != _SCHED_IDLE:
            os.sched_setscheduler(tid, _SCHED_IDLE, os.sched_param(0))
    except OSError:
        return False
    return True


@contextlib.contextmanager
def engine_priority(nice: int = BACKGROUND_NICE) -> Iterator[None]:
    """Run the body (a call into the engine) idle, or niced, then restore.

    Idle only when the old policy can be restored afterwards (see the module
    docstring); otherwise niced, and then the thread stays niced when it may
    not raise its priority back, as if the whole thread were background.
    Threads the engine starts meanwhile inherit either.
    """
    tid = threading.get_native_id()
    if _SCHED_IDLE is not None and may_raise_priority():
        try:
            policy, param = os.sched_getscheduler(tid), os.sched_getparam(tid)
        except OSError:
            policy = None
        if policy is not None and policy != _SCHED_IDLE and _make_idle(tid):
            try:
                yield
            finally:
                with contextlib.suppress(OSError):
                    os.sched_setscheduler(tid, policy, param)
            return
    with _niced(tid, nice):
        yield


@contextlib.contextmanager
def _niced(tid: int, nice: int) -> Iterator[None]:
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
    """Make every thread the embedded engine started idle; returns how many were changed.

    Not all of them inherit the writer's policy: the engine starts some pools
    from threads of its own (merges, memory tracking at nice -20), and those
    then compete with the event loop at full weight on a busy core.  An
    engine thread is one not in ``known`` (the threads that existed before the
    engine was loaded) that the engine renamed; Python threads keep the
    process's own name, so the proxy's threads are never touched.  Where
    SCHED_IDLE does not exist, they are niced to ``nice`` instead.
    """
    if _SCHED_IDLE is None and getattr(os, "setpriority", None) is None:
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
            if _SCHED_IDLE is not None:
                if os.sched_getscheduler(tid) != _SCHED_IDLE and _make_idle(tid):
                    changed += 1
            elif os.getpriority(os.PRIO_PROCESS, tid) < nice:
                os.setpriority(os.PRIO_PROCESS, tid, nice)
                changed += 1
        except OSError:
            continue  # the thread ended meanwhile
    return changed
