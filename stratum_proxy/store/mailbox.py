"""Queries for the store, handed to the writer thread that owns the client.

chdb holds its data path and clickhouse-driver's Client is not thread-safe, so
``stratum-proxy query`` (through the local API) and the dashboard send SQL here;
the writer runs it between batches, during linger waits and between retries.
"""

from __future__ import annotations

from concurrent.futures import Future
from queue import Empty, SimpleQueue
from typing import Any

from stratum_proxy.errors import StoreError


class QueryMailbox:
    def __init__(self) -> None:
        self._queries: SimpleQueue[tuple[str, Future[bytes]]] = SimpleQueue()

    def submit(self, sql: str) -> Future[bytes]:
        """Any thread: queue ``sql``; the future gets the output or a StoreError."""
        future: Future[bytes] = Future()
        self._queries.put((sql, future))
        return future

    def waiting(self) -> bool:
        """Whether a query waits (a hint: one may arrive right after)."""
        return not self._queries.empty()

    def serve(self, store: Any, last_error: str | None) -> None:
        """Writer thread: run every waiting query on ``store`` (None: not open yet)."""
        while True:
            try:
                sql, future = self._queries.get_nowait()
            except Empty:
                return
            if not future.set_running_or_notify_cancel():
                continue  # the caller timed out already
            if store is None:
                error = StoreError(f"the store is not open yet ({last_error})", retryable=True)
                future.set_exception(error)
                continue
            try:
                future.set_result(store.query(sql))
            except StoreError as exc:
                future.set_exception(exc)
            except Exception as exc:
                future.set_exception(StoreError(f"query failed: {exc}", retryable=False))

    def fail_all(self, reason: str) -> None:
        """The writer is gone: answer every waiting query with ``reason``."""
        while True:
            try:
                _sql, future = self._queries.get_nowait()
            except Empty:
                return
            if future.set_running_or_notify_cancel():
                future.set_exception(StoreError(reason, retryable=True))
