#!/usr/bin/env python3
"""SV2 miners against SV1 miners (passthrough and aggregate) through one proxy, same load.

    python scripts/bench_sv2_miners.py --miners 200 --share-interval 0.1 --seconds 20 --idle 2000

One proxy process listens for SV1 miners in passthrough mode, for SV1 miners
in aggregate mode and for SV2 miners (an ``sv2=`` listener with its own
authority key; half the miners on standard channels, half on extended); all
are served by the same test pool (``accept_any``: answered without hashing) at
a difficulty every hash meets, so the miners need not hash and every share is
forwarded and answered.  The phases run one after the other in the same run,
each with ``--miners`` miners sending one share per ``--share-interval``
seconds (an open loop: the same offered load).  ``--idle`` idle connections
of each kind are held first, against a proxy process of their own (SV2:
handshake, setup and an open channel).

The store grows with every phase and its background work with it, which
would charge a later phase more: ``--rounds N`` runs the phases N times,
every other round in reverse order, and reports each mode's median.

Printed: shares/s answered, the proxy's CPU time per share (its /proc
counters), and each mode's CPU per share as a ratio of passthrough's measured
in the same run.  The proxy serves every miner on one core, so its share rate
at saturation is the inverse of its CPU per share: "passthrough / mode" is
the mode's throughput as a fraction of passthrough's.  Also the SV2
connect-to-open-channel time (handshake, SetupConnection, channel) and RSS per
idle connection.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import bench_aggregate as sv1  # noqa: E402  (the non-hashing SV1 miner and /proc readers)

from stratum_proxy.sim.pool import TestPool  # noqa: E402
from stratum_proxy.sim.pool_config import PoolConfig  # noqa: E402
from stratum_proxy.sim.sv2_miner import ACCEPTED, Sv2MinerConfig, Sv2TestMiner  # noqa: E402
from stratum_proxy.sv2.keys import decode_public_key, generate_keypair  # noqa: E402

HOST = sv1.HOST


def start_proxy(
    pool_port: int, workdir: Path, profile: str = ""
) -> tuple[subprocess.Popen[bytes], dict[str, int], bytes]:
    secret, public = generate_keypair(os.urandom)
    key = workdir / "authority.key"
    key.write_text(f"secret: {secret}\npublic: {public}\n")
    key.chmod(0o600)
    ports = {mode: sv1.free_port() for mode in ("passthrough", "aggregate", "sv2")}
    exe = shutil.which("stratum-proxy")
    command = [exe] if exe else [sys.executable, "-m", "stratum_proxy.cli"]
    if profile:  # the proxy under cProfile (slower: for where the time goes, not figures)
        command = [sys.executable, "-m", "cProfile", "-o", profile, "-m", "stratum_proxy.cli"]
    command += [
        "run", "--mode", "aggregate",
        "--listen", f"passthrough={HOST}:{ports['passthrough']}",
        "--listen", f"aggregate={HOST}:{ports['aggregate']}",
        "--listen-sv2", f"{HOST}:{ports['sv2']}", "--authority-key-file", str(key),
        "--pool", f"p0=stratum+tcp://{HOST}:{pool_port}",
        "--store", f"chdb:///{workdir}/db", "--spool-dir", f"{workdir}/spool",
        "--api-listen", "", "--log-level", "warning",
    ]  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "STRATUM_PROXY_AGGREGATE__POOL_USER": "farm1",
        "STRATUM_PROXY_AGGREGATE__MIN_DIFFICULTY": sv1.TINY,
        "STRATUM_PROXY_AGGREGATE__START_DIFFICULTY": sv1.TINY,
        "STRATUM_PROXY_AGGREGATE__MAX_DIFFICULTY": sv1.TINY,
        "STRATUM_PROXY_LIMITS__POOL_CONNECTS_PER_S": "100000",
        "STRATUM_PROXY_LIMITS__POOL_CONNECT_BURST": "100000",
        "STRATUM_PROXY_SV2__HANDSHAKE_TIMEOUT_S": "120",
    }
    log = (workdir / "proxy.log").open("wb")
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    return proc, ports, decode_public_key(public)


async def sv1_phase(port: int, pid: int, args: argparse.Namespace) -> dict[str, Any]:
    stop = asyncio.Event()
    miners = [sv1.Miner(i, args.share_interval) for i in range(args.miners)]
    tasks = [asyncio.create_task(m.run(port, stop)) for m in miners]
    await asyncio.sleep(args.warmup)
    answered0, cpu0 = sum(m.answered for m in miners), sv1.cpu_seconds(pid)
    await asyncio.sleep(args.seconds)
    answered1, cpu1 = sum(m.answered for m in miners), sv1.cpu_seconds(pid)
    stop.set()
    await asyncio.gather(*tasks)
    shares = answered1 - answered0
    return {
        "shares_per_s": round(shares / args.seconds, 1),
        "cpu_us_per_share": round((cpu1 - cpu0) / max(1, shares) * 1e6, 1),
        "errors": sum(sum(m.errors.values()) for m in miners),
    }


def _answered(miners: list[Sv2TestMiner]) -> int:
    return sum(1 for m in miners for s in m.submits if s.verdict is not None)


async def sv2_phase(port: int, pid: int, key: bytes, args: argparse.Namespace) -> dict[str, Any]:
    miners = [
        Sv2TestMiner(
            Sv2MinerConfig(authority_key=key, channel="extended" if i % 2 else "standard",
                           user_identity=f"farm1.s{i}", interval=args.share_interval,
                           duration=args.warmup + args.seconds + 1, answer_timeout=2.0)
        )
        for i in range(args.miners)
    ]  # fmt: skip
    tasks = [asyncio.create_task(m.run(HOST, port)) for m in miners]
    await asyncio.sleep(args.warmup)
    answered0, cpu0 = _answered(miners), sv1.cpu_seconds(pid)
    await asyncio.sleep(args.seconds)
    answered1, cpu1 = _answered(miners), sv1.cpu_seconds(pid)
    await asyncio.gather(*tasks)
    shares = answered1 - answered0
    opened = [m.opened_after for m in miners if m.opened_after is not None]
    return {
        "shares_per_s": round(shares / args.seconds, 1),
        "cpu_us_per_share": round((cpu1 - cpu0) / max(1, shares) * 1e6, 1),
        "errors": sum(1 for m in miners for s in m.submits if s.verdict not in (None, ACCEPTED)),
        "session_errors": sum(len(m.errors) for m in miners),
        "open_channel_p50_ms": round(statistics.median(opened) * 1000, 1) if opened else None,
        "open_channel_max_ms": round(max(opened) * 1000, 1) if opened else None,
    }


async def idle_phase(
    sv1_port: int, sv2_port: int, pid: int, key: bytes, count: int
) -> dict[str, Any]:
    rss0 = sv1.rss_kib(pid)
    stop = asyncio.Event()
    idle_sv1 = [sv1.Miner(i, 3600.0) for i in range(count)]  # subscribed, never submit
    tasks = [asyncio.create_task(m.run(sv1_port, stop)) for m in idle_sv1]
    started = time.monotonic()
    while sum(m.job is not None for m in idle_sv1) < count and time.monotonic() - started < 120:
        await asyncio.sleep(0.5)
    await asyncio.sleep(2)
    rss1 = sv1.rss_kib(pid)
    idle_sv2 = [
        Sv2TestMiner(Sv2MinerConfig(authority_key=key, idle=True, user_identity=f"farm1.i{i}"))
        for i in range(count)
    ]
    started = time.monotonic()
    sv2_tasks = [asyncio.create_task(m.run(HOST, sv2_port)) for m in idle_sv2]
    while sum(m.opened_after is not None for m in idle_sv2) < count:
        if time.monotonic() - started > 120:
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(2)
    rss2 = sv1.rss_kib(pid)
    opened = sum(m.opened_after is not None for m in idle_sv2)
    for m in idle_sv2:
        m.stop()
    stop.set()
    for task in tasks:
        task.cancel()  # they sleep until their first share
    await asyncio.gather(*tasks, *sv2_tasks, return_exceptions=True)
    return {
        "connections": count,
        "sv2_opened": opened,
        "sv1_kib_per_connection": round((rss1 - rss0) / count, 2),
        "sv2_kib_per_connection": round((rss2 - rss1) / max(1, opened), 2),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"miners": args.miners, "share_interval": args.share_interval}
    if args.idle:
        # A proxy of its own: RSS grows from a fresh process (freed pages would blur
        # it later), and thousands of connections come and gone do not colour the
        # load phases' figures.
        async with proxy_for_bench(args) as (proc, ports, key):
            result["idle"] = await idle_phase(
                ports["aggregate"], ports["sv2"], proc.pid, key, args.idle
            )
    if args.modes:
        async with proxy_for_bench(args) as (proc, ports, key):
            await load_phases(args, proc, ports, key, result)
    return result


@contextlib.asynccontextmanager
async def proxy_for_bench(
    args: argparse.Namespace,
) -> AsyncIterator[tuple[subprocess.Popen[bytes], dict[str, int], bytes]]:
    """A fresh proxy process and its test pool, listening, its store open."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-sv2-"))
    pool = TestPool(PoolConfig(accept_any=True, record_judged=False, difficulty=1e-12))
    await pool.start()
    proc, ports, key = start_proxy(pool.port, workdir, args.profile)
    try:
        for port in ports.values():
            await sv1.wait_listening(port, proc)
        await asyncio.sleep(2.0)  # the store opens
        yield proc, ports, key
    finally:
        proc.terminate()
        proc.wait(60)
        await pool.close()
        shutil.rmtree(workdir, ignore_errors=True)


async def load_phases(
    args: argparse.Namespace,
    proc: subprocess.Popen[bytes],
    ports: dict[str, int],
    key: bytes,
    result: dict[str, Any],
) -> None:
    """The load phases, ``--rounds`` times (every other round reversed): medians."""
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in args.modes}
    for round_ in range(args.rounds):
        for mode in args.modes if round_ % 2 == 0 else args.modes[::-1]:
            if mode == "sv2":
                runs[mode].append(await sv2_phase(ports[mode], proc.pid, key, args))
            else:
                runs[mode].append(await sv1_phase(ports[mode], proc.pid, args))
    for mode, phases in runs.items():
        # The phase with the median CPU per share stands for the mode.
        ranked = sorted(phases, key=lambda r: r["cpu_us_per_share"])
        cpu_runs = [r["cpu_us_per_share"] for r in phases]
        result[mode] = {**ranked[len(ranked) // 2], "cpu_us_per_share_runs": cpu_runs}
    base = result.get("passthrough", {}).get("cpu_us_per_share")
    for mode in ("aggregate", "sv2"):
        if base is None or mode not in result:
            continue
        # Throughput at saturation relative to passthrough (one core: 1 / CPU per share).
        result[mode]["vs_passthrough"] = round(base / max(0.1, result[mode]["cpu_us_per_share"]), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--miners", type=int, default=200)
    parser.add_argument("--share-interval", type=float, default=0.1, help="seconds per miner")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--idle", type=int, default=2000, help="idle connections of each kind")
    parser.add_argument(
        "--modes", nargs="+", default=["passthrough", "aggregate", "sv2"],
        choices=["passthrough", "aggregate", "sv2"], help="load phases to run",
    )  # fmt: skip
    parser.add_argument("--rounds", type=int, default=1, help="phase rounds (median reported)")
    parser.add_argument("--profile", default="", help="write the proxy's cProfile stats here")
    result = asyncio.run(main_async(parser.parse_args()))
    for mode in [m for m in ("passthrough", "aggregate", "sv2") if m in result]:
        r = result[mode]
        ratio = f", {r['vs_passthrough']}x passthrough" if "vs_passthrough" in r else ""
        runs = r["cpu_us_per_share_runs"]
        spread = f" (runs {min(runs)}-{max(runs)})" if len(runs) > 1 else ""
        print(f"{mode}: {r['shares_per_s']} shares/s answered, proxy CPU "
              f"{r['cpu_us_per_share']} us/share{spread}{ratio}")  # fmt: skip
    if "sv2" in result:
        sv2 = result["sv2"]
        print(f"SV2 connect to open channel: p50 {sv2['open_channel_p50_ms']} ms, "
              f"max {sv2['open_channel_max_ms']} ms")  # fmt: skip
    if "idle" in result:
        idle = result["idle"]
        print(f"idle: {idle['connections']} each; RSS per connection SV1 "
              f"{idle['sv1_kib_per_connection']} KiB, SV2 {idle['sv2_kib_per_connection']} KiB "
              f"({idle['sv2_opened']} SV2 channels open)")  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
