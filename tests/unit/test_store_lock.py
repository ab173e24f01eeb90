"""One process per embedded store directory, and a message that says who holds it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from stratum_proxy.errors import StoreBusyError
from stratum_proxy.store.backend import open_store
from stratum_proxy.store.lock import LockHolder, acquire_lock, lock_path, read_lock_holder
from stratum_proxy.store.settings import StoreSettings

_HOLDER = """
import sys, time
from pathlib import Path
from stratum_proxy.store.lock import acquire_lock
lock = acquire_lock(Path(sys.argv[1]), sys.argv[2] or None)
print("locked", flush=True)
time.sleep(60)
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """A second process holding tmp_path/db with API address 127.0.0.1:8081."""
    proc = _spawn(tmp_path / "db", "127.0.0.1:8081")
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def _spawn(path: Path, api: str) -> subprocess.Popen[str]:
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path), api],
        stdout=subprocess.PIPE,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_unlocked_directory_has_no_holder(tmp_path: Path) -> None:
    assert read_lock_holder(tmp_path) is None


def test_lock_records_pid_and_api_and_release_frees_it(tmp_path: Path) -> None:
    lock = acquire_lock(tmp_path, "127.0.0.1:9999")
    try:
        assert read_lock_holder(tmp_path) == LockHolder(
            pid=os.getpid(), api_address="127.0.0.1:9999"
        )
        with pytest.raises(StoreBusyError):
            acquire_lock(tmp_path)
    finally:
        lock.release()
    assert read_lock_holder(tmp_path) is None
    acquire_lock(tmp_path).release()


def test_second_process_is_told_who_holds_the_store(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    data = tmp_path / "db"
    assert read_lock_holder(data) == LockHolder(pid=holder.pid, api_address="127.0.0.1:8081")
    with pytest.raises(StoreBusyError) as info:
        open_store(f"chdb://{data}", StoreSettings())
    message = str(info.value)
    assert f"store {data} is held by stratum-proxy pid {holder.pid}" in message
    assert "API at 127.0.0.1:8081" in message
    assert "http://127.0.0.1:8081/api/query" in message


def test_holder_without_api_gets_a_different_hint(tmp_path: Path) -> None:
    proc = _spawn(tmp_path, "")
    try:
        with pytest.raises(StoreBusyError) as info:
            acquire_lock(tmp_path)
        assert f"pid {proc.pid}" in str(info.value)
        assert "no local API" in str(info.value)
    finally:
        proc.kill()
        proc.wait()


def test_a_killed_holder_leaves_no_lock_behind(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    data = tmp_path / "db"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    # The file still names the dead process; only the flock counts.
    assert b"pid" in lock_path(data).read_bytes()
    assert read_lock_holder(data) is None
    store = open_store(f"chdb://{data}", StoreSettings())
    try:
        assert store.query("SELECT 1") == b"1\n"
    finally:
        store.close()


def test_damaged_lock_file_still_reports_busy(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    data = tmp_path / "db"
    lock_path(data).write_bytes(b"\x00garbage")
    assert read_lock_holder(data) == LockHolder(pid=0, api_address=None)
    with pytest.raises(StoreBusyError) as info:
        acquire_lock(data)
    assert "held by another process" in str(info.value)


def test_store_close_releases_the_lock(tmp_path: Path) -> None:
    store = open_store(f"chdb://{tmp_path}", StoreSettings(), api_address="127.0.0.1:1234")
    assert read_lock_holder(tmp_path) == LockHolder(pid=os.getpid(), api_address="127.0.0.1:1234")
    store.close()
    store.close()  # idempotent
    assert read_lock_holder(tmp_path) is None
