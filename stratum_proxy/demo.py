"""``stratum-proxy demo``: a test pool, simulated CPU miners and the real proxy, for a minute.

Everything runs in this process on loopback: the test pool, the proxy (the
same code as ``stratum-proxy run``) recording into an embedded store, and
miners that hash for real at a tiny difficulty.  The live table is the miners'
view; the final report is read back from the store, as ``stratum-proxy stats``
would print it.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from stratum_proxy.daemon import install_event_loop_policy, serve
from stratum_proxy.errors import StratumProxyError
from stratum_proxy.logging import configure_logging
from stratum_proxy.settings import load_settings
from stratum_proxy.sim.demo import FarmConfig, render_table, run_demo
from stratum_proxy.store.reports import stats_report

_CLEAR = "\x1b[H\x1b[2J"


class _PipelineQuery:
    """The running daemon's store, seen through its writer thread."""

    def __init__(self, pipeline: Any) -> None:
        self._pipeline = pipeline

    def query(self, sql: str) -> bytes:
        return bytes(self._pipeline.query(sql))


def run_demo_command(*, miners: int, seconds: float, store: str | None) -> int:
    """Exit code 0 once every recorded row is in the store; 1 if the store never took them.

    A ``--store`` that another process holds is refused before anything starts
    (StoreBusyError).  The working directory (the proxy's log, and the store and
    spool unless ``--store`` names one) is removed at the end, whatever happens.
    """
    if store is not None:
        _check_not_held(store)
    workdir = Path(tempfile.mkdtemp(prefix="stratum-proxy-demo-"))
    try:
        store_url = store or f"chdb://{workdir}/db"
        # A store of the user's keeps its own spool (rows it has not taken yet stay
        # journaled next to it); a temporary store's spool goes with it.
        spool_dir = None if store else workdir / "spool"
        log_path = workdir / "proxy.log"
        install_event_loop_policy()
        try:
            with log_path.open("w") as log_file:
                configure_logging("info", "json", stream=log_file)
                code = asyncio.run(
                    _demo(miners, seconds, store_url, spool_dir, kept=store is not None)
                )
        except Exception:
            _print_log_tail(log_path)
            raise
        if code != 0:
            _print_log_tail(log_path)
        return code
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _check_not_held(store_url: str) -> None:
    """StoreBusyError naming the holder if a running proxy has the embedded store."""
    from stratum_proxy.store.lock import acquire_lock
    from stratum_proxy.store.url import ChdbUrl, parse_store_url

    parsed = parse_store_url(store_url)
    if isinstance(parsed, ChdbUrl):
        acquire_lock(parsed.path).release()


def _print_log_tail(log_path: Path, lines: int = 20) -> None:
    tail = log_path.read_text(errors="replace").splitlines()[-lines:]
    print("\nthe proxy's log ended with:", *tail, sep="\n", file=sys.stderr)


async def _demo(
    miners: int,
    seconds: float,
    store_url: str,
    spool_dir: Path | None,
    *,
    kept: bool,
) -> int:
    stop = asyncio.Event()
    ready: dict[str, Any] = {}
    proxy_task: asyncio.Task[int] | None = None

    async def start_proxy(pool_host: str, pool_port: int) -> tuple[str, int]:
        nonlocal proxy_task
        settings = load_settings(
            None,
            listen=["127.0.0.1:0"],
            pools=[f"demo-pool=stratum+tcp://{pool_host}:{pool_port}"],
            proxy_id="demo",
            **{
                "store.url": store_url,
                **({"store.spool_dir": spool_dir} if spool_dir is not None else {}),
                "store.linger_s": 0.5,
                "api.listen": "",
                "log.summary_interval_s": 10.0,
            },
        )
        proxy_task = asyncio.create_task(
            serve(settings, stop=stop, on_ready=lambda server, _api: ready.update(server=server))
        )
        while not ready:
            if proxy_task.done():
                await proxy_task  # its own error (StoreBusyError, ...) says why
                raise StratumProxyError("the proxy stopped before it was ready")
            await asyncio.sleep(0.02)
        host, port = ready["server"].addresses[0]
        return str(host), int(port)

    tty = sys.stdout.isatty()
    last_print = [0.0]

    def show(table: str) -> None:
        now = time.monotonic()
        if not tty and now - last_print[0] < 5.0:
            return  # piped: a table every 5 s, not a scrolling wall
        last_print[0] = now
        proxy = ready.get("server")
        footer = ""
        if proxy is not None:
            pipe = proxy.sink.statistics()
            footer = (
                f"\nproxy: {len(proxy.relays)} miner connections, "
                f"{pipe.get('rows_put', 0)} share rows recorded, "
                f"{pipe.get('rows_written', 0)} written to {store_url}"
            )
        print((_CLEAR if tty else "") + table + footer, flush=True)

    print(
        f"demo: test pool + {miners} CPU miners + stratum-proxy for {seconds:.0f} s ...", flush=True
    )
    try:
        final = await run_demo(
            start_proxy=start_proxy,
            config=FarmConfig(miners=miners),
            seconds=seconds,
            refresh=1.0,
            out=show,
        )
        print("\nWhat the miners saw at the end:\n" + render_table(final), flush=True)
        report = ""
        if ready:
            pipeline = ready["server"].sink
            await asyncio.to_thread(_wait_written, pipeline)
            report = await asyncio.to_thread(
                stats_report, _PipelineQuery(pipeline), 1.0, time.time()
            )
    finally:
        stop.set()
        code = await proxy_task if proxy_task is not None else 1
    written = bool(ready) and _all_written(ready["server"].sink)
    if code == 0 and not written:
        print(
            f"stratum-proxy: the demo's shares did not all reach the store {store_url}; "
            "see the proxy's log below",
            file=sys.stderr,
        )
        code = 1
    print("\nWhat the proxy recorded (read back from the store, as `stratum-proxy stats` shows):")
    print(report)
    if kept:
        print(
            "query it yourself:\n"
            f'  stratum-proxy query --store {store_url} "SELECT worker, status, count(), '
            'max(share_difficulty) FROM mining.shares GROUP BY worker, status ORDER BY worker"\n'
            f"  stratum-proxy stats --store {store_url} --hours 1"
        )
    else:
        print(
            "the demo's store was temporary and is removed now; to keep the shares and "
            "query them, run: stratum-proxy demo --store chdb://DIR"
        )
    return code


def _all_written(pipeline: Any) -> bool:
    stats = pipeline.statistics()
    return bool(stats.get("store_up")) and stats.get("rows_written", 0) >= stats.get("rows_put", 0)


def _wait_written(pipeline: Any, timeout_s: float = 10.0) -> None:
    """Until every recorded row reached the store (the report reads the store)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stats = pipeline.statistics()
        if stats.get("rows_written", 0) >= stats.get("rows_put", 0):
            return
        time.sleep(0.1)
