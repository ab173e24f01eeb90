"""Store threads: the engine's work runs idle (or niced), Python work goes back to normal."""

from __future__ import annotations

import os
import threading
import time

import pytest

from stratum_proxy.store.priority import (
    BACKGROUND_NICE,
    engine_priority,
    lower_engine_threads,
    may_raise_priority,
    thread_ids,
)

HAS_IDLE = hasattr(os, "SCHED_IDLE")


def own_nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def policy_and_nice() -> tuple[int, int]:
    tid = threading.get_native_id()
    return os.sched_getscheduler(tid), os.getpriority(os.PRIO_PROCESS, tid)


@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="no per-thread nice here")
def test_engine_priority_lowers_the_body_and_restores_when_allowed() -> None:
    seen: dict[str, tuple[int, int]] = {}

    def run() -> None:
        seen["before"] = policy_and_nice()
        with engine_priority():
            seen["inside"] = policy_and_nice()
        seen["after"] = policy_and_nice()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    policy, nice = seen["before"]
    if HAS_IDLE and may_raise_priority():
        assert seen["inside"] == (os.SCHED_IDLE, nice)
    else:
        assert seen["inside"] == (policy, max(nice, BACKGROUND_NICE))
    if may_raise_priority():  # going back needs the privilege
        assert seen["after"] == seen["before"]


@pytest.mark.skipif(not HAS_IDLE, reason="no SCHED_IDLE here")
def test_engine_threads_go_idle() -> None:
    """A thread the engine started (it renamed itself) is made idle; the count says so."""
    known = thread_ids()
    stop = threading.Event()
    tid: list[int] = []

    def engine_like() -> None:
        tid.append(threading.get_native_id())
        with open(f"/proc/self/task/{tid[0]}/comm", "w") as f:
            f.write("MergeMutate")
        tid.append(0)  # renamed
        stop.wait()

    thread = threading.Thread(target=engine_like)
    thread.start()
    try:
        while len(tid) < 2:
            time.sleep(0.001)
        assert os.sched_getscheduler(tid[0]) != os.SCHED_IDLE
        assert lower_engine_threads(known) == 1
        assert os.sched_getscheduler(tid[0]) == os.SCHED_IDLE
        assert lower_engine_threads(known) == 0  # already idle: nothing to change
    finally:
        stop.set()
        thread.join()


@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="no per-thread nice here")
def test_python_threads_are_not_taken_for_engine_threads() -> None:
    known = thread_ids()
    stop = threading.Event()
    tid: list[int] = []
    thread = threading.Thread(target=lambda: (tid.append(threading.get_native_id()), stop.wait()))
    thread.start()
    try:
        while not tid:
            time.sleep(0.001)
        before = (os.sched_getscheduler(tid[0]), os.getpriority(os.PRIO_PROCESS, tid[0]))
        lower_engine_threads(known)  # the new thread keeps the process's name
        assert (os.sched_getscheduler(tid[0]), os.getpriority(os.PRIO_PROCESS, tid[0])) == before
    finally:
        stop.set()
        thread.join()


@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="no per-thread nice here")
def test_without_the_privilege_to_come_back_the_body_is_niced_not_idle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import stratum_proxy.store.priority as priority

    monkeypatch.setattr(priority, "_may_raise", False)
    seen: dict[str, tuple[int, int]] = {}

    def run() -> None:
        seen["before"] = policy_and_nice()
        with engine_priority():
            seen["inside"] = policy_and_nice()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    policy, nice = seen["before"]
    assert seen["inside"] == (policy, max(nice, BACKGROUND_NICE))
