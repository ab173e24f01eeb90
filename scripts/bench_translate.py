#!/usr/bin/env python3
"""Shares/s through translate mode (SV1 miners -> SV2 pool) vs SV1 passthrough, and handshake time.

    python scripts/bench_translate.py [--connections 50] [--seconds 5] [--repeat 3]

One run, same load for every mode: the load generator (stratum_proxy.sim.loadgen,
closed loop) drives ``--connections`` SV1 connections through a proxy whose only
pool is

* passthrough: the SV1 test pool in accept-any mode;
* translate:   the SV2 test pool in accept-any mode with the largest target, so
  every share is forwarded and answered (per_miner and aggregated extranonce
  modes; the pool answers every share with its own SubmitShares.Success).

Three processes, the same for every mode: the proxy (this process, records into
a counting sink, so the store is not measured here: see bench_store.py), the
two test pools (one process, both listening the whole run), and the load
generator.  With two cores or more the proxy is pinned to one core and the
pools and the load generator to the others, so what a mode costs the proxy is
what limits it: the SV2 pool's own Noise and codec work per share is not charged
to translate mode, nor the SV1 pool's work to passthrough.

Printed per mode: shares/s and its ratio to passthrough measured in the same
run (``vs_passthrough``), and the CPU time (user + system, every thread) each
process spent per answered share in the measured window
(``proxy_cpu_us_per_share``, ``pools_...``, ``load_...``; ``cpu_vs_passthrough``
is passthrough's proxy figure over this mode's, so 1.0 means "as cheap as
passthrough") with the share of its core it kept busy (``*_cpu_busy``, 1.0: a
whole core).  CPU time moves far less than shares/s on a shared machine.
``--repeat N`` runs everything N times and adds the median and range of each
figure.  Every share the load sends is forwarded to the pool, answered by it and
recorded (``rows_by_status``).

Handshake time is the median of ``--handshakes`` Noise NX handshakes, in memory
(crypto only) and over loopback until SetupConnection.Success (against a pool
in this process).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.connection import Connection
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

HOST = "127.0.0.1"
MODES = ("passthrough", "translate_per_miner", "translate_aggregated")
# The pools' process is forked before any event loop runs; the load generator is
# started while the proxy's loop runs, so it is spawned (forking a running loop is unsafe).
FORK = mp.get_context("fork")
SPAWN = mp.get_context("spawn")


class CountingSink:
    def __init__(self) -> None:
        self.rows = 0
        self.by_status: dict[str, int] = {}

    def put(self, record: ShareRecord) -> None:
        self.rows += 1
        self.by_status[record.status] = self.by_status.get(record.status, 0) + 1


def core_plan() -> tuple[set[int], set[int]]:
    """(the proxy's cores, the pools' and load generator's), disjoint when possible."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return set(cores), set(cores)
    return {cores[0]}, set(cores[1:])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (0.0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the pools' process ---------------------------------------------------------------


def pools_process(conn: Connection, cores: set[int]) -> None:
    """Both test pools, listening until the parent sends anything."""
    os.sched_setaffinity(0, cores)
    configure_logging("error", "console")

    async def main() -> None:
        sv1 = TestPool(PoolConfig(accept_any=True, record_judged=False))
        # Difficulty so small that the target is the largest one: every share is forwarded.
        sv2 = Sv2TestPool(Sv2PoolConfig(accept_any=True, record_judged=False, difficulty=1e-12))
        await sv1.start(HOST, 0)
        await sv2.start(HOST, 0)
        conn.send({"sv1": f"sv1=stratum+tcp://{sv1.host}:{sv1.port}", "sv2": sv2.url("sv2")})
        await asyncio.to_thread(conn.recv)
        await sv1.close()
        await sv2.close()

    run_fast(main())


# --- the load generator's process ---------------------------------------------------------


def load_process(
    config: LoadConfig, cores: set[int], pids: dict[str, int]
) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    """The load's summary, and each pid's CPU seconds at the window's start and end."""
    os.sched_setaffinity(0, cores)
    cpu: dict[str, dict[str, float]] = {}

    pids = {**pids, "load": os.getpid()}

    def on_window(phase: str) -> None:
        cpu[phase] = {name: cpu_seconds(pid) for name, pid in pids.items()}

    return run_load_sync(config, on_window), cpu


async def _measure(
    pool_url: str, args: argparse.Namespace, cores: set[int], pools_pid: int, **overrides: Any
) -> dict[str, Any]:
    settings = load_settings(
        None, listen=[f"{HOST}:0"], pools=[pool_url], proxy_id="bench", **overrides
    )
    sink = CountingSink()
    server = ProxyServer(settings, sink, get_logger())
    await server.start()
    host, port = server.addresses[0]
    load = LoadConfig(
        host=host, port=port, connections=args.connections, seconds=args.seconds, warmup=1.0
    )
    pids = {"proxy": os.getpid(), "pools": pools_pid}
    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=SPAWN) as pool:
            summary, cpu = await asyncio.get_running_loop().run_in_executor(
                pool, load_process, load, cores, pids
            )
    finally:
        await server.shutdown()
    result: dict[str, Any] = {**summary, "rows": sink.rows, "rows_by_status": sink.by_status}
    answered = int(summary["answered"])
    if answered and {"start", "end"} <= cpu.keys():
        for name in cpu["start"]:
            used = cpu["end"][name] - cpu["start"][name]
            result[f"{name}_cpu_us_per_share"] = round(used / answered * 1e6, 2)
            # 1.0: a whole core busy all the window (the proxy's limit when pinned).
            result[f"{name}_cpu_busy"] = round(used / float(summary["seconds"]), 3)
    return result


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


async def one_run(
    args: argparse.Namespace, urls: dict[str, str], cores: set[int], pools_pid: int
) -> dict[str, Any]:
    setups: dict[str, tuple[str, dict[str, Any]]] = {
        "passthrough": (urls["sv1"], {}),
        "translate_per_miner": (urls["sv2"], {}),
        "translate_aggregated": (urls["sv2"], {"sv2.extranonce_mode": "aggregated"}),
    }
    results = {}
    for name in args.modes:
        url, overrides = setups[name]
        results[name] = await _measure(url, args, cores, pools_pid, **overrides)
    base = results.get("passthrough")
    for name in MODES[1:]:
        mode = results.get(name)
        if base is None or mode is None:
            continue
        mode["vs_passthrough"] = round(mode["shares_per_s"] / (base["shares_per_s"] or 1.0), 3)
        if "proxy_cpu_us_per_share" in mode and "proxy_cpu_us_per_share" in base:
            ratio = base["proxy_cpu_us_per_share"] / (mode["proxy_cpu_us_per_share"] or 1.0)
            mode["cpu_vs_passthrough"] = round(ratio, 3)
    return results


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median and range of every ratio and figure over the runs."""
    out: dict[str, Any] = {}
    for name in MODES:
        keys = [
            "shares_per_s",
            "proxy_cpu_us_per_share",
            "pools_cpu_us_per_share",
            "load_cpu_us_per_share",
        ]
        if name != "passthrough":
            keys += ["vs_passthrough", "cpu_vs_passthrough"]
        out[name] = {}
        for key in keys:
            values = [run[name][key] for run in runs if key in run.get(name, {})]
            if values:
                out[name][key] = {
                    "median": round(statistics.median(values), 3),
                    "min": min(values),
                    "max": max(values),
                }
    return out


async def main(
    args: argparse.Namespace, urls: dict[str, str], cores: set[int], pools_pid: int
) -> dict[str, Any]:
    runs = [await one_run(args, urls, cores, pools_pid) for _ in range(args.repeat)]
    result = runs[0] if args.repeat == 1 else {"runs": runs, "summary": summarise(runs)}
    result["handshake_ms_median"] = {
        "in_memory": round(_memory_handshakes(args.handshakes), 3),
        "loopback_to_setup_success": round(await _loopback_handshakes(args.handshakes // 4), 3),
    }
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    proxy_cores, other_cores = core_plan()
    parent_end, child_end = FORK.Pipe()
    pools = FORK.Process(target=pools_process, args=(child_end, other_cores), daemon=True)
    pools.start()
    try:
        if not parent_end.poll(60):
            raise TimeoutError("the pools' process did not start")
        urls = parent_end.recv()
        os.sched_setaffinity(0, proxy_cores)
        assert pools.pid is not None
        result = run_fast(main(args, urls, other_cores, pools.pid))
    finally:
        if pools.is_alive():
            parent_end.send("stop")
            pools.join(5)
        if pools.is_alive():
            pools.terminate()
            pools.join(5)
    result["cores"] = {"proxy": sorted(proxy_cores), "pools_and_load": sorted(other_cores)}
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--handshakes", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--modes", nargs="+", choices=MODES, default=list(MODES), help="(profiling) only these"
    )
    configure_logging("error", "console")
    print(orjson.dumps(run(parser.parse_args()), option=orjson.OPT_INDENT_2).decode())
