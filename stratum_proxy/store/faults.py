"""Fault drills for the share pipeline: a store wrapper that fails on demand.

``FaultyStore`` wraps a real store (the engine stays real) and, depending on
its ``mode``, lets inserts through, raises a retryable or a non-retryable
StoreError or an unexpected TypeError, or hangs until released.  Used by the fault tests and
``scripts/bench_pipeline.py``; ``synthetic_record`` makes distinguishable rows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from stratum_proxy.errors import StoreError
from stratum_proxy.store.record import ShareRecord

OK, RETRYABLE, FATAL, HANG = "ok", "retryable", "fatal", "hang"
BUG = "bug"  # an exception no store raises on purpose (TypeError): a bug, not an outage


class FaultyStore:
    """A store whose inserts fail as told; queries and schema pass through."""

    def __init__(self, inner: Any, mode: str = OK) -> None:
        self.inner = inner
        self.mode = mode
        self.attempts = 0
        self.inserted = 0  # batches the inner store acknowledged
        self.after_insert: Callable[[int], None] | None = None  # called with `inserted`
        self._release = threading.Event()

    @property
    def display_url(self) -> str:
        return str(getattr(self.inner, "display_url", "faulty"))

    def ensure_schema(self) -> None:
        self.inner.ensure_schema()

    def insert(self, batch: Any) -> None:
        self.attempts += 1
        mode = self.mode
        if mode == RETRYABLE:
            raise StoreError("injected: connection refused", retryable=True)
        if mode == FATAL:
            raise StoreError("injected: NO_SUCH_COLUMN_IN_TABLE (schema mismatch)", retryable=False)
        if mode == BUG:
            raise TypeError("injected: unsupported operand type(s)")
        if mode == HANG:
            self._release.wait()
        self.inner.insert(batch)
        self.inserted += 1
        if self.after_insert is not None:
            self.after_insert(self.inserted)

    def release(self) -> None:
        """End a hang: the insert under way goes through."""
        self.mode = OK
        self._release.set()

    def query(self, sql: str) -> bytes:
        return bytes(self.inner.query(sql))

    def close(self) -> None:
        self.inner.close()


def synthetic_record(
    index: int, *, proxy_id: str = "drill", ts: float | None = None
) -> ShareRecord:
    """A plausible share row whose ``nonce`` is ``index`` in hex (to find it again)."""
    return ShareRecord(
        ts=time.time() if ts is None else ts,
        proxy_id=proxy_id,
        upstream="pool-a",
        protocol="sv1",
        channel_id=index % 64,
        worker=f"farm.rig{index % 50:03d}",
        miner_addr=f"10.0.{index % 250}.{index % 200}:4028",
        job_id=f"{index // 100:x}",
        extranonce2=f"{index:016x}",
        ntime="6650f1c2",
        nonce=f"{index:08x}",
        version=0x20000000 | (index & 0x1FFFE000),
        share_hash="00000000" + f"{index:056x}",
        share_difficulty=1024.0 + index / 7,
        pool_difficulty=1024.0,
        network_difficulty=83_148_355_189_239.77,
        status="accepted" if index % 20 else "rejected",
        reject_reason="" if index % 20 else "Stale share",
        is_block=False,
        response_ms=12.5 + (index % 10) / 4,
        version_bits=f"{index & 0x1FFFE000:08x}",
        extranonce1="f000000d",
        connection_id=index % 64,
    )
