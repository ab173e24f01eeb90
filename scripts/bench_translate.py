#!/usr/bin/env python3
"""Shares/s through translate mode (SV1 miners -> SV2 pool) vs SV1 passthrough, and handshake time.

    python scripts/bench_translate.py [--connections 50] [--seconds 5] [--handshakes 200]

One run, same load for both modes: the load generator (stratum_proxy.sim.loadgen,
closed loop, in a separate process so it does not share the proxy's core) drives
``--connections`` SV1 connections through a proxy whose only pool is

* passthrough: the SV1 test pool in accept-any mode;
* translate:   the SV2 test pool in accept-any mode with the largest target, so
  every share is forwarded (per_miner and aggregated extranonce modes).

The pools run in the proxy's process (they are cheap in accept-any mode); records
go to a counting sink, so the store is not measured here (see bench_store.py).
Handshake time is the median of ``--handshakes`` Noise NX handshakes, in memory
(crypto only) and over loopback until SetupConnection.Success.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stratum_proxy.logging import configure_logging, get_logger
from stratum_proxy.proxy.server import ProxyServer
from stratum_proxy.settings import load_settings
from stratum_proxy.sim.loadgen import LoadConfig, run_fast, run_load_sync
from stratum_proxy.sim.pool import TestPool
from stratum_proxy.sim.pool_config import PoolConfig
from stratum_proxy.sim.sv2_pool import Sv2PoolConfig, Sv2TestPool
from stratum_proxy.sim.sv2_pool_config import TEST_AUTHORITY_SECRET
from stratum_proxy.store.record import ShareRecord
from stratum_proxy.sv2.client import Sv2Client
from stratum_proxy.sv2.crypto import xonly_pubkey
from stratum_proxy.sv2.noise import NoiseInitiator, NoiseResponder


class CountingSink:
    def __init__(self) -> None:
        self.rows = 0
        self.by_status: dict[str, int] = {}

    def put(self, record: ShareRecord) -> None:
        self.rows += 1
        self.by_status[record.status] = self.by_status.get(record.status, 0) + 1


async def _measure(pool_url: str, args: argparse.Namespace, **overrides: Any) -> dict[str, Any]:
    settings = load_settings(
        None, listen=["127.0.0.1:0"], pools=[pool_url], proxy_id="bench", **overrides
    )
    sink = CountingSink()
    server = ProxyServer(settings, sink, get_logger())
    await server.start()
    host, port = server.addresses[0]
    load = LoadConfig(
        host=host, port=port, connections=args.connections, seconds=args.seconds, warmup=1.0
    )
    try:
        with ProcessPoolExecutor(max_workers=1) as pool:
            summary = await asyncio.get_running_loop().run_in_executor(pool, run_load_sync, load)
    finally:
        await server.shutdown()
    return {**summary, "rows": sink.rows, "rows_by_status": sink.by_status}


def _memory_handshakes(count: int) -> float:
    authority = TEST_AUTHORITY_SECRET
    times = []
    for _ in range(count):
        started = time.perf_counter()
        now = time.time()
        initiator = NoiseInitiator(xonly_pubkey(authority), now, os.urandom)
        responder = NoiseResponder(authority, 3600, now, os.urandom)
        answer = responder.receive(initiator.first_message())
        assert answer is not None
        assert initiator.receive(answer[0]) is not None
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


async def _loopback_handshakes(count: int) -> float:
    pool = Sv2TestPool()
    await pool.start()
    times = []
    try:
        for _ in range(count):
            started = time.perf_counter()
            reader, writer = await asyncio.open_connection(pool.host, pool.port)
            client = Sv2Client(
                authority_pubkey=xonly_pubkey(TEST_AUTHORITY_SECRET),
                now=time.time(),
                rng=os.urandom,
                endpoint_host=pool.host,
                endpoint_port=pool.port,
            )
            while client.state != "ready":
                writer.write(client.data_to_send())
                client.receive_data(await reader.read(65536), time.time())
            times.append(time.perf_counter() - started)
            writer.close()
    finally:
        await pool.close()
    return statistics.median(times) * 1000


async def main(args: argparse.Namespace) -> dict[str, Any]:
    sv1 = TestPool(PoolConfig(accept_any=True, record_judged=False))
    # Difficulty so small that the target is the largest one: every share is forwarded.
    sv2 = Sv2TestPool(Sv2PoolConfig(accept_any=True, record_judged=False, difficulty=1e-12))
    await sv1.start()
    await sv2.start()
    try:
        results = {
            "passthrough": await _measure(f"sv1=stratum+tcp://{sv1.host}:{sv1.port}", args),
            "translate_per_miner": await _measure(sv2.url("sv2"), args),
            "translate_aggregated": await _measure(
                sv2.url("sv2"), args, **{"sv2.extranonce_mode": "aggregated"}
            ),
        }
    finally:
        await sv1.close()
        await sv2.close()
    base = results["passthrough"]["shares_per_s"] or 1.0
    for name in ("translate_per_miner", "translate_aggregated"):
        results[name]["vs_passthrough"] = round(results[name]["shares_per_s"] / base, 3)
    results["handshake_ms_median"] = {
        "in_memory": round(_memory_handshakes(args.handshakes), 3),
        "loopback_to_setup_success": round(await _loopback_handshakes(args.handshakes // 4), 3),
    }
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--handshakes", type=int, default=200)
    configure_logging("error", "console")
    result = run_fast(main(parser.parse_args()))
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
