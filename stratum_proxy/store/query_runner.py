"""Read-only API queries, run apart from the share writer.

``QueryRunner.run(sql)`` checks ``sql`` with the engine's own parser
(``sql_guard``), then runs the canonical text on a connection of its own, on
a thread of its own, under the engine's limits.  It never touches the
writer's connection or thread, so however heavy a query is, no batch waits
for it (chdb serves several connections to one data path at once; a server
store gets its queries over HTTP while the writer uses the native protocol).

Limits (``[api]`` settings), set once on each query connection together with
``readonly=1`` so that a query cannot lift them: ``max_execution_time``
(the engine cancels the query), ``max_result_rows`` / ``max_result_bytes``,
``max_memory_usage`` and ``max_threads``.  At most ``max_concurrent_queries``
run at once; one more is answered QueryBusy at once rather than queued.  A
query the engine has not stopped a little after its time limit is answered
QueryTimeout; its slot stays taken until the engine lets go of it, so stuck
queries can never pile up threads.

A clean stop never waits out a query: ``close`` cancels the queries still
running in the embedded engine (``KILL QUERY``; an engine torn down under a
running query crashes the process on exit) and waits a moment for the
threads.  The engine's work for a query runs at the store's background
priority (``priority.engine_priority``), so miners' traffic goes first.

Errors: QueryRefused (403), QueryInvalid (400), QueryBusy (503), QueryTimeout (504).
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol

from stratum_proxy.errors import (
    QueryBusy,
    QueryInvalid,
    QueryRefused,
    QuerySlotsBusy,
    QueryTimeout,
    StoreError,
    StratumProxyError,
)
from stratum_proxy.store.priority import engine_priority
from stratum_proxy.store.sql_guard import check_read_only

# ClickHouse error codes that mean "not allowed" rather than "wrong".
_REFUSED_CODES = ("Code: 164.", "Code: 497.", "Code: 62. DB::Exception: Syntax error (Multi")
_TIMEOUT_CODES = ("Code: 159.", "Code: 394.")  # TIMEOUT_EXCEEDED, QUERY_WAS_CANCELLED
# How long past its time limit a query may take to notice it (the engine
# checks between blocks) before the API stops waiting for it.
_CANCEL_GRACE_S = 5.0


class QueryConnection(Protocol):
    """One connection that runs queries for one thread."""

    def text(self, sql: str) -> str:
        """Run one of our own statements; its output as text."""

    def execute(self, sql: str) -> bytes:
        """Run a checked statement; the engine's output bytes."""

    def close(self) -> None: ...


# The connection that only parses (formatQuery, EXPLAIN AST): read-only, but
# its result size is the syntax tree's, not bounded by the query's row limit.
_CHECK_SETTINGS: dict[str, Any] = {
    "max_execution_time": 10,
    "timeout_overflow_mode": "throw",
    "max_result_bytes": 64 * 1024 * 1024,
    "result_overflow_mode": "throw",
    "readonly": 1,
}

# What a connection is for: checking a query, running a checked one, cleanup.
CHECK, READ, ADMIN = "check", "read", "admin"


def limit_settings(api: Any, database: str) -> dict[str, Any]:
    """The engine settings every API query runs under (readonly last: it locks the rest)."""
    return {
        "max_execution_time": api.query_timeout_s,
        "timeout_overflow_mode": "throw",
        "max_result_rows": api.query_max_result_rows,
        "max_result_bytes": api.query_max_result_bytes,
        "result_overflow_mode": "throw",
        "max_memory_usage": api.query_max_memory_bytes,
        "max_threads": api.query_max_threads,
        "readonly": 1,
    }


class ChdbQueryConnection:
    """A connection of its own to the embedded engine the writer opened."""

    def __init__(self, path: str, database: str, settings: dict[str, Any] | None) -> None:
        import chdb

        from stratum_proxy.store.schema import quote_ident, sql_string

        self._conn = chdb.connect(path)
        try:
            self._conn.query(f"USE {quote_ident(database)}", "TabSeparated")
            if settings:
                assignments = ", ".join(
                    f"{k} = {sql_string(v) if isinstance(v, str) else v}"
                    for k, v in settings.items()
                )
                self._conn.query(f"SET {assignments}", "TabSeparated")
        except BaseException:
            self._conn.close()
            raise

    def text(self, sql: str) -> str:
        return self.execute(sql).decode("utf-8", "replace")

    def execute(self, sql: str) -> bytes:
        from stratum_proxy.store.chdb_store import DEFAULT_FORMAT

        try:
            return bytes(self._conn.query(sql, DEFAULT_FORMAT).bytes())
        except Exception as exc:
            raise _engine_error(str(exc)) from None

    def close(self) -> None:
        self._conn.close()


class HttpQueryConnection:
    """Queries to a ClickHouse server over its HTTP interface, settings as URL parameters."""

    def __init__(self, parsed: Any, settings: dict[str, Any] | None, timeout_s: float) -> None:
        from stratum_proxy.store.clickhouse_store import http_base, ssl_context

        params = {"database": parsed.database, **(settings or {})}
        self._url = http_base(parsed) + "?" + urllib.parse.urlencode(params)
        self._parsed = parsed
        self._context = ssl_context(parsed)
        self._timeout_s = timeout_s

    def text(self, sql: str) -> str:
        return self.execute(sql).decode("utf-8", "replace")

    def execute(self, sql: str) -> bytes:
        request = urllib.request.Request(
            self._url,
            data=sql.encode("utf-8"),
            method="POST",
            headers={
                "X-ClickHouse-User": self._parsed.user,
                "X-ClickHouse-Key": self._parsed.password,
            },
        )
        try:
            with urllib.request.urlopen(
                request, timeout=self._timeout_s, context=self._context
            ) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as exc:
            raise _engine_error(exc.read().decode("utf-8", "replace").strip()) from None
        except OSError as exc:
            raise QueryBusy(f"the ClickHouse server did not answer: {exc}") from None

    def close(self) -> None:
        return None


def _engine_error(message: str) -> StratumProxyError:
    message = message.strip() or "the engine failed without a message"
    if any(code in message for code in _REFUSED_CODES):
        return QueryRefused(message)
    if any(code in message for code in _TIMEOUT_CODES):
        return QueryTimeout(message)
    return QueryInvalid(message)


ConnectionFactory = Callable[[str], QueryConnection]  # CHECK / READ / ADMIN -> a connection


def connection_factory(store_url: str, api: Any, database: str) -> ConnectionFactory:
    """How query threads connect to the store ``store_url`` names."""
    from stratum_proxy.store.url import ChdbUrl, parse_store_url

    parsed = parse_store_url(store_url)
    limits = limit_settings(api, database)

    def connect(kind: str) -> QueryConnection:
        settings = {CHECK: _CHECK_SETTINGS, READ: limits}.get(kind)
        if isinstance(parsed, ChdbUrl):
            return ChdbQueryConnection(str(parsed.path), database, settings)
        # Admin work (cleanup) waits for its DELETE; reads have their own limit.
        timeout = api.query_timeout_s + _CANCEL_GRACE_S if settings else 3600.0
        return HttpQueryConnection(parsed, settings, timeout)

    return connect


Work = Callable[[Callable[[str], QueryConnection]], Any]  # given: kind -> connection


class _Job:
    __slots__ = ("future", "work")

    def __init__(self, work: Work) -> None:
        self.work = work
        self.future: Future[Any] = Future()


class QueryRunner:
    """A few daemon threads, each with its own connections (opened on first use): one
    that parses, one read-only and limited that runs checked queries, and a writable
    one for ``cleanup``."""

    def __init__(
        self,
        store_url: str,
        store_settings: Any,
        api_settings: Any,
        log: Any,
        *,
        connect: ConnectionFactory | None = None,
    ) -> None:
        from stratum_proxy.store.backend import schema_for

        self.schema = schema_for(store_url, store_settings)
        self.database = self.schema.database
        self.api = api_settings
        self.log = log
        self._connect = connect or connection_factory(store_url, api_settings, self.database)
        self._slots = threading.BoundedSemaphore(api_settings.max_concurrent_queries)
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._store_up: Callable[[], Any] = lambda: True
        self._closed = False
        self._running = 0  # jobs inside _attempt (written by the query threads)
        self._embedded = store_url.startswith("chdb:")
        self._threads = [
            threading.Thread(target=self._serve, name=f"api-query-{i}", daemon=True)
            for i in range(api_settings.max_concurrent_queries)
        ]
        for thread in self._threads:
            thread.start()
        self.queries_run = 0
        self.queries_refused = 0

    def attach(self, store_up: Callable[[], Any]) -> None:
        """``store_up()`` says whether the writer has opened the store: the embedded
        engine's path must be claimed (and locked) by the writer before we connect."""
        self._store_up = store_up

    async def run(self, sql: str) -> bytes:
        """ClickHouse's own output of a read-only ``sql``."""

        def work(connection: Callable[[str], QueryConnection]) -> bytes:
            try:
                canonical = check_read_only(sql, connection(CHECK).text, self.database)
            except QueryRefused:
                self.queries_refused += 1
                raise
            self.queries_run += 1
            return connection(READ).execute(canonical)

        return bytes(await self._submit(work))

    async def cleanup(self, days: float) -> int:
        """Delete share rows older than ``days`` (``stratum-proxy cleanup`` via the daemon)."""
        from stratum_proxy.store.reports import cleanup

        now = time.time()

        def work(connection: Callable[[str], QueryConnection]) -> int:
            return cleanup(_AsStore(connection(ADMIN)), days, now, schema=self.schema)

        return int(await self._submit(work, timeout_s=None))

    def close(self, wait_s: float = 2.0) -> bool:
        """Stop taking queries, cancel those running, close the connections.

        Waits at most ``wait_s`` for the threads; returns whether every thread
        has finished.
        """
        self._closed = True
        for _ in self._threads:
            self._jobs.put(None)
        if self._running and self._embedded:
            self._cancel_running()
        deadline = time.monotonic() + wait_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)

    # -- internals -------------------------------------------------------------------

    def _cancel_running(self) -> None:
        try:
            conn = self._connect(ADMIN)
            try:
                # The engine is in this process: queries still running when it
                # shuts down must be cancelled first.
                from stratum_proxy.store.chdb_store import KILL_SELECTS

                conn.execute(KILL_SELECTS)
            finally:
                conn.close()
        except Exception as exc:  # the stop goes on; the query ends at its time limit
            self.log.warning("api_query_not_cancelled", error=str(exc))

    async def _submit(self, work: Work, *, timeout_s: Any = ...) -> Any:
        if self._closed:
            raise QueryBusy("the proxy is stopping")
        if not self._store_up():
            raise QueryBusy("the store is not open yet; try again shortly")
        if not self._slots.acquire(blocking=False):
            raise QuerySlotsBusy(
                f"all {self.api.max_concurrent_queries} query slots are busy; try again shortly"
            )
        job = _Job(work)
        self._jobs.put(job)
        if timeout_s is ...:
            timeout_s = self.api.query_timeout_s + _CANCEL_GRACE_S
        try:
            return await asyncio.wait_for(asyncio.wrap_future(job.future), timeout_s)
        except TimeoutError:
            raise QueryTimeout(
                f"the query did not finish within {self.api.query_timeout_s:g}s "
                "(api.query_timeout_s) and was cancelled"
            ) from None

    def _serve(self) -> None:
        connections: dict[str, QueryConnection] = {}
        while True:
            job = self._jobs.get()
            if job is None:
                break
            if not job.future.set_running_or_notify_cancel():
                self._slots.release()  # the caller gave up before we started
                continue
            result: Any = None
            error: BaseException | None = None
            self._running += 1
            try:
                result = self._attempt(job, connections)
            except BaseException as exc:
                error = _as_query_error(exc)
            finally:
                self._running -= 1
            # Free the slot before the caller hears back, so that its next query
            # finds the slot free.
            self._slots.release()
            if error is not None:
                job.future.set_exception(error)
            else:
                job.future.set_result(result)
        for conn in connections.values():
            conn.close()

    def _attempt(self, job: _Job, connections: dict[str, QueryConnection]) -> Any:
        def connection(kind: str) -> QueryConnection:
            conn = connections.get(kind)
            if conn is None:
                try:
                    conn = self._connect(kind)
                except Exception as exc:
                    raise QueryBusy(f"cannot connect to the store for queries: {exc}") from exc
                connections[kind] = conn
            return conn

        with engine_priority():
            return job.work(connection)


def _as_query_error(exc: BaseException) -> BaseException:
    if isinstance(exc, QueryRefused | QueryInvalid | QueryBusy | QueryTimeout):
        return exc
    if isinstance(exc, StoreError):
        return QueryBusy(str(exc)) if exc.retryable else QueryInvalid(str(exc))
    return QueryInvalid(f"the query failed: {exc}")


class _AsStore:
    """The ``query(sql) -> bytes`` shape that ``reports.cleanup`` works with."""

    def __init__(self, conn: QueryConnection) -> None:
        self._conn = conn

    def query(self, sql: str) -> bytes:
        return self._conn.execute(sql)
