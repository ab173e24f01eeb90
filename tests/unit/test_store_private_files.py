"""Spool, dead-letter, state and lock files are owner-only whatever the umask."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stratum_proxy.store.backend import open_store
from stratum_proxy.store.deadletter import DEADLETTER_FILE
from stratum_proxy.store.faults import FATAL, OK, FaultyStore, synthetic_record
from stratum_proxy.store.lock import acquire_lock, lock_path
from stratum_proxy.store.pipeline import SharePipeline
from stratum_proxy.store.private_files import open_private, private_dir
from stratum_proxy.store.settings import StoreSettings
from stratum_proxy.store.spool import Spool
from stratum_proxy.store.spool_state import LOCK_FILE, STATE_FILE, SpoolState, save_state


@pytest.fixture
def open_umask() -> Iterator[None]:
    """umask 0: whatever the code asks for is what the file gets, unless it forces the mode."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def open_spool(path: Path) -> Spool:
    spool = Spool(path, segment_bytes=64 * 1024, max_bytes=1 << 30)
    spool.open()
    return spool


def test_spool_directory_segments_state_and_lock_are_owner_only(
    tmp_path: Path, open_umask: None
) -> None:
    spool_dir = tmp_path / "new" / "spool"
    spool = open_spool(spool_dir)
    spool.write([(seq, synthetic_record(seq, ts=1.0), False) for seq in range(1, 1001)], sync=True)
    save_state(spool_dir, SpoolState(acked_seq=0), sync=True)
    segments = spool.segments()
    spool.close()
    assert len(segments) > 1  # rotated: every segment, not only the first
    assert mode(tmp_path / "new") == 0o700  # a parent the spool created is ours too
    assert mode(spool_dir) == 0o700
    assert {mode(seg.path) for seg in segments} == {0o600}
    assert mode(spool_dir / STATE_FILE) == 0o600
    assert mode(spool_dir / LOCK_FILE) == 0o600


def test_existing_parent_directories_keep_their_mode(tmp_path: Path, open_umask: None) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    private_dir(shared / "spool")
    assert mode(shared) == 0o755
    assert mode(shared / "spool") == 0o700


def test_files_of_an_older_release_are_tightened(tmp_path: Path, open_umask: None) -> None:
    spool_dir = tmp_path / "spool"
    first = open_spool(spool_dir)
    first.write([(1, synthetic_record(1, ts=1.0), False)], sync=True)
    segment = first.segments()[0].path
    first.close()
    save_state(spool_dir, SpoolState(acked_seq=0), sync=True)
    (spool_dir / DEADLETTER_FILE).write_bytes(b"")
    old = [spool_dir, segment, spool_dir / STATE_FILE, spool_dir / DEADLETTER_FILE]
    old.append(spool_dir / LOCK_FILE)
    for path in old:
        path.chmod(0o755 if path.is_dir() else 0o644)
    open_spool(spool_dir).close()
    assert mode(spool_dir) == 0o700
    assert {mode(path) for path in old[1:]} == {0o600}


def test_open_private_tightens_and_keeps_contents(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "kept"
    path.write_bytes(b"abc")
    path.chmod(0o666)
    fd = open_private(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, b"d")
    finally:
        os.close(fd)
    assert mode(path) == 0o600
    assert path.read_bytes() == b"abcd"


def test_store_lock_and_its_directory_are_owner_only(tmp_path: Path, open_umask: None) -> None:
    data_dir = tmp_path / "db"
    lock = acquire_lock(data_dir)
    try:
        assert mode(data_dir) == 0o700
        assert mode(lock_path(data_dir)) == 0o600
    finally:
        lock.release()
    lock_path(data_dir).chmod(0o644)
    acquire_lock(data_dir).release()
    assert mode(lock_path(data_dir)) == 0o600


def test_pipeline_with_embedded_store_and_dead_letters_is_owner_only(
    tmp_path: Path, open_umask: None
) -> None:
    pytest.importorskip("chdb")
    settings = StoreSettings(
        url=f"chdb://{tmp_path}/data/db",
        spool_dir=tmp_path / "data" / "spool",
        batch_rows=100,
        linger_s=0.05,
        fsync_interval_s=0.05,
        retry_initial_s=0.02,
        retry_max_s=0.1,
        shutdown_timeout_s=5.0,
    )
    stores: list[FaultyStore] = []

    def factory() -> FaultyStore:
        stores.append(FaultyStore(open_store(settings.url, settings), FATAL))
        return stores[-1]

    pipeline = SharePipeline(settings, proxy_id="t", store_factory=factory)
    pipeline.start()
    try:
        for i in range(200):
            pipeline.put(synthetic_record(i))
        wait_for(lambda: pipeline.statistics()["rows_dead_lettered"] == 200)
        stores[0].mode = OK
        data_dir = tmp_path / "data" / "db"
        assert mode(tmp_path / "data") == 0o700
        assert mode(data_dir) == 0o700  # the engine's own files sit inside it
        assert mode(lock_path(data_dir)) == 0o600
    finally:
        pipeline.close()
    spool_dir = tmp_path / "data" / "spool"
    assert mode(spool_dir) == 0o700
    assert mode(spool_dir / DEADLETTER_FILE) == 0o600
    assert mode(spool_dir / STATE_FILE) == 0o600
    assert mode(spool_dir / LOCK_FILE) == 0o600
