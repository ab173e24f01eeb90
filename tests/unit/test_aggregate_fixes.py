"""Aggregate mode: the vardiff step and keepalive copies, found wrong end to end.

Both showed only with timing the unit tests of each part did not use: several
vardiff windows closing before the next notify, and keepalive copies less than a
second apart.  Here they are pinned down without sockets.
"""

from __future__ import annotations

from typing import Any

import orjson

from stratum_proxy.aggregate import events as ev
from stratum_proxy.aggregate.core import AggregateSettings, Aggregator
from stratum_proxy.aggregate.vardiff import Vardiff, VardiffSettings


def test_windows_closing_before_the_next_notify_do_not_compound() -> None:
    vd = Vardiff(VardiffSettings(shares_per_minute=12, minimum=1e-3, start=1.0), now=0.0)
    for window in range(3):  # three windows of 16 shares a second each, no notify between
        for i in range(16):
            vd.on_share(window + (i + 1) / 16)
    # Each window measured shares found at difficulty 1: one step of at most 8x.
    assert vd.pending == 8.0
    assert vd.take_pending() == 8.0 and vd.difficulty == 8.0
    for i in range(16):  # the next window is measured at 8, the difficulty in force
        vd.on_share(3 + (i + 1) / 16)
    assert vd.take_pending() == 64.0


def _lines(events: list[Any], miner_id: int) -> list[dict[str, Any]]:
    return [
        orjson.loads(line)
        for e in events
        if isinstance(e, ev.SendToMiner) and e.miner_id == miner_id
        for line in e.data.splitlines()
        if line.strip()
    ]


def _pool_line(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj) + b"\n"


def test_keepalive_copies_less_than_a_second_apart_are_new_jobs() -> None:
    core = Aggregator(
        settings=AggregateSettings(pool_user="farm1", job_keepalive_s=0.3, work_timeout_s=60),
        pools=["main"],
        proxy_id="p",
    )
    events = core.add_miner(1, "10.0.0.1:4028", 0.0)
    events += core.miner_data(1, b'{"id":1,"method":"mining.subscribe","params":[]}\n', 0.0)
    (opened,) = [e for e in events if isinstance(e, ev.OpenUpstream)]
    sent = [
        orjson.loads(line)
        for e in core.upstream_connected(opened.upstream_id, 0.0)
        if isinstance(e, ev.SendToUpstream)
        for line in e.data.splitlines()
    ]
    ids = {s["method"]: s["id"] for s in sent}
    for answer in (
        {"id": ids["mining.subscribe"], "result": [[], "aabbccdd", 8], "error": None},
        {"id": ids["mining.authorize"], "result": True, "error": None},
        {"id": ids["mining.configure"], "result": {}, "error": None},
        {"id": None, "method": "mining.set_difficulty", "params": [1e-6]},
        {"id": None, "method": "mining.notify", "params": [
            "pj1", "00" * 32, "01" * 42, "02" * 60, [], "20000000", "207fffff", "66000000",
            True]},
    ):  # fmt: skip
        events += core.upstream_data(opened.upstream_id, _pool_line(answer), 0.0)
    for now in (0.3, 0.6, 0.9, 1.2):
        events += core.handle_timer(now)
    notifies = [m["params"] for m in _lines(events, 1) if m.get("method") == "mining.notify"]
    assert len(notifies) == 5  # the pool's job and four copies
    assert len({p[0] for p in notifies}) == 5  # five job ids for the miner
    ntimes = [int(p[7], 16) for p in notifies]
    assert ntimes == sorted(ntimes) and len(set(ntimes)) == 5
    assert ntimes[-1] == 0x66000000 + 4  # one second per copy: the least that makes it new
