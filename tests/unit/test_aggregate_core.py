"""The aggregate core end to end in memory: real hashing miners' lines, a scripted pool.

Each test drives ``Aggregator`` with miner lines and pool lines and checks what
goes out to both and which rows come out.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from stratum_proxy.aggregate import events as ev
from stratum_proxy.aggregate.core import AggregateSettings, Aggregator
from stratum_proxy.aggregate.vardiff import VardiffSettings
from stratum_proxy.shares import DIFF1_TARGET, Job, compute_share, swap_prevhash_words

PREVHASH = bytes(range(32))
COINB1, COINB2 = b"\x01" * 42, b"\x02" * 60


def _line(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj) + b"\n"


def _lines(events: list[Any], cls: type, key: str) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    for e in events:
        if isinstance(e, cls):
            ident = getattr(e, key)
            out.setdefault(ident, []).extend(
                orjson.loads(line) for line in e.data.splitlines() if line.strip()
            )
    return out


class Rig:
    """An Aggregator with scripted pools; records every row."""

    def __init__(self, **settings: Any) -> None:
        base: dict[str, Any] = {
            "pool_user": "farm1",
            "vardiff": VardiffSettings(minimum=1e-8, start=1e-6, maximum=1e6),
        }
        worker_channel_pools = frozenset(settings.pop("worker_channel_pools", ()))
        base.update(settings)
        self.core = Aggregator(
            settings=AggregateSettings(**base),
            pools=["main", "backup"],
            proxy_id="p",
            worker_channel_pools=worker_channel_pools,
        )
        self.now = 0.0
        self.rows: list[Any] = []
        self.to_miner: dict[int, list[dict[str, Any]]] = {}
        self.to_pool: dict[int, list[dict[str, Any]]] = {}
        self.opened: list[ev.OpenUpstream] = []
        self.closed: list[Any] = []
        self.notices: list[ev.Notice] = []
        self.moves: list[ev.MinersMoved] = []

    def take(self, events: list[Any]) -> list[Any]:
        for k, v in _lines(events, ev.SendToMiner, "miner_id").items():
            self.to_miner.setdefault(k, []).extend(v)
        for k, v in _lines(events, ev.SendToUpstream, "upstream_id").items():
            self.to_pool.setdefault(k, []).extend(v)
        for e in events:
            if isinstance(e, ev.ShareRecorded):
                self.rows.append(e.record)
            elif isinstance(e, ev.OpenUpstream):
                self.opened.append(e)
            elif isinstance(e, ev.CloseUpstream | ev.CloseMiner):
                self.closed.append(e)
            elif isinstance(e, ev.Notice):
                self.notices.append(e)
            elif isinstance(e, ev.MinersMoved):
                self.moves.append(e)
        return events

    def miner(self, miner_id: int, *lines: dict[str, Any], worker: str = "") -> None:
        """``worker``: known before placement (an SV2 channel's user identity)."""
        addr = f"10.0.0.{miner_id}:4028"
        self.take(self.core.add_miner(miner_id, addr, self.now, worker=worker))
        for obj in lines:
            self.take(self.core.miner_data(miner_id, _line(obj), self.now))

    def send(self, miner_id: int, obj: dict[str, Any]) -> None:
        self.take(self.core.miner_data(miner_id, _line(obj), self.now, wall=1e9 + self.now))

    def pool_ready(self, upstream_id: int, en1: str = "aabbccdd", size: int = 8) -> None:
        self.take(self.core.upstream_connected(upstream_id, self.now))
        sent = self.to_pool[upstream_id]
        ids = {s["method"]: s["id"] for s in sent}
        self.pool(
            upstream_id, {"id": ids["mining.subscribe"], "result": [[], en1, size], "error": None}
        )
        self.pool(upstream_id, {"id": ids["mining.authorize"], "result": True, "error": None})
        self.pool(
            upstream_id,
            {"id": ids["mining.configure"], "error": None,
             "result": {"version-rolling": True, "version-rolling.mask": "1fffe000"}},
        )  # fmt: skip

    def pool(self, upstream_id: int, obj: dict[str, Any]) -> None:
        self.take(self.core.upstream_data(upstream_id, _line(obj), self.now, wall=1e9 + self.now))

    def notify(
        self, upstream_id: int, job_id: str, clean: bool = True, difficulty: float = 1e-6
    ) -> None:
        self.pool(
            upstream_id, {"id": None, "method": "mining.set_difficulty", "params": [difficulty]}
        )
        params = [
            job_id, swap_prevhash_words(PREVHASH).hex(), COINB1.hex(), COINB2.hex(), [],
            "20000000", "207fffff", "66000000", clean,
        ]  # fmt: skip
        self.pool(upstream_id, {"id": None, "method": "mining.notify", "params": params})


SUBSCRIBE = {"id": 1, "method": "mining.subscribe", "params": ["cpuminer/2.5"]}
AUTHORIZE = {"id": 2, "method": "mining.authorize", "params": ["farm1.rig1", "x"]}


def _latest(rig: Rig, miner_id: int, method: str) -> dict[str, Any]:
    return [m for m in rig.to_miner[miner_id] if m.get("method") == method][-1]


def _find_share(
    rig: Rig, miner_id: int, target: int, below: int | None = None
) -> tuple[str, str, str]:
    """A nonce whose share hash is <= target (and > below): the miner's real work."""
    sub = next(m for m in rig.to_miner[miner_id] if m.get("id") == 1)
    en1, size = bytes.fromhex(sub["result"][1]), sub["result"][2]
    n = _latest(rig, miner_id, "mining.notify")["params"]
    job = Job(
        job_id=n[0], prevhash=swap_prevhash_words(bytes.fromhex(n[1])), coinb1=bytes.fromhex(n[2]),
        coinb2=bytes.fromhex(n[3]), merkle_branch=(), version=int(n[5], 16), nbits=int(n[6], 16),
        ntime=int(n[7], 16), clean_jobs=n[8], extranonce1=en1, pool_difficulty=1.0,
    )  # fmt: skip
    en2 = bytes(size - 1) + b"\x01"
    for nonce in range(2_000_000):
        share = compute_share(job, en2, job.ntime, nonce, job.version)
        if share.hash_int <= target and (below is None or share.hash_int > below):
            return en2.hex(), f"{nonce:08x}", n[0]
    raise AssertionError("no share found")


def test_miners_share_one_upstream_and_get_their_own_extranonce1() -> None:
    rig = Rig()
    rig.miner(1, SUBSCRIBE, AUTHORIZE)
    rig.miner(2, SUBSCRIBE)
    assert [o.pool for o in rig.opened] == [0]  # one connection for both
    assert not [m for m in rig.to_miner.get(1, []) if m.get("id") == 1]  # held: no upstream yet
    rig.pool_ready(rig.opened[0].upstream_id)
    rig.notify(rig.opened[0].upstream_id, "pj1")
    subs = {i: next(m for m in rig.to_miner[i] if m.get("id") == 1)["result"] for i in (1, 2)}
    assert subs[1][1] != subs[2][1] and subs[1][2] == subs[2][2] == 4
    notify = _latest(rig, 1, "mining.notify")["params"]
    assert notify[2] == (COINB1 + bytes.fromhex("aabbccdd")).hex()  # upstream en1 in coinb1
    assert notify[3] == (bytes(2) + COINB2).hex()  # 8 = 2 prefix + 4 miner + 2 pad
    assert notify[0] != "pj1"  # the proxy's own job ids


def test_shares_are_forwarded_judged_locally_or_refused_with_honest_rows() -> None:
    rig = Rig()
    rig.miner(1, SUBSCRIBE, AUTHORIZE)
    up_id = rig.opened[0].upstream_id
    rig.pool_ready(up_id)
    rig.notify(up_id, "pj1", difficulty=1e-6)  # the same as the miner
    miner_target = int(DIFF1_TARGET / 1e-6)
    en2, nonce, job = _find_share(rig, 1, miner_target)
    rig.send(1, {"id": 10, "method": "mining.submit",
                 "params": ["farm1.rig1", job, en2, "66000000", nonce]})  # fmt: skip
    forwarded = [p for p in rig.to_pool[up_id] if p.get("method") == "mining.submit"]
    assert len(forwarded) == 1
    fw = forwarded[0]["params"]
    assert fw[1] == "pj1" and fw[2].endswith(en2 + "0000")  # prefix ‖ en2 ‖ pad
    rig.now = 0.25
    rig.pool(up_id, {"id": forwarded[0]["id"], "result": True, "error": None})
    answer = [m for m in rig.to_miner[1] if m.get("id") == 10]
    assert answer == [{"id": 10, "result": True, "error": None}]
    (row,) = rig.rows
    assert (row.status, row.verdict_by, row.forwarded) == ("accepted", "pool", True)
    assert row.response_ms == pytest.approx(250.0) and row.miner_difficulty == 1e-6
    # The same share again: the proxy refuses the duplicate itself.
    rig.send(1, {"id": 11, "method": "mining.submit",
                 "params": ["farm1.rig1", job, en2, "66000000", nonce]})  # fmt: skip
    dup = next(m for m in rig.to_miner[1] if m.get("id") == 11)
    assert dup["error"][0] == 22 and rig.rows[-1].reject_reason == "proxy: duplicate share"
    assert rig.rows[-1].verdict_by == "proxy" and not rig.rows[-1].forwarded
    # An unknown job.
    rig.send(1, {"id": 12, "method": "mining.submit",
                 "params": ["farm1.rig1", "zz", en2, "66000000", nonce]})  # fmt: skip
    assert next(m for m in rig.to_miner[1] if m.get("id") == 12)["error"][0] == 21


def test_a_lost_upstream_moves_miners_without_closing_them() -> None:
    rig = Rig()
    rig.miner(1, SUBSCRIBE, AUTHORIZE)
    first = rig.opened[0].upstream_id
    rig.pool_ready(first)
    rig.notify(first, "pj1")
    sub_before = next(m for m in rig.to_miner[1] if m.get("id") == 1)["result"]
    rig.now = 5.0
    rig.take(rig.core.upstream_lost(first, "pool closed the connection", rig.now))
    assert not [c for c in rig.closed if isinstance(c, ev.CloseMiner)]
    second = rig.opened[-1]
    assert second.upstream_id != first
    rig.take(rig.core.upstream_failed(second.upstream_id, "connection refused", 5.1))
    backup = rig.opened[-1]
    assert backup.pool == 1  # main is down: the backup pool
    rig.now = 5.2
    rig.pool_ready(backup.upstream_id, en1="01020304", size=8)
    rig.notify(backup.upstream_id, "bj1")
    notify = _latest(rig, 1, "mining.notify")["params"]
    assert notify[8] is True and notify[2].endswith("01020304")
    assert not [m for m in rig.to_miner[1] if m.get("method") == "mining.set_extranonce"]
    assert rig.moves and rig.moves[-1].to_pool == "backup"
    # Same extranonce1 as before: the miner never resubscribed.
    assert next(m for m in rig.to_miner[1] if m.get("id") == 1)["result"] == sub_before


def _ready_rig(**settings: Any) -> tuple[Rig, int]:
    rig = Rig(**settings)
    rig.miner(1, SUBSCRIBE, AUTHORIZE)
    up_id = rig.opened[0].upstream_id
    rig.pool_ready(up_id)
    return rig, up_id


def _submit(rig: Rig, msg_id: int, job: str, en2: str, nonce: str) -> dict[str, Any]:
    rig.send(1, {"id": msg_id, "method": "mining.submit",
                 "params": ["farm1.rig1", job, en2, "66000000", nonce]})  # fmt: skip
    return (
        [m for m in rig.to_miner[1] if m.get("id") == msg_id][-1]
        if any(m.get("id") == msg_id for m in rig.to_miner[1])
        else {}
    )


def test_work_between_the_miners_and_the_pools_difficulty_is_accepted_by_the_proxy() -> None:
    rig, up_id = _ready_rig()
    rig.notify(up_id, "pj1", difficulty=1e-4)  # the pool wants 100x the miner's difficulty
    miner_target, pool_target = int(DIFF1_TARGET / 1e-6), int(DIFF1_TARGET / 1e-4)
    en2, nonce, job = _find_share(rig, 1, miner_target, below=pool_target)
    answer = _submit(rig, 10, job, en2, nonce)
    assert answer == {"id": 10, "result": True, "error": None}
    assert not [p for p in rig.to_pool[up_id] if p.get("method") == "mining.submit"]
    (row,) = rig.rows
    assert (row.status, row.verdict_by, row.forwarded) == ("accepted", "proxy", False)
    assert (row.pool_difficulty, row.miner_difficulty) == (1e-4, 1e-6)
    # Below the miner's own difficulty: 23, decided by the proxy.
    en2, nonce, job = _find_share(rig, 1, (1 << 256) - 1, below=miner_target)
    assert _submit(rig, 11, job, en2, nonce)["error"][0] == 23
    assert rig.rows[-1].reject_reason == "proxy: below the miner's difficulty"


def test_the_pools_rejection_reaches_the_miner_and_the_row() -> None:
    rig, up_id = _ready_rig()
    rig.notify(up_id, "pj1", difficulty=1e-6)
    en2, nonce, job = _find_share(rig, 1, int(DIFF1_TARGET / 1e-6))
    _submit(rig, 10, job, en2, nonce)
    (fw,) = [p for p in rig.to_pool[up_id] if p.get("method") == "mining.submit"]
    rig.pool(up_id, {"id": fw["id"], "result": None, "error": [23, "Low difficulty share", None]})
    answer = [m for m in rig.to_miner[1] if m.get("id") == 10][-1]
    assert answer["error"][:2] == [23, "23 Low difficulty share"]
    assert (rig.rows[-1].status, rig.rows[-1].verdict_by) == ("rejected", "pool")
    assert rig.rows[-1].reject_reason == "23 Low difficulty share"


def test_shares_in_flight_on_a_lost_upstream_are_no_response_and_its_jobs_stale() -> None:
    rig, up_id = _ready_rig()
    rig.notify(up_id, "pj1", difficulty=1e-5)
    en2, nonce, job = _find_share(rig, 1, int(DIFF1_TARGET / 1e-5))
    _submit(rig, 10, job, en2, nonce)  # forwarded, unanswered
    en2b, nonceb, _ = _find_share(rig, 1, int(DIFF1_TARGET / 1e-6), below=int(DIFF1_TARGET / 1e-5))
    rig.take(rig.core.upstream_lost(up_id, "pool closed the connection", 1.0))
    assert rig.rows[-1].status == "no_response" and rig.rows[-1].verdict_by == ""
    assert [m for m in rig.to_miner[1] if m.get("id") == 10][-1]["error"][0] == 20
    # Work on the dead upstream's job after the loss: stale, said by the proxy.
    assert _submit(rig, 11, job, en2b, nonceb)["error"][0] == 21
    assert rig.rows[-1].reject_reason == "proxy: stale job"
    assert rig.rows[-1].upstream == "main"  # the pool whose job it was, gone since


def test_a_new_difficulty_goes_out_just_before_the_next_notify() -> None:
    rig, up_id = _ready_rig(vardiff=VardiffSettings(minimum=1e-6, start=1e-6, maximum=1e6))
    rig.notify(up_id, "pj1")
    rig.send(1, {"id": 5, "method": "mining.suggest_difficulty", "params": [2e-5]})
    before = len(rig.to_miner[1])
    rig.notify(up_id, "pj2", clean=False)
    after = rig.to_miner[1][before:]
    methods = [m.get("method") for m in after]
    assert methods == ["mining.set_difficulty", "mining.notify"]
    assert after[0]["params"] == [2e-5]


def test_a_refused_worker_name_falls_back_to_the_pool_user() -> None:
    rig, up_id = _ready_rig()
    auths = [p for p in rig.to_pool[up_id] if p.get("method") == "mining.authorize"]
    assert [a["params"][0] for a in auths] == ["farm1", "farm1.rig1"]
    rig.pool(up_id, {"id": auths[1]["id"], "result": False, "error": [24, "Unauthorized", None]})
    assert any(n.event == "worker_refused_by_pool" for n in rig.notices)
    rig.notify(up_id, "pj1", difficulty=1e-6)
    en2, nonce, job = _find_share(rig, 1, int(DIFF1_TARGET / 1e-6))
    _submit(rig, 10, job, en2, nonce)
    (fw,) = [p for p in rig.to_pool[up_id] if p.get("method") == "mining.submit"]
    assert fw["params"][0] == "farm1"


def test_the_cap_opens_a_second_upstream_to_the_same_pool() -> None:
    rig, _up_id = _ready_rig(miners_per_upstream=1)
    rig.miner(2, SUBSCRIBE)
    assert [o.pool for o in rig.opened] == [0, 0]
    rig.pool_ready(rig.opened[1].upstream_id, en1="99999999")
    assert next(m for m in rig.to_miner[2] if m.get("id") == 1)["result"][2] == 4


def test_fail_back_to_the_first_pool_when_it_is_healthy_again() -> None:
    rig, up_id = _ready_rig(failback_check_s=10.0)
    rig.notify(up_id, "pj1")
    rig.take(rig.core.upstream_lost(up_id, "gone", 1.0))
    rig.take(rig.core.upstream_failed(rig.opened[-1].upstream_id, "refused", 1.0))
    backup = rig.opened[-1]
    rig.pool_ready(backup.upstream_id)
    rig.notify(backup.upstream_id, "bj1")
    assert rig.core.get_timer() is not None
    rig.now = 11.0
    rig.take(rig.core.handle_timer(11.0))
    retry = rig.opened[-1]
    assert retry.pool == 0
    rig.pool_ready(retry.upstream_id)
    rig.notify(retry.upstream_id, "pj9")
    assert rig.moves[-1].to_pool == "main" and rig.moves[-1].from_pool == "backup"
    assert any(
        isinstance(c, ev.CloseUpstream) and c.upstream_id == backup.upstream_id for c in rig.closed
    )


def test_a_smaller_backup_uses_set_extranonce_or_a_rationed_reconnect() -> None:
    rig = Rig(reconnects_per_s=1.0)
    rig.miner(1, SUBSCRIBE, {"id": 3, "method": "mining.extranonce.subscribe", "params": []})
    rig.miner(2, SUBSCRIBE)
    rig.miner(3, SUBSCRIBE)
    first = rig.opened[0].upstream_id
    rig.pool_ready(first, size=8)  # miners get 4 bytes (+2 prefix, 2 pad)
    rig.notify(first, "pj1")
    rig.take(rig.core.upstream_lost(first, "gone", 1.0))
    rig.take(rig.core.upstream_failed(rig.opened[-1].upstream_id, "refused", 1.0))
    rig.now = 1.0
    rig.pool_ready(rig.opened[-1].upstream_id, size=5)  # room for 2 + 3 only
    set_en = [m for m in rig.to_miner[1] if m.get("method") == "mining.set_extranonce"]
    assert set_en and set_en[-1]["params"][1] == 3
    reconnects = lambda: [  # noqa: E731
        i
        for i in (2, 3)
        if any(m.get("method") == "client.reconnect" for m in rig.to_miner.get(i, []))
    ]
    rig.take(rig.core.handle_timer(1.0))
    assert len(reconnects()) == 1  # one per second, not all at once
    rig.take(rig.core.handle_timer(2.0))
    assert len(reconnects()) == 2


def test_a_silent_pools_job_is_resent_with_a_later_ntime_then_the_pool_is_left() -> None:
    rig, up_id = _ready_rig(job_keepalive_s=60.0, work_timeout_s=150.0)
    rig.notify(up_id, "pj1")
    first = _latest(rig, 1, "mining.notify")["params"]
    rig.now = 61.0
    rig.take(rig.core.handle_timer(61.0))
    again = _latest(rig, 1, "mining.notify")["params"]
    assert again[0] != first[0] and again[8] is False
    assert int(again[7], 16) == int(first[7], 16) + 61  # same work, a later time
    # A share on the keepalive copy goes to the pool under the pool's job id.
    en2, nonce, job = _find_share(rig, 1, int(DIFF1_TARGET / 1e-6))
    rig.send(1, {"id": 9, "method": "mining.submit",
                 "params": ["farm1.rig1", job, en2, again[7], nonce]})  # fmt: skip
    (fw,) = [p for p in rig.to_pool[up_id] if p.get("method") == "mining.submit"]
    assert fw["params"][1] == "pj1" and fw["params"][3] == again[7]
    rig.now = 150.0
    rig.take(rig.core.handle_timer(150.0))
    assert any(isinstance(c, ev.CloseUpstream) and "no work" in c.reason for c in rig.closed)
    assert not [c for c in rig.closed if isinstance(c, ev.CloseMiner)]
    assert rig.opened[-1].upstream_id != up_id  # a new connection for the miners


def test_when_every_pool_is_down_connections_are_retried_after_a_pause_not_in_a_loop() -> None:
    rig = Rig(failback_check_s=30.0)
    rig.miner(1, SUBSCRIBE)
    rig.take(rig.core.upstream_failed(rig.opened[-1].upstream_id, "refused", 0.0))
    rig.take(rig.core.upstream_failed(rig.opened[-1].upstream_id, "refused", 0.1))
    assert [o.pool for o in rig.opened] == [0, 1]  # each pool once, then a pause
    for t in (1.0, 10.0, 29.0):
        rig.take(rig.core.handle_timer(t))
    assert [o.pool for o in rig.opened] == [0, 1]
    rig.take(rig.core.handle_timer(30.0))
    assert [o.pool for o in rig.opened] == [0, 1, 0]  # the best pool first again


def test_a_pool_with_a_narrower_version_mask_narrows_the_miners_grant() -> None:
    rig = Rig()
    configure = {
        "id": 3, "method": "mining.configure",
        "params": [["version-rolling"], {"version-rolling.mask": "ffffffff"}],
    }  # fmt: skip
    rig.miner(1, configure, SUBSCRIBE)
    granted = next(m for m in rig.to_miner[1] if m.get("id") == 3)["result"]
    assert granted["version-rolling.mask"] == "1fffe000"  # requested ∩ sv2.version_mask
    up_id = rig.opened[0].upstream_id
    rig.take(rig.core.upstream_connected(up_id, 0.0))
    ids = {s["method"]: s["id"] for s in rig.to_pool[up_id]}
    rig.pool(up_id, {"id": ids["mining.subscribe"], "result": [[], "aabbccdd", 8], "error": None})
    rig.pool(up_id, {"id": ids["mining.authorize"], "result": True, "error": None})
    rig.pool(
        up_id,
        {"id": ids["mining.configure"], "error": None,
         "result": {"version-rolling": True, "version-rolling.mask": "00ffe000"}},
    )  # fmt: skip
    narrowed = _latest(rig, 1, "mining.set_version_mask")
    assert narrowed["params"] == ["00ffe000"]


# -- worker channels (SV2 pools: one user identity per channel) ------------------------


def _upstream_of(rig: Rig, miner_id: int) -> tuple[int, str]:
    upstream = rig.core.upstreams[rig.core.miners[miner_id].upstream or 0]
    return upstream.pool, upstream.identity


def test_on_an_sv2_pool_each_worker_mines_on_a_channel_of_its_own() -> None:
    rig = Rig(worker_channel_pools={0})
    rig.miner(1, SUBSCRIBE, worker="farm1.a")
    rig.miner(2, SUBSCRIBE, worker="farm1.b")
    rig.miner(3, SUBSCRIBE, worker="farm1.a")
    rig.miner(4, SUBSCRIBE)  # an SV1 miner: its name comes after it is placed
    rig.miner(5, SUBSCRIBE, worker="farm1")  # the pool user itself: the shared channel
    assert sorted((o.pool, o.identity) for o in rig.opened) == [
        (0, ""), (0, "farm1.a"), (0, "farm1.b")
    ]  # fmt: skip
    for opened in rig.opened:
        rig.pool_ready(opened.upstream_id, en1=f"{opened.upstream_id:08x}")
    assert [_upstream_of(rig, i)[1] for i in range(1, 6)] == [
        "farm1.a", "farm1.b", "farm1.a", "", ""
    ]  # fmt: skip
    assert rig.core.miners[1].upstream == rig.core.miners[3].upstream


def test_without_identity_passthrough_every_miner_shares_the_farms_channel() -> None:
    rig = Rig(worker_channel_pools={0}, identity_passthrough=False)
    rig.miner(1, SUBSCRIBE, worker="farm1.a")
    rig.miner(2, SUBSCRIBE, worker="farm1.b")
    assert [(o.pool, o.identity) for o in rig.opened] == [(0, "")]


def test_a_worker_channel_holds_miners_per_upstream_then_another_opens() -> None:
    rig = Rig(worker_channel_pools={0}, miners_per_upstream=1)
    rig.miner(1, SUBSCRIBE, worker="farm1.a")
    rig.pool_ready(rig.opened[0].upstream_id)
    rig.miner(2, SUBSCRIBE, worker="farm1.a")
    assert [(o.pool, o.identity) for o in rig.opened] == [(0, "farm1.a"), (0, "farm1.a")]


def test_a_refused_worker_channel_moves_its_miners_under_the_pool_user_for_a_while() -> None:
    rig = Rig(worker_channel_pools={0}, failback_check_s=10.0)
    rig.miner(1, SUBSCRIBE, worker="farm1.a")
    own = rig.opened[0]
    rig.pool_ready(own.upstream_id)
    # The scripted SV1 pool stands in for the SV2 one: refusing the worker's name on
    # its own connection is what Sv2PoolUpstream reports for a refused channel.
    (auth,) = [
        p for p in rig.to_pool[own.upstream_id]
        if p.get("method") == "mining.authorize" and p["params"][0] == "farm1.a"
    ]  # fmt: skip
    rig.pool(own.upstream_id, {"id": auth["id"], "result": False, "error": [24, "no", None]})
    assert any(isinstance(c, ev.CloseUpstream) and c.upstream_id == own.upstream_id
               for c in rig.closed)  # fmt: skip
    assert rig.core.pool_down_until == {}  # the pool is fine: only the name was refused
    assert any(n.event == "worker_refused_by_pool" for n in rig.notices)
    assert rig.core.counters["worker_channels_refused"] == 1
    shared = rig.opened[-1]
    assert (shared.pool, shared.identity) == (0, "")
    rig.pool_ready(shared.upstream_id, en1="99999999")
    assert _upstream_of(rig, 1) == (0, "")
    rig.miner(2, SUBSCRIBE, worker="farm1.a")  # within failback_check_s: not asked again
    assert _upstream_of(rig, 2) == (0, "")
    rig.now = 11.0
    rig.miner(3, SUBSCRIBE, worker="farm1.a")  # later: the pool is asked again
    assert (rig.opened[-1].pool, rig.opened[-1].identity) == (0, "farm1.a")


def test_fail_back_waits_for_each_workers_own_channel_on_the_better_pool() -> None:
    rig = Rig(worker_channel_pools={0}, failback_check_s=10.0)
    rig.miner(1, SUBSCRIBE, worker="farm1.a")
    main = rig.opened[0]
    rig.pool_ready(main.upstream_id)
    rig.notify(main.upstream_id, "pj1")
    rig.take(rig.core.upstream_lost(main.upstream_id, "gone", 1.0))
    rig.take(rig.core.upstream_failed(rig.opened[-1].upstream_id, "refused", 1.0))
    backup = rig.opened[-1]
    assert (backup.pool, backup.identity) == (1, "")  # an SV1 pool: the farm's account
    rig.pool_ready(backup.upstream_id)
    rig.notify(backup.upstream_id, "bj1")
    assert _upstream_of(rig, 1) == (1, "")
    rig.now = 11.0
    rig.take(rig.core.handle_timer(11.0))
    probe = rig.opened[-1]
    assert (probe.pool, probe.identity) == (0, "")
    rig.pool_ready(probe.upstream_id)
    rig.notify(probe.upstream_id, "pj2")
    # Main is back, but the miner stays on the backup until its own channel is ready.
    own = rig.opened[-1]
    assert (own.pool, own.identity) == (0, "farm1.a")
    assert _upstream_of(rig, 1) == (1, "")
    rig.pool_ready(own.upstream_id, en1="77777777")
    rig.notify(own.upstream_id, "pj3")
    assert _upstream_of(rig, 1) == (0, "farm1.a")
    assert any(
        isinstance(c, ev.CloseUpstream) and c.upstream_id == backup.upstream_id for c in rig.closed
    )


def test_channels_of_one_lost_connection_are_all_gone_before_miners_are_placed_again() -> None:
    rig = Rig(worker_channel_pools={0})
    rig.miner(1, SUBSCRIBE, worker="farm1.a")
    rig.miner(2, SUBSCRIBE, worker="farm1.b")
    for opened in rig.opened:
        rig.pool_ready(opened.upstream_id, en1=f"{opened.upstream_id:08x}")
    lost = [o.upstream_id for o in rig.opened]
    rig.take(rig.core.upstreams_lost(lost, "pool closed the connection", 1.0))
    # Neither miner landed on the other's (dead) channel: both wait for new ones.
    assert all(rig.core.miners[i].upstream is None for i in (1, 2))
    reopened = sorted((o.pool, o.identity) for o in rig.opened[len(lost) :])
    assert reopened == [(0, "farm1.a"), (0, "farm1.b")]


def test_an_sv1_miner_named_after_its_subscribe_moves_to_its_workers_channel() -> None:
    rig = Rig(worker_channel_pools={0})
    rig.miner(1, SUBSCRIBE)
    shared = rig.opened[0]
    assert shared.identity == ""
    rig.pool_ready(shared.upstream_id)
    rig.notify(shared.upstream_id, "pj1")
    en1 = next(m for m in rig.to_miner[1] if m.get("id") == 1)["result"][1]
    rig.send(1, AUTHORIZE)  # farm1.rig1: now the core knows whose miner it is
    own = rig.opened[-1]
    assert (own.pool, own.identity) == (0, "farm1.rig1")
    assert _upstream_of(rig, 1) == (0, "")  # it mines on the shared channel meanwhile
    rig.pool_ready(own.upstream_id, en1="77777777")
    assert _upstream_of(rig, 1) == (0, "")  # until its own channel has work
    rig.notify(own.upstream_id, "oj1")
    assert _upstream_of(rig, 1) == (0, "farm1.rig1")
    assert rig.core.miners[1].upstream not in (None, shared.upstream_id)
    assert rig.core.upstreams[shared.upstream_id].miners == set()
    notify = _latest(rig, 1, "mining.notify")["params"]
    assert notify[8] is True and bytes.fromhex(notify[2]).endswith(bytes.fromhex("77777777"))
    # Same extranonce1 for the miner: no reconnect, no set_extranonce.
    assert not [m for m in rig.to_miner[1] if m.get("method") == "mining.set_extranonce"]
    assert next(m for m in rig.to_miner[1] if m.get("id") == 1)["result"][1] == en1


def test_an_upstream_its_last_miner_left_closes_but_the_pools_last_shared_one_stays() -> None:
    rig = Rig(worker_channel_pools={0}, miners_per_upstream=1)
    rig.miner(1, SUBSCRIBE, worker="farm1.a")
    rig.miner(2, SUBSCRIBE)
    rig.miner(3, SUBSCRIBE)
    for opened in list(rig.opened):
        rig.pool_ready(opened.upstream_id, en1=f"{opened.upstream_id:08x}")
    rig.pool_ready(rig.opened[-1].upstream_id, en1="99999999")  # the third miner's
    own, shared = rig.core.miners[1].upstream, rig.core.miners[2].upstream
    spare = rig.core.miners[3].upstream
    assert len({own, shared, spare}) == 3

    def closed() -> set[int]:
        return {c.upstream_id for c in rig.closed if isinstance(c, ev.CloseUpstream)}

    rig.take(rig.core.remove_miner(1, rig.now))
    assert own in closed()  # the worker's channel: its worker is gone
    rig.take(rig.core.remove_miner(3, rig.now))
    assert spare in closed()  # a second shared connection, now empty
    rig.take(rig.core.remove_miner(2, rig.now))
    assert shared not in closed()  # the pool's last shared one stays for newcomers
    assert set(rig.core.upstreams) == {shared}
