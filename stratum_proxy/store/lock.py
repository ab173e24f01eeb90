"""One process per embedded store directory.

The embedded engine must not be opened by two processes at once, so the
process that opens a ``chdb://`` path holds an exclusive ``flock`` on
``<path>/stratum-proxy.lock``.  The file also says who holds it (pid, and the
address of its local HTTP API when it has one) so that a second process can
explain the situation, and ``stratum-proxy query`` can send the query to the
running daemon instead.  The kernel drops the lock when the holder dies, so a
stale file left by a crash never blocks anyone: only the flock counts.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path

from stratum_proxy.errors import StoreBusyError
from stratum_proxy.store.private_files import open_private, private_dir

LOCK_NAME = "stratum-proxy.lock"
# The holder's description is a short JSON object; anything longer is junk.
_MAX_LOCK_BYTES = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class LockHolder:
    pid: int
    api_address: str | None


class StoreLock:
    """An acquired lock; ``release`` (or process exit) frees it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            # Clear the holder first so a reader never sees our pid without the lock.
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None


def lock_path(data_dir: Path) -> Path:
    return data_dir / LOCK_NAME


def acquire_lock(data_dir: Path, api_address: str | None = None) -> StoreLock:
    """Lock ``data_dir`` for this process or raise StoreBusyError naming the holder."""
    private_dir(data_dir)  # also the embedded engine's data directory: owner-only
    path = lock_path(data_dir)
    fd = open_private(path, os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreBusyError(busy_message(data_dir, read_lock_holder(data_dir))) from None
    except BaseException:
        os.close(fd)
        raise
    info = json.dumps({"pid": os.getpid(), "api_address": api_address}).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, info, 0)
    return StoreLock(path, fd)


def read_lock_holder(data_dir: Path) -> LockHolder | None:
    """Who holds ``data_dir`` right now, or None when nobody does."""
    path = lock_path(data_dir)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            # A shared lock we can take means no exclusive holder.
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _parse_holder(os.pread(fd, _MAX_LOCK_BYTES, 0))
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _parse_holder(data: bytes) -> LockHolder:
    # The holder writes its description right after locking; a reader racing
    # that write, or a damaged file, still learns that the store is held.
    try:
        info = json.loads(data)
        pid = int(info["pid"])
        api = info.get("api_address")
        return LockHolder(pid=pid, api_address=str(api) if api else None)
    except (ValueError, KeyError, TypeError):
        return LockHolder(pid=0, api_address=None)


def busy_message(data_dir: Path, holder: LockHolder | None) -> str:
    who = f"stratum-proxy pid {holder.pid}" if holder and holder.pid else "another process"
    if holder and holder.api_address:
        return (
            f"store {data_dir} is held by {who} (API at {holder.api_address}); stop it, "
            f"or run a read-only query through it with POST http://{holder.api_address}/api/query "
            "(stratum-proxy query does this by itself when it finds the lock, sending the "
            "api.token of the settings)"
        )
    return (
        f"store {data_dir} is held by {who}, which has no local API to forward queries to; "
        "stop it first, or enable its API ([api] listen) to query while it runs"
    )
