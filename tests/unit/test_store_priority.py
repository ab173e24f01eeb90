"""Store threads: the engine's work runs niced, Python work does not stay niced."""

from __future__ import annotations

import os
import threading
import time

import pytest

from stratum_proxy.store.priority import (
    BACKGROUND_NICE,
    engine_priority,
    lower_engine_threads,
    thread_ids,
)


def own_nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="no per-thread nice here")
def test_engine_priority_nices_the_body_and_restores_when_allowed() -> None:
    seen: dict[str, int] = {}

    def run() -> None:
        seen["before"] = own_nice()
        with engine_priority():
            seen["inside"] = own_nice()
        seen["after"] = own_nice()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert seen["inside"] == max(seen["before"], BACKGROUND_NICE)
    if os.geteuid() == 0:  # raising the priority back needs the privilege
        assert seen["after"] == seen["before"]


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
        before = os.getpriority(os.PRIO_PROCESS, tid[0])
        lower_engine_threads(known)  # the new thread keeps the process's name
        assert os.getpriority(os.PRIO_PROCESS, tid[0]) == before
    finally:
        stop.set()
        thread.join()
