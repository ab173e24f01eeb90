"""The dead-letter file: batches the store refused for good, kept with the reason.

One JSON line per refused batch in ``<spool dir>/deadletter.jsonl``:
``{"ts", "error", "token", "first_seq", "last_seq", "columns", "rows"}`` where
``rows`` are arrays in ``columns`` order.  The line is fsynced before the batch
counts as handled, so a refused row is never silently gone; an operator can fix
the cause (schema, data) and re-insert the rows from this file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from stratum_proxy.store.private_files import open_private
from stratum_proxy.store.record import COLUMNS, ShareRecord
from stratum_proxy.store.spool_format import encode_payload

DEADLETTER_FILE = "deadletter.jsonl"


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
    fd = open_private(directory / DEADLETTER_FILE, os.O_WRONLY | os.O_APPEND)
    try:
        view = memoryview(line)
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
