"""``stratum-proxy demo`` as a real process: its exit code, what it leaves behind, its table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "stratum_proxy.cli", "demo", "--miners", "1", *args],
        capture_output=True,
        text=True,
        timeout=90,
        env=dict(os.environ, TMPDIR=str(scratch)),  # where its temporary directory goes
        check=False,
    )


@pytest.mark.slow
def test_demo_runs_clean_and_leaves_nothing_behind(tmp_path: Path) -> None:
    out = _demo(tmp_path, "--seconds", "2")
    assert out.returncode == 0, out.stderr
    assert list((tmp_path / "scratch").iterdir()) == []
    # The miners' table (the report read back from the store has its own columns).
    headers = [line.split() for line in out.stdout.splitlines() if line.startswith("worker  ")]
    headers = [h for h in headers if "sent" in h]
    assert headers and all("cands" in h and "blocks" not in h for h in headers)
    assert "block candidates on the test pool's own chain" in out.stdout
    assert "Exception in global_context" not in out.stderr


@pytest.mark.slow
def test_demo_on_a_store_of_its_own_keeps_it(tmp_path: Path) -> None:
    store = f"chdb://{tmp_path}/db"
    out = _demo(tmp_path, "--seconds", "1", "--store", store)
    assert out.returncode == 0, out.stderr
    assert f"stratum-proxy query --store {store}" in out.stdout
    assert (tmp_path / "db").is_dir()
    assert list((tmp_path / "scratch").iterdir()) == []


def test_demo_on_a_held_store_fails_before_starting(tmp_path: Path) -> None:
    script = (
        "import sys,time\n"
        "from pathlib import Path\n"
        "from stratum_proxy.store.lock import acquire_lock\n"
        "lock = acquire_lock(Path(sys.argv[1]), None)\n"
        "print('locked', flush=True)\n"
        "time.sleep(60)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "db")], stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
        out = _demo(tmp_path, "--seconds", "2", "--store", f"chdb://{tmp_path}/db")
    finally:
        holder.kill()
        holder.wait()
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert f"pid {holder.pid}" in out.stderr and "stop it first" in out.stderr
    assert "demo: test pool" not in out.stdout  # refused before anything started
    assert list((tmp_path / "scratch").iterdir()) == []
