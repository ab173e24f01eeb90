"""SIGKILL and SIGTERM of a real process mid-stream, then a restart on the same spool."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from stratum_proxy.store.backend import open_store
from stratum_proxy.store.pipeline import SharePipeline
from stratum_proxy.store.settings import StoreSettings
from stratum_proxy.store.spool_admin import drain_spool, spool_status

pytest.importorskip("chdb")

CHILD = Path(__file__).with_name("pipeline_child.py")
ROOT = Path(__file__).resolve().parents[2]


def start_child(spool: Path, url: str, rows: int, mode: str = "run") -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(CHILD), str(spool), url, str(rows), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )


def read_until(child: subprocess.Popen[str], rows: int) -> tuple[int, int]:
    """Read progress lines until ``rows`` were put; returns (put, durable index)."""
    assert child.stdout is not None
    put = durable = -1
    for line in child.stdout:
        kind, *values = line.split() or [""]
        if kind == "progress":
            put, durable = int(values[0]), int(values[1])
            if put >= rows:
                break
    return put, durable


def nonces_in_store(url: str) -> list[int]:
    settings = StoreSettings(url=url)
    store = open_store(url, settings)
    try:
        out = store.query("SELECT nonce FROM mining.shares ORDER BY nonce")
    finally:
        store.close()
    return [int(line, 16) for line in out.decode().split()]


def replay(url: str, spool: Path) -> dict[str, Any]:
    """Start a pipeline on the spool, let it replay everything, stop it."""
    settings = StoreSettings(url=url, spool_dir=spool, batch_rows=500, linger_s=0.05)
    pipeline = SharePipeline(settings, proxy_id="child")
    pipeline.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        stats = pipeline.statistics()
        if stats["store_up"] and stats["spool_rows"] == 0 and stats["queue_depth"] == 0:
            break
        time.sleep(0.05)
    pipeline.close()
    return pipeline.statistics()


def test_sigkill_mid_stream_loses_at_most_the_unsynced_tail(tmp_path: Path) -> None:
    url, spool = f"chdb://{tmp_path}/db", tmp_path / "spool"
    child = start_child(spool, url, 1_000_000)
    _put, durable = read_until(child, 6000)
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    stats = replay(url, spool)
    nonces = nonces_in_store(url)
    assert len(nonces) == len(set(nonces)), "a row was written twice"
    # Every row the child had seen fsynced is there; missing ones are only from the tail.
    present = set(nonces)
    assert all(i in present for i in range(durable + 1))
    highest = max(nonces)
    assert set(range(highest + 1)) - present == set()
    assert stats["rows_corrupt"] == 0


def test_sigkill_after_ack_before_trim_writes_no_duplicate(tmp_path: Path) -> None:
    url, spool = f"chdb://{tmp_path}/db", tmp_path / "spool"
    child = start_child(spool, url, 5000, mode="kill_after_ack=3")
    assert child.wait(30) == -signal.SIGKILL
    state_before = spool_status(spool)
    assert state_before["inflight"] is not None  # acknowledged, not yet recorded
    replay(url, spool)
    nonces = nonces_in_store(url)
    assert len(nonces) == len(set(nonces)), "the resent batch was not deduplicated"
    assert len(nonces) >= 1500


def test_sigterm_mid_stream_loses_nothing(tmp_path: Path) -> None:
    url, spool = f"chdb://{tmp_path}/db", tmp_path / "spool"
    child = start_child(spool, url, 1_000_000)
    read_until(child, 5000)
    child.send_signal(signal.SIGTERM)
    out, _ = child.communicate(timeout=20)
    assert child.returncode == 0
    closed = [line for line in out.splitlines() if line.startswith("closed")]
    put, shed = (int(v) for v in closed[0].split()[1:])
    assert shed == 0
    replay(url, spool)
    nonces = nonces_in_store(url)
    assert sorted(nonces) == list(range(put))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_dead_clickhouse_server_spools_everything_then_drains(tmp_path: Path) -> None:
    dead = f"clickhouse://default@127.0.0.1:{free_port()}/mining"
    spool = tmp_path / "spool"
    child = start_child(spool, dead, 3000)
    read_until(child, 3000)
    child.send_signal(signal.SIGTERM)
    child.communicate(timeout=20)
    assert child.returncode == 0
    assert spool_status(spool)["rows"] == 3000
    url = f"chdb://{tmp_path}/db"
    target = open_store(url, StoreSettings(url=url))
    try:
        assert drain_spool(spool, target) == 3000
    finally:
        target.close()
    assert sorted(nonces_in_store(url)) == list(range(3000))
