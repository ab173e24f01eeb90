"""A ClickHouse server (or cluster node) as the store.

DDL and inserts go over the native protocol with clickhouse-driver.  Its
``Client`` is synchronous and not thread-safe: the writer thread owns it.  It
reconnects by itself on the next call after a network error.

Inserts decode the batch's payload (JSON rows or RowBinary, see ``backend``)
back into columns (``decode_columns``) and send them as Native blocks with
strings as raw bytes, so the server stores exactly the values the embedded
store would.  Every insert carries the batch's ``insert_deduplication_token``.

``query`` must return what ClickHouse prints (``FORMAT JSONEachRow`` and so
on), but the native protocol returns rows, not formatted text.  So ``query``
posts the SQL to the server's HTTP interface (``http_port`` in the URL,
default 8123; https when ``secure=1``) with the same credentials and returns
the response body verbatim; its default format is TabSeparated, like
clickhouse-client when not on a terminal.
"""

from __future__ import annotations

import ssl
import struct
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from stratum_proxy.errors import StoreError
from stratum_proxy.store.backend import EncodedBatch, decode_columns, insert_columns_sql
from stratum_proxy.store.classify import classify
from stratum_proxy.store.migrate import ensure_schema
from stratum_proxy.store.schema import SchemaConfig, insert_settings
from stratum_proxy.store.url import ClickHouseUrl

CONNECT_TIMEOUT_S = 10.0
# A 10k-row batch takes well under a second; a minute means the server is stuck.
SEND_RECEIVE_TIMEOUT_S = 60.0
QUERY_TIMEOUT_S = 300.0


class ClickHouseStore:
    """``Store`` on a ClickHouse server.  Use from one thread (the writer)."""

    def __init__(
        self,
        url: str,
        parsed: ClickHouseUrl,
        schema: SchemaConfig,
        *,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        timeout_s: float = SEND_RECEIVE_TIMEOUT_S,
        query_timeout_s: float = QUERY_TIMEOUT_S,
    ) -> None:
        self.url = url
        self.display_url = parsed.display_url
        self.parsed = parsed
        self.schema = schema
        self._query_timeout_s = query_timeout_s
        self._client: Any = _make_client(parsed, connect_timeout_s, timeout_s)

    def ensure_schema(self) -> None:
        ensure_schema(self._execute, self.schema)

    def insert(self, batch: EncodedBatch) -> None:
        if batch.rows == 0:
            return
        settings: dict[str, Any] = insert_settings(batch.token)
        settings["strings_as_bytes"] = True  # a client setting: send our bytes untouched
        try:
            columns = decode_columns(batch)
        except (ValueError, IndexError, TypeError, AttributeError, struct.error) as exc:
            raise StoreError(f"batch {batch.token} is corrupt: {exc}", retryable=False) from exc
        sql = f"{insert_columns_sql(self.schema.insert_table)} VALUES"
        try:
            self._client.execute(sql, columns, columnar=True, settings=settings)
        except Exception as exc:
            self._client.disconnect()
            raise classify(
                exc, doing=f"insert of {batch.rows} rows", where=self.display_url
            ) from exc

    def query(self, sql: str) -> bytes:
        request = urllib.request.Request(
            self._http_base(),
            data=sql.encode("utf-8"),
            method="POST",
            headers={
                "X-ClickHouse-User": self.parsed.user,
                "X-ClickHouse-Key": self.parsed.password,
            },
        )
        try:
            with urllib.request.urlopen(
                request, timeout=self._query_timeout_s, context=self._ssl_context()
            ) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as exc:
            # ClickHouse puts "Code: NNN. DB::Exception: ..." in the body.
            body = exc.read().decode("utf-8", "replace").strip()
            raise classify(
                RuntimeError(body or str(exc)), doing="query", where=self.display_url
            ) from exc
        except Exception as exc:
            raise classify(exc, doing="query", where=self.display_url) from exc

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()

    def _execute(self, sql: str) -> str:
        """Run DDL or a small SELECT; rows come back as TabSeparated-like text."""
        if self._client is None:
            raise StoreError(f"store {self.display_url} is closed", retryable=False)
        try:
            rows = self._client.execute(sql)
        except Exception as exc:
            self._client.disconnect()
            raise classify(exc, doing="schema statement", where=self.display_url) from exc
        return "".join("\t".join(str(v) for v in row) + "\n" for row in rows or [])

    def _http_base(self) -> str:
        database = urllib.parse.quote(self.parsed.database, safe="")
        return f"{http_base(self.parsed)}?database={database}"

    def _ssl_context(self) -> ssl.SSLContext | None:
        return ssl_context(self.parsed)


def _make_client(parsed: ClickHouseUrl, connect_timeout_s: float, timeout_s: float) -> Any:
    from clickhouse_driver import Client

    # Connected to "default": the store's own database may not exist until
    # ensure_schema creates it; every statement names its tables fully.
    return Client(
        host=parsed.host,
        port=parsed.port,
        user=parsed.user,
        password=parsed.password,
        database="default",
        secure=parsed.secure,
        verify=parsed.verify,
        connect_timeout=connect_timeout_s,
        send_receive_timeout=timeout_s,
        sync_request_timeout=connect_timeout_s,
        client_name="stratum-proxy",
    )


def http_base(parsed: ClickHouseUrl) -> str:
    """The server's HTTP interface, e.g. ``http://host:8123/``."""
    scheme = "https" if parsed.secure else "http"
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    return f"{scheme}://{host}:{parsed.http_port}/"


def ssl_context(parsed: ClickHouseUrl) -> ssl.SSLContext | None:
    if not parsed.secure:
        return None
    context = ssl.create_default_context()
    if not parsed.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
