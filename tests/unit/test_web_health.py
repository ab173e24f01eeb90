"""/healthz's judgement, one reason at a time (a pure function: no clock, no server)."""

from __future__ import annotations

from typing import Any

from stratum_proxy.settings import ApiSettings
from stratum_proxy.web.health import judge_health

NOW = 1_800_000_000.0
API = ApiSettings(
    health_write_stale_s=60, health_deadletter_window_s=300, health_spool_fraction=0.5
)
SPOOL_MAX = 1000


def proxy(**over: Any) -> dict[str, Any]:
    return {"uptime_s": 3600.0, "pools": {"main": {"up": True}, "backup": {"up": False}}, **over}


def pipeline(**over: Any) -> dict[str, Any]:
    healthy = {
        "queue_depth": 0,
        "spool_rows": 0,
        "spool_bytes": 100,
        "store_up": 1,
        "last_write_ts": NOW - 5,
        "last_dead_letter_ts": None,
        "rows_dead_lettered": 0,
        "insert_running_s": None,
    }
    return {**healthy, **over}


def judge(p: dict[str, Any], q: dict[str, Any]) -> list[str]:
    return judge_health(p, q, api=API, spool_max_bytes=SPOOL_MAX, now=NOW)


def words(reasons: list[str]) -> list[str]:
    return [r.split(":", 1)[0] for r in reasons]


def test_healthy() -> None:
    assert judge(proxy(), pipeline()) == []
    # Idle: nothing waiting, the last write long ago is fine.
    assert judge(proxy(), pipeline(last_write_ts=NOW - 86400)) == []
    # Just started, nothing written yet: fine for a while.
    assert judge(proxy(uptime_s=10.0), pipeline(last_write_ts=None, store_up=0)) == []


def test_rows_waiting_and_no_write_for_too_long() -> None:
    reasons = judge(proxy(), pipeline(queue_depth=7, spool_rows=3, last_write_ts=NOW - 61))
    assert words(reasons) == ["write_stale"] and "10 rows waiting" in reasons[0]
    assert judge(proxy(), pipeline(queue_depth=7, last_write_ts=NOW - 59)) == []
    # Never written: counted from the start.
    reasons = judge(proxy(uptime_s=61.0), pipeline(spool_rows=1, last_write_ts=None))
    assert words(reasons) == ["write_stale"]
    assert judge(proxy(uptime_s=30.0), pipeline(spool_rows=1, last_write_ts=None)) == []


def test_store_never_opened() -> None:
    reasons = judge(proxy(uptime_s=61.0), pipeline(store_up=0, last_write_ts=None))
    assert words(reasons) == ["store_down"] and "not opened" in reasons[0]
    reasons = judge(proxy(), pipeline(store_up=0, last_write_ts=NOW - 100, queue_depth=1))
    assert words(reasons) == ["write_stale", "store_down"]


def test_insert_running_too_long() -> None:
    assert words(judge(proxy(), pipeline(insert_running_s=61.0))) == ["writer_stuck"]
    assert judge(proxy(), pipeline(insert_running_s=2.0)) == []


def test_recent_dead_letter() -> None:
    reasons = judge(proxy(), pipeline(last_dead_letter_ts=NOW - 10, rows_dead_lettered=50))
    assert words(reasons) == ["dead_letter"] and "50 rows" in reasons[0]
    assert judge(proxy(), pipeline(last_dead_letter_ts=NOW - 301)) == []


def test_spool_nearly_full() -> None:
    reasons = judge(proxy(), pipeline(spool_bytes=500))
    assert words(reasons) == ["spool_full"] and "50%" in reasons[0]
    assert judge(proxy(), pipeline(spool_bytes=499)) == []


def test_no_pool_reachable() -> None:
    down = {"main": {"up": False}, "backup": {"up": False}}
    reasons = judge(proxy(pools=down), pipeline())
    assert words(reasons) == ["no_pool"] and "backup, main" in reasons[0]
    # Never tried counts as reachable (a pool is up until a connection to it failed).
    assert judge(proxy(pools={"main": {"up": True, "last_error": ""}}), pipeline()) == []


def test_several_reasons_at_once() -> None:
    reasons = judge(
        proxy(pools={"main": {"up": False}}),
        pipeline(
            queue_depth=1,
            last_write_ts=NOW - 1000,
            store_up=0,
            spool_bytes=900,
            insert_running_s=100.0,
            last_dead_letter_ts=NOW,
        ),
    )
    assert words(reasons) == [
        "write_stale",
        "store_down",
        "writer_stuck",
        "dead_letter",
        "spool_full",
        "no_pool",
    ]
