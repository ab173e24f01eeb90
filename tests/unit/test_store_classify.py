"""Store errors are classified retryable or not, from real engine and network failures."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from clickhouse_driver import errors as driver_errors

from stratum_proxy.errors import StoreError
from stratum_proxy.store.backend import encode_batch
from stratum_proxy.store.chdb_store import ChdbStore
from stratum_proxy.store.classify import (
    PERMANENT_CODES,
    RETRYABLE_CODES,
    classify,
    error_code,
    is_retryable,
)
from stratum_proxy.store.clickhouse_store import ClickHouseStore
from stratum_proxy.store.record import ShareRecord
from stratum_proxy.store.schema import SchemaConfig
from stratum_proxy.store.url import ClickHouseUrl, parse_store_url


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ChdbStore]:
    s = ChdbStore(tmp_path / "db", SchemaConfig())
    try:
        yield s
    finally:
        s.close()


def _raised(store: ChdbStore, sql: str) -> StoreError:
    with pytest.raises(StoreError) as info:
        store.query(sql)
    return info.value


def test_code_tables_do_not_overlap() -> None:
    assert not set(RETRYABLE_CODES) & set(PERMANENT_CODES)


@pytest.mark.parametrize(
    ("sql", "code_name"),
    [
        ("SELEC 1", "SYNTAX_ERROR"),
        ("SELECT * FROM nowhere.nothing", "UNKNOWN_DATABASE"),
        ("SELECT * FROM system.nothing", "UNKNOWN_TABLE"),
        ("SELECT no_such_column FROM system.one", "UNKNOWN_IDENTIFIER"),
        ("SELECT toUInt8('x')", "CANNOT_PARSE_TEXT"),
    ],
)
def test_engine_errors_about_the_query_are_permanent(
    store: ChdbStore, sql: str, code_name: str
) -> None:
    err = _raised(store, sql)
    assert not err.retryable
    assert code_name in str(err) and "not retryable" in str(err)


def test_engine_memory_limit_is_retryable(store: ChdbStore) -> None:
    err = _raised(
        store,
        "SELECT groupArray(number) FROM numbers(1000000) SETTINGS max_memory_usage = 1000000",
    )
    assert err.retryable and "MEMORY_LIMIT_EXCEEDED" in str(err)


def test_engine_timeout_is_retryable(store: ChdbStore) -> None:
    err = _raised(
        store,
        "SELECT sleepEachRow(0.05) FROM numbers(100) "
        "SETTINGS max_execution_time = 0.2, max_block_size = 1",
    )
    assert err.retryable and "TIMEOUT_EXCEEDED" in str(err)


def test_engine_too_many_parts_is_retryable(store: ChdbStore) -> None:
    store.query(
        "CREATE TABLE default.tiny (x UInt8) ENGINE = MergeTree ORDER BY x "
        "SETTINGS parts_to_throw_insert = 1, parts_to_delay_insert = 0"
    )
    store.query("SYSTEM STOP MERGES default.tiny")
    store.query("INSERT INTO default.tiny VALUES (1)")
    err = _raised(store, "INSERT INTO default.tiny VALUES (2)")
    assert err.retryable and "TOO_MANY_PARTS" in str(err)


def test_insert_into_a_store_without_schema_is_permanent(store: ChdbStore) -> None:
    batch = encode_batch([_record()], "t")
    with pytest.raises(StoreError) as info:
        store.insert(batch)
    assert not info.value.retryable


def test_error_code_from_driver_attribute_and_from_text() -> None:
    assert error_code(driver_errors.ServerException("boom", code=252)) == 252
    assert error_code(RuntimeError("Code: 241. DB::Exception: Memory limit")) == 241
    assert (
        error_code(RuntimeError("DB::Exception: too many (TOO_MANY_SIMULTANEOUS_QUERIES)")) == 202
    )
    assert error_code(RuntimeError("nothing here (NOT_A_KNOWN_NAME)")) is None


@pytest.mark.parametrize(
    ("exc", "retryable"),
    [
        (driver_errors.NetworkError("reset"), True),
        (driver_errors.SocketTimeoutError("timeout"), True),
        (driver_errors.ServerException("overloaded", code=202), True),
        (driver_errors.ServerException("too many parts", code=252), True),
        (driver_errors.ServerException("no such column", code=16), False),
        (driver_errors.ServerException("type mismatch", code=53), False),
        (ConnectionRefusedError(111, "refused"), True),
        (ConnectionResetError(104, "reset"), True),
        (TimeoutError("timed out"), True),
        (EOFError(), True),
        (ValueError("bad value"), False),
    ],
)
def test_exception_types(exc: BaseException, retryable: bool) -> None:
    assert is_retryable(exc) is retryable
    assert classify(exc, doing="insert", where="x").retryable is retryable


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_store(port: int, **timeouts: float) -> ClickHouseStore:
    url = f"clickhouse://default@127.0.0.1:{port}/mining?http_port={port}"
    parsed = parse_store_url(url)
    assert isinstance(parsed, ClickHouseUrl)
    return ClickHouseStore(url, parsed, SchemaConfig(), **timeouts)


def _record() -> ShareRecord:
    return ShareRecord(
        ts=1_700_000_000.0,
        proxy_id="p",
        upstream="u",
        protocol="sv1",
        channel_id=1,
        worker="w",
        miner_addr="127.0.0.1:1",
        job_id="j",
        extranonce2="00",
        ntime="00",
        nonce="00",
        version=0x20000000,
        share_hash="",
        share_difficulty=0.0,
        pool_difficulty=1.0,
        network_difficulty=1.0,
        status="accepted",
        reject_reason="",
        is_block=False,
        response_ms=1.0,
    )


def test_server_connection_refused_is_retryable() -> None:
    store = _server_store(_free_port(), connect_timeout_s=2.0)
    try:
        with pytest.raises(StoreError) as info:
            store.insert(encode_batch([_record()], "t"))
        assert info.value.retryable
        with pytest.raises(StoreError) as info:
            store.query("SELECT 1")
        assert info.value.retryable
    finally:
        store.close()


class _SilentServer:
    """Accepts connections; either closes them at once or never answers."""

    def __init__(self, *, close_at_once: bool) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = int(self.sock.getsockname()[1])
        self.close_at_once = close_at_once
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.close_at_once:
                conn.close()
            else:
                self.conns.append(conn)

    def stop(self) -> None:
        self.sock.close()
        for conn in self.conns:
            conn.close()


@pytest.mark.parametrize("close_at_once", [True, False])
def test_server_reset_and_hang_are_retryable(close_at_once: bool) -> None:
    server = _SilentServer(close_at_once=close_at_once)
    store = _server_store(server.port, connect_timeout_s=0.5, timeout_s=0.5, query_timeout_s=0.5)
    try:
        with pytest.raises(StoreError) as info:
            store.insert(encode_batch([_record()], "t"))
        assert info.value.retryable
        with pytest.raises(StoreError) as info:
            store.query("SELECT 1")
        assert info.value.retryable
    finally:
        store.close()
        server.stop()


def test_bugs_are_told_apart_from_store_failures() -> None:
    from stratum_proxy.errors import StoreError
    from stratum_proxy.store.classify import is_known_failure

    assert is_known_failure(StoreError("x", retryable=False))
    assert is_known_failure(ConnectionResetError())
    assert is_known_failure(RuntimeError("Code: 241. DB::Exception: Memory limit"))
    assert not is_known_failure(TypeError("unsupported operand"))
    assert not is_known_failure(KeyError("column"))
