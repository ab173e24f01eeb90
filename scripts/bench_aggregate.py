#!/usr/bin/env python3
"""Aggregate mode against passthrough, and a failover, with many slow miners.

    python scripts/bench_aggregate.py                       # 1,000 miners, a share every 3 s each
    python scripts/bench_aggregate.py --miners 300 --seconds 20

1. The same farm-like load (``--miners`` connections, one share every
   ``--share-interval`` seconds each) through the proxy in passthrough mode
   and then in aggregate mode, in one run: the proxy's CPU time per answered
   share (and their ratio), its RSS growth per miner, and the pool
   connections it used.
2. A failover in aggregate mode: pool A is killed (its listener and every
   connection closed) while the miners mine; reported are the time from the
   kill to each miner's first new job (p50 / p99 / max), the miners that lost
   their connection (target 0), and shares lost: submits never answered
   (target 0).  Shares in flight at the kill are answered with an error by
   the proxy (their rows say no_response): they are counted apart.

The proxy runs as its own process (``stratum-proxy run``) with the embedded
store; the test pools (``accept_any``: every submit answered without hashing)
and the miners run in this process.  The miners do not hash: the aggregate
difficulty is set so low that every nonce meets it, and every submit carries
a fresh nonce (duplicates would be refused).  Prints a table and a JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stratum_proxy.sim.pool import TestPool  # noqa: E402
from stratum_proxy.sim.pool_config import PoolConfig  # noqa: E402

HOST = "127.0.0.1"
# Every hash meets a difficulty this low (its target is beyond 2**256).
TINY = "1e-12"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


async def wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"proxy exited with code {proc.returncode}")
        try:
            _, writer = await asyncio.open_connection(HOST, port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise TimeoutError("proxy did not start listening")


def start_proxy(mode: str, pools: list[int], workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    exe = shutil.which("stratum-proxy")
    command = [exe] if exe else [sys.executable, "-m", "stratum_proxy.cli"]
    command += ["run", "--mode", mode, "--listen", f"{HOST}:{port}"]
    for i, pool in enumerate(pools):
        command += ["--pool", f"p{i}=stratum+tcp://{HOST}:{pool}"]
    command += [
        "--store", f"chdb:///{workdir}/db-{mode}", "--spool-dir", f"{workdir}/spool-{mode}",
        "--api-listen", "", "--log-level", "warning",
    ]  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "STRATUM_PROXY_AGGREGATE__POOL_USER": "farm1",
        "STRATUM_PROXY_AGGREGATE__MIN_DIFFICULTY": TINY,
        "STRATUM_PROXY_AGGREGATE__START_DIFFICULTY": TINY,
        "STRATUM_PROXY_AGGREGATE__MAX_DIFFICULTY": TINY,
        "STRATUM_PROXY_AGGREGATE__FAILBACK": "stay",
        "STRATUM_PROXY_LIMITS__POOL_CONNECTS_PER_S": "100000",
        "STRATUM_PROXY_LIMITS__POOL_CONNECT_BURST": "100000",
    }
    log = (workdir / f"proxy-{mode}.log").open("wb")
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    return proc, port


class Miner:
    """A miner that does not hash: subscribe, authorize, then a fresh share every interval."""

    def __init__(self, index: int, interval: float) -> None:
        self.index = index
        self.interval = interval
        self.sent = 0
        self.answered = 0
        self.errors: dict[str, int] = {}
        self.disconnected = False
        self.job: list[Any] | None = None
        self.job_seen_at = 0.0  # monotonic time of the last notify
        self._writer: asyncio.StreamWriter | None = None
        self._ready = asyncio.Event()
        self.en2_size = 4
        self._nonce = 0

    async def run(self, port: int, stop: asyncio.Event) -> None:
        try:
            reader, self._writer = await asyncio.open_connection(HOST, port, limit=1 << 22)
        except OSError:
            self.disconnected = True
            return
        self._send({"id": 1, "method": "mining.subscribe", "params": ["bench/1"]})
        self._send({"id": 2, "method": "mining.authorize", "params": [f"farm1.m{self.index}", "x"]})
        reading = asyncio.create_task(self._read(reader))
        try:
            await asyncio.wait_for(self._ready.wait(), 60)
            # Spread the miners over the interval, as a farm's shares are.
            await asyncio.sleep(self.interval * (self.index % 97) / 97)
            while not stop.is_set() and not self.disconnected:
                self._submit()
                await asyncio.sleep(self.interval)
        finally:
            await asyncio.sleep(1.0)  # answers still on their way
            reading.cancel()
            self._writer.close()

    def _send(self, message: dict[str, Any]) -> None:
        assert self._writer is not None
        self._writer.write(orjson.dumps(message) + b"\n")

    def _submit(self) -> None:
        if self.job is None:
            return
        self._nonce += 1
        self.sent += 1
        en2 = f"{self.index:0{2 * self.en2_size}x}"[-2 * self.en2_size :]
        params = [f"farm1.m{self.index}", self.job[0], en2, self.job[7], f"{self._nonce:08x}"]
        self._send({"id": 100 + self.sent, "method": "mining.submit", "params": params})

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while True:
            line = await reader.readline()
            if not line:
                self.disconnected = True
                return
            msg = orjson.loads(line)
            method = msg.get("method")
            if method == "mining.notify":
                self.job = msg["params"]
                self.job_seen_at = time.monotonic()
                self._ready.set()
            elif msg.get("id") == 1 and isinstance(msg.get("result"), list):
                self.en2_size = int(msg["result"][2])
            elif isinstance(msg.get("id"), int) and msg["id"] > 100:
                self.answered += 1
                if msg.get("error"):
                    code = str(msg["error"][0]) if isinstance(msg["error"], list) else "?"
                    self.errors[code] = self.errors.get(code, 0) + 1


async def load_phase(mode: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    pool = TestPool(PoolConfig(accept_any=True, record_judged=False, difficulty=1e-12))
    await pool.start()
    proc, port = start_proxy(mode, [pool.port], workdir)
    try:
        await wait_listening(port, proc)
        await asyncio.sleep(2.0)  # the store opens
        rss0 = rss_kib(proc.pid)
        stop = asyncio.Event()
        miners = [Miner(i, args.share_interval) for i in range(args.miners)]
        tasks = [asyncio.create_task(m.run(port, stop)) for m in miners]
        await asyncio.sleep(args.warmup)
        answered0, cpu0 = sum(m.answered for m in miners), cpu_seconds(proc.pid)
        await asyncio.sleep(args.seconds)
        answered1, cpu1 = sum(m.answered for m in miners), cpu_seconds(proc.pid)
        rss1 = rss_kib(proc.pid)
        upstreams = len(pool.sessions)
        stop.set()
        await asyncio.gather(*tasks)
        errors: dict[str, int] = {}
        for m in miners:
            for code, n in m.errors.items():
                errors[code] = errors.get(code, 0) + n
        shares = answered1 - answered0
        return {
            "mode": mode,
            "miners": args.miners,
            "shares_per_s": round(shares / args.seconds, 1),
            "cpu_us_per_share": round((cpu1 - cpu0) / max(1, shares) * 1e6, 1),
            "rss_kib_per_miner": round((rss1 - rss0) / args.miners, 2),
            "pool_connections": upstreams,
            "sent": sum(m.sent for m in miners),
            "answered": sum(m.answered for m in miners),
            "errors": errors,
            "disconnected": sum(m.disconnected for m in miners),
        }
    finally:
        proc.terminate()
        proc.wait(60)
        await pool.close()


async def failover_phase(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    config = PoolConfig(accept_any=True, record_judged=False, difficulty=1e-12)
    main, backup = TestPool(config), TestPool(config)
    await main.start()
    await backup.start()
    proc, port = start_proxy("aggregate", [main.port, backup.port], workdir)
    try:
        await wait_listening(port, proc)
        await asyncio.sleep(2.0)
        stop = asyncio.Event()
        miners = [Miner(i, args.share_interval) for i in range(args.miners)]
        tasks = [asyncio.create_task(m.run(port, stop)) for m in miners]
        await asyncio.sleep(args.warmup + args.share_interval)
        killed_at = time.monotonic()
        await main.close()  # listener and every connection gone
        await asyncio.sleep(max(5.0, args.share_interval * 2))
        waits = sorted(m.job_seen_at - killed_at for m in miners if m.job_seen_at > killed_at)
        stop.set()
        await asyncio.gather(*tasks)
        sent = sum(m.sent for m in miners)
        answered = sum(m.answered for m in miners)
        pool_errors = sum(m.errors.get("20", 0) for m in miners)

        def q(p: float) -> float | None:
            return round(waits[min(len(waits) - 1, int(p * len(waits)))], 3) if waits else None

        return {
            "miners": args.miners,
            "miners_with_new_work": len(waits),
            "new_work_p50_s": q(0.5),
            "new_work_p99_s": q(0.99),
            "new_work_max_s": round(waits[-1], 3) if waits else None,
            "disconnected": sum(m.disconnected for m in miners),
            "shares_lost": sent - answered,
            "in_flight_answered_as_error": pool_errors,
            "backup_connections": len(backup.sessions),
        }
    finally:
        proc.terminate()
        proc.wait(60)
        await backup.close()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="stratum-bench-agg-") as tmp:
        workdir = Path(tmp)
        passthrough = await load_phase("passthrough", args, workdir)
        aggregate = await load_phase("aggregate", args, workdir)
        failover = await failover_phase(args, workdir) if not args.no_failover else {}
    return {"passthrough": passthrough, "aggregate": aggregate, "failover": failover}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--miners", type=int, default=1000)
    parser.add_argument("--share-interval", type=float, default=3.0, help="seconds per miner")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured time per mode")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--no-failover", action="store_true")
    args = parser.parse_args()
    print("command:", " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]))
    result = asyncio.run(main_async(args))
    p, a = result["passthrough"], result["aggregate"]
    print(f"{'mode':12} {'shares/s':>9} {'CPU us/share':>13} {'KiB/miner':>10} {'pool conns':>11}")
    for row in (p, a):
        print(
            f"{row['mode']:12} {row['shares_per_s']:9.1f} {row['cpu_us_per_share']:13.1f} "
            f"{row['rss_kib_per_miner']:10.2f} {row['pool_connections']:11d}"
        )
    ratio = a["cpu_us_per_share"] / max(p["cpu_us_per_share"], 1e-9)
    print(f"aggregate / passthrough CPU per share: x{ratio:.2f}")
    print(f"refused: passthrough {p['errors'] or 'none'}, aggregate {a['errors'] or 'none'}")
    f = result["failover"]
    if f:
        print(
            f"failover: {f['miners_with_new_work']}/{f['miners']} miners had new work; "
            f"p50 {f['new_work_p50_s']} s, p99 {f['new_work_p99_s']} s, "
            f"max {f['new_work_max_s']} s; "
            f"disconnected {f['disconnected']}; shares lost {f['shares_lost']}; "
            f"in flight, answered as errors {f['in_flight_answered_as_error']}"
        )
    result["aggregate_cpu_ratio"] = round(ratio, 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
