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

Exit: chdb shuts its engine down from C++ static destructors, after the
interpreter has finished.  A thread still inside the engine then (a writer
that a stop gave up on, finishing an insert) crashes the process: "Exception
in global_context->shutdown(): The ShutdownTablesThreadPool is not
initialized", then a segmentation fault (rc 139).  So every call into the
engine passes ``_gate``: at interpreter exit it lets no new call in, waits for
the calls under way, and closes the session that is still open, before the
engine's own teardown runs.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
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


# How long the exit waits for engine calls under way (an insert in flight
# finishes in well under a second; a merge-heavy one in a few).
EXIT_GRACE_S = 30.0
# How long a read still running at exit is waited for before it is cancelled.
_SELECT_PATIENCE_S = 0.5
# Cancels every read running in this process's engine (the API's queries, and
# any at exit); the writer never runs a SELECT, so an insert in flight is left
# to finish.
KILL_SELECTS = (
    "KILL QUERY WHERE query_kind = 'Select' AND query NOT ILIKE '%system.processes%' SYNC"
)


class _EngineGate:
    """Who is inside the embedded engine, and the session still open at exit."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._inside = 0
        self._exiting = False
        self._open: ChdbStore | None = None
        self._hooked = False

    def opened(self, store: ChdbStore) -> None:
        with self._cond:
            self._open = store
            if not self._hooked:
                # Python's atexit handlers run before the C library's, which
                # is where the engine's static destructors are.
                atexit.register(self.close_at_exit)
                self._hooked = True

    def closed(self, store: ChdbStore) -> None:
        with self._cond:
            if self._open is store:
                self._open = None

    @contextmanager
    def use(self, where: str, *, closing: bool = False) -> Iterator[None]:
        """Around a call into the engine; refused once the exit began (a close is not)."""
        with self._cond:
            if self._exiting and not closing:
                # Retryable: a writer still running keeps its rows in the spool.
                raise StoreError(f"store {where}: the process is exiting", retryable=True)
            self._inside += 1
        try:
            yield
        finally:
            with self._cond:
                self._inside -= 1
                self._cond.notify_all()

    def wait_idle(self, timeout_s: float) -> bool:
        """Until no thread is inside the engine; whether that happened in time."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._inside:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close_at_exit(self, grace_s: float | None = None) -> None:
        with self._cond:
            self._exiting = True
            store = self._open
        grace = EXIT_GRACE_S if grace_s is None else grace_s
        if not self.wait_idle(min(grace, _SELECT_PATIENCE_S)) and store is not None:
            store.cancel_selects()  # a read is not worth waiting for; an insert is
        if not self.wait_idle(grace):
            # Tearing the engine down now would crash under the call in flight;
            # the rows it carries are in the spool and go in on the next start.
            print(
                "stratum-proxy: the embedded store is still busy at exit; "
                "leaving without shutting its engine down",
                file=sys.stderr,
                flush=True,
            )
            sys.stdout.flush()
            os._exit(1)
        with self._cond:
            store, self._open = self._open, None
        if store is not None:
            store.close()


_gate = _EngineGate()


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
        self._closing = threading.Lock()  # the owner and the exit may both close
        try:
            self._lock = acquire_lock(path, api_address)
            self._session = _open_session(path)
            _gate.opened(self)
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
        with _gate.use(self.url):
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
        with _gate.use(self.url):
            session = self._require_session()
            try:
                result = session.query(sql, DEFAULT_FORMAT)
            except Exception as exc:
                raise classify(exc, doing="query", where=self.url) from exc
            return bytes(result.bytes())

    def close(self) -> None:
        """Idempotent; from the owning thread, or from the exit once no call is under way."""
        _gate.closed(self)
        with self._closing:
            session, self._session = self._session, None
        try:
            if session is not None:
                with _gate.use(self.url, closing=True):
                    session.close()
        finally:
            lock, self._lock = self._lock, None
            if lock is not None:
                lock.release()
            if self._claimed:
                self._claimed = False
                _release_process()

    def cancel_selects(self) -> None:
        """Cancel the reads under way on this engine.

        On a connection of its own: the session runs one statement at a time,
        so a KILL sent through it would wait for the very query it cancels.
        """
        if self._session is None:
            return
        try:
            import chdb

            with _gate.use(self.url, closing=True):
                conn = chdb.connect(str(self.path))
                try:
                    conn.query(KILL_SELECTS, DEFAULT_FORMAT)
                finally:
                    conn.close()
        except Exception as exc:  # the exit then waits for the read to end
            print(f"stratum-proxy: cannot cancel a query at exit: {exc}", file=sys.stderr)

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
