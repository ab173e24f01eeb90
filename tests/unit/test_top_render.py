"""``stratum-proxy top``'s frame: a pure function of the API's answers."""

from __future__ import annotations

from typing import Any

from stratum_proxy.top import Snapshot, View, _screen, render, select_workers

NOW = 1_800_000_000.0


def worker(name: str, hashrate: float, accepted: int, *, down: bool = False) -> dict[str, Any]:
    return {
        "worker": name, "shares": accepted + 1, "accepted": accepted, "rejected": 1,
        "no_response": 0, "acceptance_pct": 100.0 * accepted / (accepted + 1),
        "best_share": 1234.0, "avg_pool_difficulty": 512.0, "hashrate": hashrate,
        "last_ts": NOW - (3600 if down else 5), "status": "down" if down else "up",
    }  # fmt: skip


FARM: dict[str, Any] = {
    "hours": 24,
    "totals": {
        "hashrate": 3.5e12, "total_shares": 64, "accepted_shares": 60, "rejected_shares": 3,
        "no_response_shares": 1, "acceptance_pct": 93.75, "best_share": 5e6,
    },
    "workers_up": 2, "workers_down": 1,
    "pools": [{"upstream": "main", "status": "up"}, {"upstream": "backup", "status": "untried"}],
    "pipeline": {"store_up": True, "last_write_ts": NOW - 2, "spool_rows": 0, "rows_shed": 0},
    "live": {"uptime_s": 90061.0, "connections": 3},
}  # fmt: skip
WORKERS = [
    worker("farm.b", 2e12, 40),
    worker("farm.a", 1e12, 19),
    worker("farm.c", 0, 1, down=True),
]


def test_the_frame_says_what_the_api_said() -> None:
    frame = render(Snapshot(FARM, WORKERS), View(), width=160, height=None, now=NOW)
    text = "\n".join(frame)
    assert "up 1d 1h 1m, 3 connections" in text and "main up, backup untried" in text
    assert "store up, last write 2s ago" in text
    assert "hashrate 3.5 TH/s" in text and "shares 64 (accepted 60, rejected 3" in text
    assert "acceptance 93.75 %" in text and "workers 2 up / 1 down" in text
    rows = [line for line in frame if line.startswith("farm.")]
    assert [r.split()[0] for r in rows] == ["farm.b", "farm.a", "farm.c"]  # hashrate, highest first
    assert rows[2].split()[1] == "down" and rows[0].split()[2:4] == ["2", "TH/s"]


def test_sort_reverse_filter_and_down_only() -> None:
    names = lambda view: [w["worker"] for w in select_workers(WORKERS, view)]  # noqa: E731
    assert names(View(sort="worker")) == ["farm.a", "farm.b", "farm.c"]
    assert names(View(sort="worker", reverse=True)) == ["farm.c", "farm.b", "farm.a"]
    assert names(View(sort="accepted")) == ["farm.b", "farm.a", "farm.c"]
    assert names(View(sort="last")) == ["farm.a", "farm.b", "farm.c"]  # the freshest first
    assert names(View(filter="FARM.A")) == ["farm.a"]
    assert names(View(down_only=True)) == ["farm.c"]
    view = View()
    for expected in ("worker", "accepted", "rejected", "acceptance", "last", "hashrate"):
        view.next_sort()
        assert view.sort == expected


def test_the_table_fits_the_terminal_and_long_names_are_cut() -> None:
    many = [worker(f"farm.rig{i:05d}-with-a-rather-long-name", i, i) for i in range(10_000)]
    frame = render(Snapshot(FARM, many), View(), width=100, height=30, now=NOW)
    assert len(frame) == 30 and all(len(line) <= 100 for line in frame)
    assert frame[-1].startswith("q quit")
    assert "10000 of 10000 workers" in "\n".join(frame)
    assert any("~" in line for line in frame)  # cut names say so


def test_an_empty_farm_and_an_api_error() -> None:
    empty = {**FARM, "totals": {**FARM["totals"], "total_shares": 0}, "live": None,
             "pipeline": None}  # fmt: skip
    frame = render(Snapshot(empty, []), View(), width=120, height=None, now=NOW)
    assert frame[-1] == "  no shares in the window"
    assert not any("connections" in line for line in frame)  # no daemon figures
    stale = Snapshot(FARM, WORKERS, error="the daemon's API did not answer")
    assert "! the daemon's API did not answer" in render(stale, View(), width=200, height=20,
                                                         now=NOW)[0]  # fmt: skip
    assert render(Snapshot(error="x"), View(), width=80, height=20, now=NOW) == [
        "stratum-proxy top  08:00:00 UTC  ! x"
    ]


def test_the_screen_overwrites_every_row_in_place() -> None:
    # No whole-screen clear (it flickers); each row cleared before, never after, its text.
    assert _screen(["ab", "c"], 4) == "\x1b[H\x1b[2Kab\n\x1b[2Kc\n\x1b[2K\n\x1b[2K"
    assert _screen(["a", "b", "c"], 2) == "\x1b[H\x1b[2Ka\n\x1b[2Kb"  # never scrolls
