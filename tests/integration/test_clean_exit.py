"""Exits with the embedded engine open: rc 0 and no engine teardown error, every time.

chdb shuts its engine down from C++ static destructors after the interpreter
has finished; a thread still inside the engine then crashed the process
("Exception in global_context->shutdown(): The ShutdownTablesThreadPool is not
initialized", then rc 139).  Each case runs as a real process, several times.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers.daemon_process import free_port, wait_port

from stratum_proxy.sim.miner import MinerConfig, TestMiner
from stratum_proxy.sim.pool import TestPool
from stratum_proxy.sim.pool_config import PoolConfig

TEARDOWN_ERROR = b"Exception in global_context"

# The bench's last step: a stop gives up on a writer stuck in an insert (a store
# that hangs), the hang ends, and the process exits while the writer is
# inserting the backlog into the engine.
_ABANDONED_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from stratum_proxy.logging import configure_logging
    from stratum_proxy.store.backend import open_store
    from stratum_proxy.store.faults import HANG, FaultyStore, synthetic_record
    from stratum_proxy.store.pipeline import SharePipeline
    from stratum_proxy.store.settings import StoreSettings

    configure_logging("error", "json", stream=sys.stderr)
    tmp = Path(sys.argv[1])
    settings = StoreSettings(url=f"chdb://{tmp}/db", spool_dir=tmp / "spool", batch_rows=2000)
    stores = []

    def factory():
        stores.append(FaultyStore(open_store(settings.url, settings), HANG))
        return stores[-1]

    pipeline = SharePipeline(settings, proxy_id="exit", store_factory=factory)
    pipeline.start()
    for i in range(20000):
        pipeline.put(synthetic_record(i))
    while not stores or not stores[0].attempts:
        pass
    pipeline.close(timeout_s=0.5)
    stores[0].release()
    print("exiting", flush=True)
    """
)

# A thread in the middle of a long query on the writer's store at exit.
_QUERY_AT_EXIT = textwrap.dedent(
    """
    import contextlib, sys, threading, time
    from pathlib import Path
    from stratum_proxy.errors import StoreError
    from stratum_proxy.store.backend import open_store
    from stratum_proxy.store.settings import StoreSettings

    tmp = Path(sys.argv[1])
    settings = StoreSettings(url=f"chdb://{tmp}/db", spool_dir=tmp / "spool")
    store = open_store(settings.url, settings)
    store.ensure_schema()
    heavy = "SELECT count() FROM numbers(3000000000) WHERE sipHash64(number) % 7 = 3"

    def read():
        with contextlib.suppress(StoreError):  # cancelled at exit
            store.query(heavy)

    threading.Thread(target=read, daemon=True).start()
    time.sleep(0.3)
    print("exiting", flush=True)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("script", [_ABANDONED_WRITER, _QUERY_AT_EXIT], ids=["writer", "query"])
def test_exit_with_a_thread_inside_the_engine_is_clean(tmp_path: Path, script: str) -> None:
    for run in range(3):
        out = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / f"run{run}")],
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert out.returncode == 0, (run, out.returncode, out.stderr[-2000:])
        assert out.stdout == b"exiting\n"
        assert TEARDOWN_ERROR not in out.stderr
        assert b"dead_letter" not in out.stderr  # rows refused at exit stay in the spool


API_TOKEN = "clean-exit-token-51c2"


async def _api_query(port: int, sql: str) -> None:
    """A heavy query through the daemon's API, left running (the stop must cancel it)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = sql.encode()
    writer.write(
        b"POST /api/query HTTP/1.1\r\nHost: x\r\n"
        + f"Authorization: Bearer {API_TOKEN}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    try:
        await reader.read()
    finally:
        writer.close()


@pytest.mark.slow
async def test_daemon_start_stop_cycles_under_load_exit_0(tmp_path: Path) -> None:
    pool = TestPool(PoolConfig(answer_delay=0.01))
    await pool.start()
    env = dict(os.environ, STRATUM_PROXY_API__TOKEN=API_TOKEN)
    heavy = "SELECT count() FROM numbers(2000000000) WHERE sipHash64(number) % 7 = 3"
    try:
        for cycle in range(3):
            port, api_port = free_port(), free_port()
            log_path = tmp_path / f"proxy{cycle}.log"
            with log_path.open("wb") as log_file:
                proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "stratum_proxy.cli",
                        "run",
                        "--listen",
                        f"127.0.0.1:{port}",
                        "--pool",
                        f"stratum+tcp://127.0.0.1:{pool.port}",
                        "--store",
                        f"chdb://{tmp_path}/db",
                        "--spool-dir",
                        str(tmp_path / "spool"),
                        "--api-listen",
                        f"127.0.0.1:{api_port}",
                    ],
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            miners = [
                TestMiner(MinerConfig(workers=(f"c{cycle}w{i}",), follow_reconnect=False))
                for i in range(3)
            ]
            tasks: list[asyncio.Task[object]] = []
            try:
                await wait_port(port, proc)
                tasks = [asyncio.create_task(m.run("127.0.0.1", port)) for m in miners]
                for m in miners:
                    await m.wait_submits(3, timeout=30)
                if cycle % 2 == 0:  # every other stop with a heavy API query running
                    tasks.append(asyncio.create_task(_api_query(api_port, heavy)))
                    await asyncio.sleep(0.5)
                proc.send_signal(signal.SIGTERM)  # submits still in flight
                rc = await asyncio.to_thread(proc.wait, 30)
            finally:
                if proc.poll() is None:
                    proc.kill()
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            output = log_path.read_bytes()
            assert rc == 0, (cycle, rc, output[-2000:])
            assert TEARDOWN_ERROR not in output, output[-2000:]
            assert b"proxy_stopped" in output
    finally:
        await pool.close()
