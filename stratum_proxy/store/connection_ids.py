"""Miner connection ids that are unique per proxy across restarts.

Rows name the connection a share came on (``connection_id``, and
``channel_id`` in passthrough), so an id must never mean two connections of one
proxy, even after a crash.  The ids are handed out in blocks: the end of the
current block is saved in ``connection_ids.json`` in the spool directory
(which a proxy holds alone, under its lock) *before* any id of the block is
used.  A restart, clean or not, starts after the saved end, so at worst the
unused rest of a block is skipped.  A save costs a small synced write once
per ``BLOCK`` connections.

Ids are UInt32 in the store.  After 2**32 - 1 connections (at one new
connection a second, 136 years) they start again at 1, with a warning.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from stratum_proxy.errors import StoreError
from stratum_proxy.store.private_files import open_private
from stratum_proxy.store.spool_state import sync_directory

IDS_FILE = "connection_ids.json"
BLOCK = 4096
MAX_ID = 0xFFFFFFFF


class ConnectionIds:
    """The next connection id, from blocks reserved in ``directory`` (one process)."""

    def __init__(self, directory: Path, *, block: int = BLOCK, log: Any = None) -> None:
        self.directory = directory
        self._block = block
        self._log = log
        self._next = _load(directory / IDS_FILE)
        self._end = self._next  # nothing reserved yet: the first id reserves a block

    def __call__(self) -> int:
        """A new id.  Never raises: miners are not refused for a full disk."""
        if self._next >= self._end:
            self._reserve()
        n = self._next
        self._next += 1
        return n

    def _reserve(self) -> None:
        start = self._next
        if start + self._block > MAX_ID + 1:
            start = 1
            if self._log is not None:
                self._log.warning("connection_ids_wrapped", note="ids start again at 1")
        end = start + self._block
        try:
            _save(self.directory, end)
        except OSError as exc:
            # The block is used anyway; only a restart before a later save
            # succeeds could repeat its ids.  Tried again at the next block.
            if self._log is not None:
                self._log.error(
                    "connection_ids_not_saved",
                    path=str(self.directory / IDS_FILE),
                    error=str(exc),
                    note="ids of this block may repeat after a restart",
                )
        self._next, self._end = start, end


def _load(path: Path) -> int:
    """The first id not yet reserved; 1 for a new spool directory."""
    try:
        raw = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return 1
    except (OSError, orjson.JSONDecodeError) as exc:
        raise StoreError(
            f"{path} is unreadable ({exc}); delete it to number connections from 1 again "
            "(ids in the store may then repeat)",
            retryable=False,
        ) from None
    value = raw.get("next") if isinstance(raw, dict) else None
    if type(value) is not int or not 1 <= value <= MAX_ID + 1:
        raise StoreError(
            f"{path} holds no valid next id ({str(raw)[:80]!r}); delete it to number "
            "connections from 1 again (ids in the store may then repeat)",
            retryable=False,
        )
    return value


def _save(directory: Path, next_free: int) -> None:
    """Replace the file atomically and durably (write, fsync, rename, fsync the directory).

    OSError when the disk refuses.
    """
    data = orjson.dumps({"next": next_free})
    tmp = directory / (IDS_FILE + ".tmp")
    fd = open_private(tmp, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, directory / IDS_FILE)
    sync_directory(directory)
