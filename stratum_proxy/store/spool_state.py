"""The spool directory's small persistent state and its exclusive lock.

``state.json`` says how far the store has acknowledged the spool (``acked_seq``:
every row with a seq at or below it is in the store or the dead-letter file),
which batch was being inserted (``inflight``: its seq range and dedup token, so a
restart resends exactly that batch and ClickHouse drops it if it had arrived),
and whether the last run stopped cleanly.  It is replaced atomically (write,
fsync, rename, fsync the directory) so a crash leaves the old or the new file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from stratum_proxy.errors import StoreBusyError, StoreError
from stratum_proxy.store.private_files import open_private, private_dir

STATE_FILE = "state.json"
LOCK_FILE = "spool.lock"


@dataclass(frozen=True, slots=True, kw_only=True)
class Inflight:
    """A batch handed to the store whose acknowledgement was not yet recorded."""

    first_seq: int
    last_seq: int
    token: str


@dataclass(slots=True, kw_only=True)
class SpoolState:
    proxy_id: str = ""
    acked_seq: int = 0
    inflight: Inflight | None = None
    seq_hwm: int = 0  # the highest seq handed out, written on a clean stop
    clean: bool = True


def load_state(directory: Path) -> SpoolState:
    """The saved state, or a fresh one; StoreError when the file is unreadable."""
    path = directory / STATE_FILE
    try:
        raw = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return SpoolState()
    except (OSError, orjson.JSONDecodeError) as exc:
        raise StoreError(
            f"spool state {path} is unreadable ({exc}); move it away to replay the whole spool",
            retryable=False,
        ) from None
    inflight = raw.get("inflight")
    return SpoolState(
        proxy_id=str(raw.get("proxy_id", "")),
        acked_seq=int(raw.get("acked_seq", 0)),
        inflight=Inflight(**inflight) if inflight else None,
        seq_hwm=int(raw.get("seq_hwm", 0)),
        clean=bool(raw.get("clean", True)),
    )


def save_state(directory: Path, state: SpoolState, *, sync: bool) -> None:
    """Replace the state file atomically; ``sync`` makes it survive a power cut."""
    data = orjson.dumps(asdict(state), option=orjson.OPT_INDENT_2)
    tmp = directory / (STATE_FILE + ".tmp")
    fd = open_private(tmp, os.O_WRONLY | os.O_TRUNC)  # the rename keeps the 0600 mode
    try:
        os.write(fd, data)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, directory / STATE_FILE)
    if sync:
        sync_directory(directory)


def sync_directory(directory: Path) -> None:
    """fsync a directory so that file creations, renames and deletions in it persist."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def lock_directory(directory: Path) -> int:
    """Take the spool's exclusive lock; StoreBusyError names the holder when taken.

    Two processes appending to, or trimming, one spool would lose rows, so the
    daemon and ``spool drain`` both hold this for as long as they use the spool.
    """
    private_dir(directory)
    fd = open_private(directory / LOCK_FILE, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise StoreBusyError(
            f"spool {directory} is in use by pid {holder} (a running stratum-proxy or "
            "'spool drain'); stop it first, or point --spool-dir elsewhere"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def unlock_directory(fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
