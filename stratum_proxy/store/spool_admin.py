"""Backends of ``stratum-proxy spool status``, ``spool drain`` and ``spool replay-deadletter``.

``spool_status`` only reads (it works while the daemon runs).  ``drain_spool``
takes the spool's lock (so not while a daemon uses that spool), writes every
unacknowledged row into any store with the same batching rules and tokens as
the daemon (the batch a crashed daemon left in flight is resent first, with its
token), and deletes what the store acknowledged.  Interrupted, it resumes where
it stopped when run again.

``replay_dead_letters`` also takes the spool's lock (the daemon appends to the
dead-letter file) and inserts each dead-lettered batch with its original dedup
token, so a batch the store already holds is not counted twice (within the
tables' dedup window).  Once any batch went in, the file is moved aside
(``deadletter.jsonl.replayed-<UTC time>``) so it cannot be replayed by
accident; the batches refused again and the lines that are not batches stay
in a fresh ``deadletter.jsonl``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog

from stratum_proxy.errors import StoreError
from stratum_proxy.store.deadletter import (
    archive_dead_letters,
    dead_letter_lines,
    failed_again_line,
    parse_dead_batch,
    read_dead_letters,
)
from stratum_proxy.store.handoff import Handoff
from stratum_proxy.store.record import COLUMNS
from stratum_proxy.store.row_source import RowSource
from stratum_proxy.store.spool import Spool
from stratum_proxy.store.spool_format import list_segments
from stratum_proxy.store.spool_reader import CorruptionReport, SpoolReader, directory_segments
from stratum_proxy.store.spool_state import (
    load_state,
    lock_directory,
    save_state,
    unlock_directory,
)
from stratum_proxy.store.writer import Encode, StoreLike, StoreWriter, WriterConfig, row_encode

_READ_ROWS = 50_000
_TS = COLUMNS.index("ts")


def spool_status(spool_dir: Path) -> dict[str, Any]:
    """What the spool holds: segments, unacknowledged rows, bytes, time span, damage."""
    if not spool_dir.is_dir():
        return {"spool_dir": str(spool_dir), "exists": False, "segments": 0, "rows": 0, "bytes": 0}
    state = load_state(spool_dir)
    damage: list[CorruptionReport] = []
    segment_rows: dict[int, int] = {}
    reader = SpoolReader(
        spool_dir,
        directory_segments(spool_dir),
        damage.append,
        lambda first, rows, _last: segment_rows.__setitem__(first, rows),
    )
    rows, oldest, newest = 0, None, None
    next_seq = state.acked_seq + 1
    while True:
        # Ask from the next seq each time, as the writer does: the reader
        # positions itself by seq, not by a cursor.
        chunk = reader.read(next_seq, _READ_ROWS)
        if chunk:
            next_seq = chunk[-1][0] + 1
        for _seq, values in chunk:
            rows += 1
            ts = values[_TS]
            oldest = ts if oldest is None else min(oldest, ts)
            newest = ts if newest is None else max(newest, ts)
        if reader.exhausted:
            break
    reader.finish()
    segments = list_segments(spool_dir)
    letters = read_dead_letters(spool_dir)
    return {
        "spool_dir": str(spool_dir),
        "exists": True,
        "segments": len(segments),
        "bytes": sum(path.stat().st_size for _, path in segments),
        "rows": rows,
        "oldest_ts": oldest,
        "newest_ts": newest,
        "acked_seq": state.acked_seq,
        "inflight": None if state.inflight is None else state.inflight.token,
        "proxy_id": state.proxy_id,
        "clean_stop": state.clean,
        "corrupt_records": len(damage),
        "rows_corrupt": sum(d.rows_lost for d in damage),
        "damage": [
            {"segment": d.path.name, "offset": d.offset, "bytes": d.length, "reason": d.reason}
            for d in damage
        ],
        "dead_letter_batches": len(letters),
        "dead_letter_rows": sum(len(entry.get("rows", ())) for entry in letters),
    }


def drain_spool(
    spool_dir: Path,
    store: StoreLike,
    *,
    batch_rows: int = 10_000,
    patience_s: float = 60.0,
    encode: Encode | None = None,
    log: Any = None,
) -> int:
    """Write the spool's unacknowledged rows into ``store``; returns rows written.

    Raises StoreBusyError when a daemon holds the spool, StoreError when the
    store stays unavailable for ``patience_s`` (run it again to resume).
    """
    log = log if log is not None else structlog.get_logger("stratum_proxy.spool")
    spool = Spool(spool_dir, segment_bytes=1 << 40, max_bytes=1 << 62)
    recovery = spool.open()
    try:
        state = recovery.state

        def on_corruption(report: CorruptionReport) -> None:
            report.log(log)

        reader = SpoolReader(
            spool_dir,
            lambda: [(s.first_seq, s.size) for s in spool.segments()],
            on_corruption,
            spool.note_rows,
        )
        # No live rows in a drain: an empty hand-off, the spool is the only source.
        handoff = Handoff(spool, queue_size=0, buffer_rows=0)
        source = RowSource(handoff, reader, next_seq=state.acked_seq + 1)
        writer = StoreWriter(
            config=WriterConfig(
                proxy_id=state.proxy_id or "spool-drain",
                batch_rows=batch_rows,
                linger_s=0.001,
                retry_initial_s=0.2,
                retry_max_s=5.0,
            ),
            spool=spool,
            handoff=handoff,
            source=source,
            state=state,
            store_factory=lambda: store,
            encode=row_encode(encode) if encode else _default_encode,
            log=log,
        )
        store.ensure_schema()
        try:
            written = writer.drain(store, patience_s=patience_s)
        finally:
            save_state(spool_dir, writer.state, sync=True)
        reader.finish()
        log.info("spool_drained", rows=written, dead_lettered=writer.counters.rows_dead_lettered)
        return written
    finally:
        spool.close(load_state(spool_dir).acked_seq)


def replay_dead_letters(
    spool_dir: Path,
    store: StoreLike,
    *,
    now: float,
    encode: Encode | None = None,
    log: Any = None,
) -> dict[str, Any]:
    """Insert the dead-lettered batches into ``store`` again; returns what happened.

    Raises StoreBusyError when a daemon holds the spool.  A retryable store
    error stops the replay (the store is down: the rest would fail the same
    way); the untried batches stay dead-lettered, as do the refused ones.
    """
    log = log if log is not None else structlog.get_logger("stratum_proxy.spool")
    encode = encode or _default_encode
    report: dict[str, Any] = {
        "batches_replayed": 0,
        "rows_replayed": 0,
        "batches_failed": 0,
        "rows_failed": 0,
        "malformed_lines": 0,
        "stopped_by": None,
        "archive": None,
    }
    fd = lock_directory(spool_dir)
    try:
        keep: list[bytes] = []
        for number, line in enumerate(dead_letter_lines(spool_dir), 1):
            if report["stopped_by"] is not None:
                keep.append(line)
                continue
            try:
                batch = parse_dead_batch(line)
            except ValueError as exc:
                log.warning("dead_letter_line_skipped", line=number, reason=str(exc))
                report["malformed_lines"] += 1
                keep.append(line)
                continue
            try:
                store.insert(encode(batch.rows, batch.token))
            except StoreError as exc:
                log.warning("dead_letter_refused_again", token=batch.token, error=str(exc))
                report["batches_failed"] += 1
                report["rows_failed"] += len(batch.rows)
                keep.append(failed_again_line(batch, str(exc), now))
                if exc.retryable:
                    report["stopped_by"] = str(exc)
                continue
            report["batches_replayed"] += 1
            report["rows_replayed"] += len(batch.rows)
        if report["batches_replayed"]:
            report["archive"] = str(archive_dead_letters(spool_dir, keep, now=now))
    finally:
        unlock_directory(fd)
    log.info("dead_letters_replayed", **report)
    return report


def _default_encode(records: Any, token: str) -> Any:
    from stratum_proxy.store.backend import encode_batch

    return encode_batch(records, token)
