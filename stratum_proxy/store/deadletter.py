"""The dead-letter file: batches the store refused for good, kept with the reason.

One JSON line per refused batch in ``<spool dir>/deadletter.jsonl``:
``{"ts", "error", "token", "first_seq", "last_seq", "columns", "rows"}`` where
``rows`` are arrays in ``columns`` order.  The line is fsynced before the batch
counts as handled, so a refused row is never silently gone; an operator can fix
the cause (schema, data) and re-insert the rows from this file with
``stratum-proxy spool replay-deadletter``.

The reading side parses a line into a ``DeadBatch`` (its rows as ShareRecords,
by column name, so a file written before a column was added still reads) and
moves a replayed file aside under a name that says when, keeping the batches
that failed again in a fresh ``deadletter.jsonl``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from stratum_proxy.store.private_files import open_private, tighten_file
from stratum_proxy.store.record import COLUMNS, ShareRecord
from stratum_proxy.store.spool_format import encode_payload
from stratum_proxy.store.spool_state import sync_directory

DEADLETTER_FILE = "deadletter.jsonl"
REPLAYED_SUFFIX = ".replayed-"


def write_dead_letter(
    directory: Path,
    *,
    rows: Sequence[ShareRecord],
    error: str,
    token: str,
    first_seq: int,
    last_seq: int,
    now: float,
) -> None:
    """Append one refused batch and fsync it; raises OSError if the disk refuses."""
    head = orjson.dumps(
        {
            "ts": now,
            "error": error,
            "token": token,
            "first_seq": first_seq,
            "last_seq": last_seq,
            "columns": list(COLUMNS),
        }
    )
    body = b",".join(_row_json(row) for row in rows)
    line = head[:-1] + b',"rows":[' + body + b"]}\n"
    _write_synced(directory / DEADLETTER_FILE, os.O_WRONLY | os.O_APPEND, line)


def _write_synced(path: Path, flags: int, data: bytes) -> None:
    fd = open_private(path, flags)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _row_json(row: ShareRecord) -> bytes:
    try:
        return encode_payload(row)
    except (TypeError, ValueError):
        # A row orjson cannot encode (e.g. an int beyond 64 bits) is kept as text.
        return orjson.dumps([repr(getattr(row, name)) for name in COLUMNS])


def read_dead_letters(directory: Path) -> list[dict[str, Any]]:
    """Every dead-lettered batch; a damaged line becomes ``{"error": ..., "rows": []}``."""
    path = directory / DEADLETTER_FILE
    if not path.exists():
        return []
    out: list[dict[str, Any]] = []
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                entry = {"error": f"line {number} of {path} is damaged: {exc}", "rows": []}
            out.append(entry)
    return out


def dead_letter_rows(directory: Path) -> int:
    return sum(len(entry.get("rows", ())) for entry in read_dead_letters(directory))


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadBatch:
    """One dead-lettered batch, ready to insert again with its original token."""

    token: str
    rows: list[ShareRecord]
    entry: dict[str, Any]  # the line as read, to write back if the batch fails again


def dead_letter_lines(directory: Path) -> list[bytes]:
    """The raw lines of the dead-letter file (none when it does not exist)."""
    path = directory / DEADLETTER_FILE
    if not path.exists():
        return []
    return [line for line in path.read_bytes().splitlines(keepends=True) if line.strip()]


def parse_dead_batch(line: bytes) -> DeadBatch:
    """A line as a batch; ValueError saying what is wrong with a line that is not one."""
    try:
        entry = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(entry, dict):
        raise ValueError("not a JSON object")
    token, columns, rows = entry.get("token"), entry.get("columns"), entry.get("rows")
    if not isinstance(token, str) or not token:
        raise ValueError("no dedup token")
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise ValueError("no column list")
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise ValueError("no row list")
    try:
        records = [ShareRecord(**dict(zip(columns, row, strict=True))) for row in rows]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"rows do not match the share columns: {exc}") from None
    return DeadBatch(token=token, rows=records, entry=entry)


def failed_again_line(batch: DeadBatch, error: str, now: float) -> bytes:
    """The line of a batch the store refused again, with the new error and time."""
    return orjson.dumps(batch.entry | {"ts": now, "error": error}) + b"\n"


def archive_dead_letters(directory: Path, keep: Sequence[bytes], *, now: float) -> Path:
    """Move the dead-letter file aside as replayed; ``keep`` becomes the new file.

    The kept lines are written and fsynced under a temporary name before the
    file is renamed, so a crash leaves every line in a file of this directory.
    Returns the archive's path (``deadletter.jsonl.replayed-<UTC time>``).
    """
    path = directory / DEADLETTER_FILE
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    archive = path.with_name(f"{DEADLETTER_FILE}{REPLAYED_SUFFIX}{stamp}")
    n = 1
    while archive.exists():  # two replays within one second
        archive = path.with_name(f"{DEADLETTER_FILE}{REPLAYED_SUFFIX}{stamp}-{n}")
        n += 1
    fresh = path.with_name(DEADLETTER_FILE + ".tmp")
    if keep:
        _write_synced(fresh, os.O_WRONLY | os.O_TRUNC, b"".join(keep))
    os.replace(path, archive)
    tighten_file(archive)
    if keep:
        os.replace(fresh, path)
    sync_directory(directory)
    return archive
