#!/usr/bin/env python3
"""Rows/s into the embedded store (chdb) from one thread, per insert encoding.

    python scripts/bench_store.py [--rows 200000] [--batch 10000] [--baseline-rows 20000]

Each method encodes and inserts the same records in batches (with a
deduplication token, as the writer does) into a fresh store, and the time
includes the encoding; CPU time counts every thread of the process (the
engine's too), which is steadier than wall time on a busy machine.
``jsonrows`` is what ``encode_batch`` + ``ChdbStore.insert`` do for plausible
rows (JSON rows streamed with ``send_insert``); ``rowbinary`` is its fallback
for rows JSON cannot carry exactly.  The others are alternatives that were
measured:

* ``values``      — INSERT ... VALUES with Python-formatted literals (the naive way);
* ``jsoneachrow`` — orjson-encoded JSONCompactEachRow carried in the query text;
* ``tsv``         — TabSeparated with Python escaping, in the query text.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stratum_proxy.store.backend import (
    JSON_ROWS,
    encode_batch,
    encode_row_binary,
    insert_columns_sql,
)
from stratum_proxy.store.chdb_store import ChdbStore
from stratum_proxy.store.record import ShareRecord, record_values
from stratum_proxy.store.schema import SchemaConfig, insert_settings, sql_string


def make_records(n: int, seed: int = 1) -> list[ShareRecord]:
    rng = random.Random(seed)
    t0 = time.time() - 3600.0  # recent: older rows would fall to the TTL
    return [
        ShareRecord(
            ts=t0 + i * 0.001,
            proxy_id="proxy-1",
            upstream="pool-a",
            protocol="sv1",
            channel_id=i % 500,
            worker=f"farm.rig{i % 500:04d}",
            miner_addr=f"10.0.{i % 250}.{i % 200}:4{i % 1000:03d}",
            job_id=f"{i // 300:x}",
            extranonce2=f"{rng.getrandbits(32):08x}",
            ntime="6650b2f1",
            nonce=f"{rng.getrandbits(32):08x}",
            version=0x20000000 | (rng.getrandbits(16) << 13),
            share_hash=f"{rng.getrandbits(200):064x}",
            share_difficulty=rng.expovariate(1 / 65536),
            pool_difficulty=65536.0,
            network_difficulty=8.3e13,
            status="accepted" if i % 50 else "rejected",
            reject_reason="" if i % 50 else "Low difficulty share",
            is_block=False,
            response_ms=rng.uniform(5, 80),
        )
        for i in range(n)
    ]


def _settings_clause(token: str) -> str:
    items = insert_settings(token).items()
    return ", ".join(f"{k} = {sql_string(v) if isinstance(v, str) else v}" for k, v in items)


def _tsv_field(value: object) -> str:
    if isinstance(value, str):
        return (
            value.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def insert_jsonrows(store: ChdbStore, batch: list[ShareRecord], token: str) -> None:
    encoded = encode_batch(batch, token)
    assert encoded.format == JSON_ROWS, "benchmark rows should take the fast path"
    store.insert(encoded)


def insert_rowbinary(store: ChdbStore, batch: list[ShareRecord], token: str) -> None:
    store.insert(encode_row_binary(batch, token))


def insert_values(store: ChdbStore, batch: list[ShareRecord], token: str) -> None:
    def literal(v: object) -> str:
        if isinstance(v, str):
            return sql_string(v)
        if isinstance(v, bool):
            return "1" if v else "0"
        return repr(v)

    rows = ",".join(
        "(fromUnixTimestamp64Milli("
        + str(round(r.ts * 1000))
        + ", 'UTC'),"
        + ",".join(literal(v) for v in record_values(r)[1:])
        + ")"
        for r in batch
    )
    head = insert_columns_sql(store.schema.insert_table)
    store.query(f"{head} SETTINGS {_settings_clause(token)} VALUES {rows}")


def insert_json(store: ChdbStore, batch: list[ShareRecord], token: str) -> None:
    # ts as a decimal string of seconds with 3 digits: DateTime64(3) parses it exactly.
    lines = b"\n".join(orjson.dumps([f"{r.ts:.3f}", *record_values(r)[1:]]) for r in batch).decode()
    head = insert_columns_sql(store.schema.insert_table)
    store.query(f"{head} SETTINGS {_settings_clause(token)} FORMAT JSONCompactEachRow\n{lines}")


def insert_tsv(store: ChdbStore, batch: list[ShareRecord], token: str) -> None:
    lines = "\n".join(
        f"{r.ts:.3f}\t" + "\t".join(_tsv_field(v) for v in record_values(r)[1:]) for r in batch
    )
    head = insert_columns_sql(store.schema.insert_table)
    store.query(f"{head} SETTINGS {_settings_clause(token)} FORMAT TabSeparated\n{lines}\n")


METHODS: dict[str, Callable[[ChdbStore, list[ShareRecord], str], None]] = {
    "jsonrows": insert_jsonrows,
    "rowbinary": insert_rowbinary,
    "jsoneachrow": insert_json,
    "tsv": insert_tsv,
    "values": insert_values,
}


def run(method: str, records: list[ShareRecord], batch_rows: int) -> tuple[float, float]:
    """(rows per wall second, process CPU microseconds per row incl. engine threads)."""
    with tempfile.TemporaryDirectory() as tmp:
        store = ChdbStore(Path(tmp), SchemaConfig())
        try:
            store.ensure_schema()
            insert = METHODS[method]
            start, cpu_start = time.perf_counter(), time.process_time()
            for i in range(0, len(records), batch_rows):
                insert(store, records[i : i + batch_rows], f"bench:{i}")
            elapsed = time.perf_counter() - start
            cpu = time.process_time() - cpu_start
            count = int(store.query("SELECT count() FROM mining.shares"))
        finally:
            store.close()
    if count != len(records):
        raise SystemExit(f"{method}: {count} rows stored, expected {len(records)}")
    return len(records) / elapsed, cpu / len(records) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument(
        "--baseline-rows", type=int, default=20_000, help="rows for the slower alternatives"
    )
    parser.add_argument("--methods", default=",".join(METHODS))
    args = parser.parse_args()
    records = make_records(args.rows)
    for method in args.methods.split(","):
        full = method in ("jsonrows", "rowbinary")
        n = args.rows if full else min(args.rows, args.baseline_rows)
        rate, cpu_us = run(method, records[:n], args.batch)
        print(
            f"{method:12s} {rate:12,.0f} rows/s  {cpu_us:6.2f} CPU us/row  "
            f"({n} rows, {args.batch}-row batches)"
        )
    print(f"({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the end)")


if __name__ == "__main__":
    main()
