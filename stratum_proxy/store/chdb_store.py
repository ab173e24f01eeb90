"""The embedded store: ClickHouse in-process through chdb (package chdb-core).

chdb runs one embedded server per process, bound to the first data path it is
given: a second ``Session`` on another path fails ("EmbeddedServer already
initialized with path ..."), while closing the session frees it for the next
path.  So this process holds at most one ``ChdbStore`` at a time; opening a
second one raises StoreBusyError until the first is closed (tests open, use
and close one store per temporary directory).  Across processes, the data
directory is guarded by ``lock.acquire_lock``.

Inserts stream the batch's payload through ``send_insert`` in the batch's own
format (JSONCompactEachRow or RowBinary, see ``backend``): the bytes go to the
engine as they are, with no SQL text built around them.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from stratum_proxy.errors import StoreBusyError, StoreError
from stratum_proxy.store.backend import EncodedBatch, format_settings, insert_columns_sql
from stratum_proxy.store.classify import classify
from stratum_proxy.store.lock import StoreLock, acquire_lock
from stratum_proxy.store.migrate import ensure_schema
from stratum_proxy.store.schema import SchemaConfig, insert_settings, sql_string

# The default output of clickhouse-client/-local when not on a terminal.
DEFAULT_FORMAT = "TabSeparated"

_process_guard = threading.Lock()
_open_path: Path | None = None


def _claim_process(path: Path) -> None:
    global _open_path
    with _process_guard:
        if _open_path is not None:
            raise StoreBusyError(
                f"this process already has the embedded store {_open_path} open; chdb runs one "
                f"embedded engine per process, so close it before opening {path}"
            )
        _open_path = path


def _release_process() -> None:
    global _open_path
    with _process_guard:
        _open_path = None


class ChdbStore:
    """``Store`` on a local data directory.  Use from one thread (the writer)."""

    def __init__(self, path: Path, schema: SchemaConfig, *, api_address: str | None = None) -> None:
        self.path = path
        self.url = f"chdb://{path}"
        self.display_url = self.url
        self.schema = schema
        _claim_process(path)
        self._claimed = True
        self._lock: StoreLock | None = None
        self._session: Any = None
        try:
            self._lock = acquire_lock(path, api_address)
            self._session = _open_session(path)
        except BaseException:
            self.close()
            raise

    def ensure_schema(self) -> None:
        ensure_schema(self._execute, self.schema)

    def insert(self, batch: EncodedBatch) -> None:
        if batch.rows == 0:
            return
        all_settings = insert_settings(batch.token) | format_settings(batch.format)
        settings = ", ".join(
            f"{key} = {sql_string(value) if isinstance(value, str) else value}"
            for key, value in all_settings.items()
        )
        sql = f"{insert_columns_sql(self.schema.insert_table)} SETTINGS {settings}"
        session = self._require_session()
        try:
            inserter = session.send_insert(sql, batch.format)
            try:
                inserter.append(batch.payload)
            except BaseException:
                inserter.cancel()
                raise
            inserter.finish()
        except Exception as exc:
            raise classify(exc, doing=f"insert of {batch.rows} rows", where=self.url) from exc

    def query(self, sql: str) -> bytes:
        session = self._require_session()
        try:
            result = session.query(sql, DEFAULT_FORMAT)
        except Exception as exc:
            raise classify(exc, doing="query", where=self.url) from exc
        return bytes(result.bytes())

    def close(self) -> None:
        session, self._session = self._session, None
        try:
            if session is not None:
                session.close()
        finally:
            lock, self._lock = self._lock, None
            if lock is not None:
                lock.release()
            if self._claimed:
                self._claimed = False
                _release_process()

    def _require_session(self) -> Any:
        if self._session is None:
            raise StoreError(f"store {self.url} is closed", retryable=False)
        return self._session

    def _execute(self, sql: str) -> str:
        return self.query(sql).decode("utf-8", "replace")


def _open_session(path: Path) -> Any:
    try:
        from chdb.session import Session
    except ImportError as exc:
        raise StoreError(
            "the embedded store needs the chdb-core package: pip install 'stratum-proxy[embedded]'",
            retryable=False,
        ) from exc
    try:
        return Session(str(path))
    except Exception as exc:
        raise classify(exc, doing="opening the embedded engine", where=f"chdb://{path}") from exc
