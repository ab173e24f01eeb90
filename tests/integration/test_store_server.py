"""The clickhouse:// backend.

Without a server, the part of its insert path that can run here does: the
columns it hands clickhouse-driver (decoded from either batch format) are
serialised by the driver's own column writers into a Native block, fed to the
real engine, and must give the very rows the embedded store's insert gives.

With ``CLICKHOUSE_URL`` set (e.g. clickhouse://default:@127.0.0.1:9000/mining),
the same schema / insert / dedup / query checks run against that server in a
throw-away database.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from clickhouse_driver import Client
from clickhouse_driver.block import ColumnOrientedBlock
from clickhouse_driver.bufferedwriter import BufferedSocketWriter
from clickhouse_driver.context import Context
from clickhouse_driver.streams.native import BlockOutputStream

from stratum_proxy.store.backend import (
    JSON_ROWS,
    ROW_BINARY,
    Store,
    decode_columns,
    encode_batch,
    encode_row_binary,
    insert_columns_sql,
    open_store,
)
from stratum_proxy.store.chdb_store import ChdbStore
from stratum_proxy.store.record import ShareRecord
from stratum_proxy.store.reports import worker_stats
from stratum_proxy.store.schema import SHARES_COLUMNS, SchemaConfig
from stratum_proxy.store.settings import StoreSettings


def rec(i: int, **change: object) -> ShareRecord:
    base = ShareRecord(
        ts=time.time() - 100 + i * 0.731,
        proxy_id="proxy-ü",
        upstream="pool 'a'",
        protocol="sv1",
        channel_id=i % 3,
        worker=["rig\t1", "rig\n2", "矿机3"][i % 3],
        miner_addr=f"10.0.0.{i}:4000",
        job_id=f"{i:x}",
        extranonce2=f"{i:08x}",
        ntime="6650b2f1",
        nonce=f"{i * 7919:08x}",
        version=0x20000000 + i,
        share_hash=f"{i:064x}",
        share_difficulty=0.1 * i + 1e-9,
        pool_difficulty=[512.0, 1 / 3][i % 2],
        network_difficulty=83_148_355_189_239.77,
        status=["accepted", "rejected", "no_response"][i % 3],
        reject_reason="" if i % 3 != 1 else 'Low "difficulty"\\share',
        is_block=i == 4,
        response_ms=1.1 * i,
        version_bits="1fffe000" if i % 2 else "",
    )
    return base._replace(**change)


class _Sink:
    """Collects what the driver would write to its socket."""

    def __init__(self) -> None:
        self.data = bytearray()

    def sendall(self, data: bytes) -> None:
        self.data += data


def _driver_native_block(columns: list[list[object]]) -> bytes:
    context = Context()
    # Revision 0: no block info / serialization header, i.e. the Native *format*.
    context.server_info = SimpleNamespace(
        used_revision=0, timezone="UTC", get_timezone=lambda: "UTC"
    )
    context.settings = {}
    context.client_settings = {**Client("localhost").client_settings, "strings_as_bytes": True}
    types = [(name, ctype.split(" CODEC")[0]) for name, ctype in SHARES_COLUMNS]
    sink = _Sink()
    writer = BufferedSocketWriter(sink, 1 << 20)
    BlockOutputStream(writer, context).write(ColumnOrientedBlock(types, columns))
    writer.flush()
    return bytes(sink.data)


@pytest.mark.parametrize(
    ("encode", "fmt"), [(encode_batch, JSON_ROWS), (encode_row_binary, ROW_BINARY)]
)
def test_driver_columns_store_the_same_rows_as_the_embedded_insert(
    tmp_path: Path, encode: Any, fmt: str
) -> None:
    store = open_store(f"chdb://{tmp_path}", StoreSettings())
    assert isinstance(store, ChdbStore)
    try:
        store.ensure_schema()
        store.query("CREATE TABLE mining.via_driver AS mining.shares")
        batch = encode([rec(i) for i in range(30)], "tok")
        assert batch.format == fmt
        store.insert(batch)
        inserter = store._session.send_insert(insert_columns_sql("mining.via_driver"), "Native")
        inserter.append(_driver_native_block(decode_columns(batch)))
        inserter.finish()
        order = "ORDER BY extranonce2 FORMAT RowBinary"
        direct = store.query(f"SELECT * FROM mining.shares {order}")
        via_driver = store.query(f"SELECT * FROM mining.via_driver {order}")
        assert len(direct) > 30 * 50 and via_driver == direct
    finally:
        store.close()


SERVER_URL = os.environ.get("CLICKHOUSE_URL", "")
needs_server = pytest.mark.skipif(
    not SERVER_URL, reason="set CLICKHOUSE_URL=clickhouse://user:pass@host:9000/db to test a server"
)


@pytest.fixture
def server_store() -> Iterator[Store]:
    database = f"stratum_test_{uuid.uuid4().hex[:8]}"
    base, _, query = SERVER_URL.partition("?")
    url = base.rsplit("/", 1)[0] + f"/{database}" + (f"?{query}" if query else "")
    store = open_store(url, StoreSettings())
    try:
        yield store
    finally:
        try:
            store.query(f"DROP DATABASE IF EXISTS {database}")
        finally:
            store.close()


def _db(store: Store) -> str:
    schema = store.schema  # type: ignore[attr-defined]
    assert isinstance(schema, SchemaConfig)
    return schema.database


@needs_server
@pytest.mark.clickhouse_server
def test_server_schema_insert_dedup_and_query(server_store: Store) -> None:
    db = _db(server_store)
    server_store.ensure_schema()
    server_store.ensure_schema()
    versions = server_store.query(f"SELECT count(), max(version) FROM {db}.schema_version FINAL")
    assert versions == b"3\t3\n"
    batch = encode_batch([rec(i) for i in range(30)], f"{db}:1:30")
    server_store.insert(batch)
    server_store.insert(batch)
    counts = server_store.query(
        f"SELECT (SELECT count() FROM {db}.shares), "
        f"(SELECT sum(share_count) FROM {db}.mv_hash_rate_stats)"
    )
    assert counts == b"30\t30\n"
    line = server_store.query(
        f"SELECT worker, reject_reason FROM {db}.shares "
        f"WHERE nonce = '{7919:08x}' FORMAT JSONEachRow"
    )
    assert orjson.loads(line) == {"worker": "rig\n2", "reject_reason": 'Low "difficulty"\\share'}
    stats = worker_stats(server_store, 1, time.time(), schema=server_store.schema)  # type: ignore[attr-defined]
    assert sum(s.shares for s in stats) == 30
