"""Share rows and small query helpers shared by the embedded-store tests."""

from __future__ import annotations

import time

import orjson

from stratum_proxy.store.chdb_store import ChdbStore
from stratum_proxy.store.record import ShareRecord

HASHES_PER_DIFF = 4294967296


def rec(**change: object) -> ShareRecord:
    base = ShareRecord(
        ts=time.time() - 60,
        proxy_id="proxy-1",
        upstream="pool-a",
        protocol="sv1",
        channel_id=1,
        worker="farm.rig1",
        miner_addr="10.0.0.2:40000",
        job_id="1f",
        extranonce2="0000002a",
        ntime="6650b2f1",
        nonce="1a2b3c4d",
        version=0x20000000,
        share_hash="0000000000000000000abc" + "0" * 42,
        share_difficulty=70_000.5,
        pool_difficulty=65_536.0,
        network_difficulty=83_148_355_189_239.77,
        status="accepted",
        reject_reason="",
        is_block=False,
        response_ms=23.25,
    )
    return base._replace(**change)


def rows(store: ChdbStore, sql: str) -> list[dict[str, object]]:
    out = store.query(
        sql + " FORMAT JSONEachRow SETTINGS output_format_json_quote_64bit_integers=0"
    )
    return [orjson.loads(line) for line in out.splitlines()]


def scalar(store: ChdbStore, sql: str) -> str:
    return store.query(sql).decode().strip()
