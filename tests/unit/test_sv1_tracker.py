# ruff: noqa: E501  (verbatim protocol lines)
"""Sv1Tracker scenarios: real vectors and transcripts pushed through both directions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from stratum_proxy.errors import RemoteProtocolError
from stratum_proxy.store.record import ShareRecord
from stratum_proxy.sv1.events import (
    Event,
    ExtranonceChanged,
    LateAnswer,
    LineSkipped,
    PoolMessage,
    PoolReconnectRequested,
    ShareResolved,
    Subscribed,
    UnmatchedAnswer,
    VersionMaskSet,
    WorkerAuthorized,
)
from stratum_proxy.sv1.records import ShareContext
from stratum_proxy.sv1.tracker import Sv1Tracker

DATA = Path(__file__).resolve().parents[1] / "data"
VECTORS = {v["id"]: v for v in json.loads((DATA / "vectors" / "share_vectors.json").read_text())}
LUMERIN = VECTORS["share-lumerin-s19xp-vr-1"]
SLUSH = VECTORS["testnet3-slush-doc-block"]
CONTEXT = ShareContext(proxy_id="px1", upstream="pool-a", channel_id=7, miner_addr="10.0.0.5:4242")

# Verbatim from sv1_transcripts.md 2.2 (Lumerin fixture, Antminer S19 XP).
S19_SUBMIT_1 = b'{"params": ["printcrypto.S19xp134tx6y164", "2dc3427c2e", "0a00000000000000", "64c25820", "591d28da", "00092000"], "id": 2955, "method": "mining.submit"}\n'
S19_SUBMIT_2 = b'{"params": ["printcrypto.S19xp134tx6y164", "2dc3427c2e", "0a00000000000000", "64c25820", "b6fda90f", "000b6000"], "id": 2956, "method": "mining.submit"}\n'  # fmt: skip


def line(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj) + b"\n"


def notify(v: dict[str, Any], job_id: str | None = None, clean: bool = False) -> bytes:
    params = [
        job_id or v["job_id"], v["prevhash_stratum"], v["coinb1"], v["coinb2"],
        v["merkle_branch"], v["version_job"], v["nbits"], v["ntime"], clean,
    ]  # fmt: skip
    return line({"id": None, "method": "mining.notify", "params": params})


def submit(
    msg_id: Any, job_id: str, nonce: str, worker: str = "w1", bits: str | None = None
) -> bytes:
    params = [worker, job_id, "00000001", "504e86ed", nonce]
    if bits is not None:
        params.append(bits)
    return line({"id": msg_id, "method": "mining.submit", "params": params})


def answer(msg_id: Any, result: Any = True, error: Any = None) -> bytes:
    return line({"id": msg_id, "result": result, "error": error})


def subscribed(tracker: Sv1Tracker, extranonce1: str, size: int = 4, now: float = 0.0) -> None:
    tracker.miner_data(line({"id": 1, "method": "mining.subscribe", "params": []}), now)
    tracker.pool_data(answer(1, [[["mining.notify", "ab"]], extranonce1, size]), now)


def records(events: list[Event]) -> list[ShareRecord]:
    return [e.record for e in events if isinstance(e, ShareResolved)]


def one_record(events: list[Event]) -> ShareRecord:
    found = records(events)
    assert len(found) == 1, events
    return found[0]


@pytest.fixture
def tracker() -> Sv1Tracker:
    return Sv1Tracker(context=CONTEXT)


def lumerin_session(tracker: Sv1Tracker, configure: bool = True) -> None:
    subscribed(tracker, LUMERIN["extranonce1"], 8)
    if configure:
        tracker.miner_data(
            b'{"id":3,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"1fffe000","version-rolling.min-bit-count":2}]}\n',
            0.0,
        )
        events = tracker.pool_data(
            b'{"id":3,"result":{"version-rolling":true,"version-rolling.mask":"1fffe000"},"error":null}\n',
            0.0,
        )
        assert events == [VersionMaskSet(mask=0x1FFFE000)]
    tracker.pool_data(line({"id": None, "method": "mining.set_difficulty", "params": [699]}), 0.0)
    tracker.pool_data(notify(LUMERIN), 0.0)


def test_version_rolling_vector_through_the_tracker(tracker: Sv1Tracker) -> None:
    lumerin_session(tracker)
    assert tracker.miner_data(S19_SUBMIT_1, 10.0) == []
    record = one_record(tracker.pool_data(answer(2955), 10.25))
    assert record.share_hash == LUMERIN["expected_hash_be"]
    assert record.share_difficulty == pytest.approx(LUMERIN["expected_difficulty"], rel=1e-12)
    assert record.version == int(LUMERIN["version"], 16)
    assert record.version_bits == "00092000"
    assert record.network_difficulty == pytest.approx(LUMERIN["nbits_difficulty"], rel=1e-12)
    assert record.pool_difficulty == 699.0
    assert record.extranonce1 == LUMERIN["extranonce1"]
    assert (record.status, record.reject_reason, record.is_block) == ("accepted", "", False)
    assert record.ts == 10.0
    assert record.response_ms == pytest.approx(250.0)
    assert (record.proxy_id, record.upstream, record.protocol) == ("px1", "pool-a", "sv1")
    assert (record.channel_id, record.miner_addr) == (7, "10.0.0.5:4242")
    assert (record.worker, record.job_id, record.nonce) == (
        "printcrypto.S19xp134tx6y164",
        "2dc3427c2e",
        "591d28da",
    )
    # The fixture's second share also met the job difficulty 699 (Lumerin's test).
    tracker.miner_data(S19_SUBMIT_2, 11.0)
    second = one_record(tracker.pool_data(answer(2956), 11.1))
    assert second.share_difficulty >= 699
    assert second.version == 0x20000004 | 0x000B6000


def test_no_negotiated_mask_means_no_rolling(tracker: Sv1Tracker) -> None:
    lumerin_session(tracker, configure=False)
    tracker.miner_data(S19_SUBMIT_1, 1.0)
    record = one_record(tracker.pool_data(answer(2955), 1.0))
    assert record.version == int(LUMERIN["version_job"], 16)
    assert record.version_bits == "00092000"
    assert record.share_hash not in ("", LUMERIN["expected_hash_be"])


def test_set_version_mask_applies_immediately(tracker: Sv1Tracker) -> None:
    lumerin_session(tracker, configure=False)
    events = tracker.pool_data(
        b'{"id":null,"method":"mining.set_version_mask","params":["1fffe000"]}\n', 0.5
    )
    assert events == [VersionMaskSet(mask=0x1FFFE000)]
    tracker.miner_data(S19_SUBMIT_1, 1.0)
    assert (
        one_record(tracker.pool_data(answer(2955), 1.0)).share_hash == LUMERIN["expected_hash_be"]
    )


def test_configure_granted_without_mask_uses_the_miners_mask(tracker: Sv1Tracker) -> None:
    tracker.miner_data(
        b'{"id":1,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"1fffe000"}]}\n',
        0.0,
    )
    assert tracker.pool_data(answer(1, {"version-rolling": True}), 0.0) == [
        VersionMaskSet(mask=0x1FFFE000)
    ]
    tracker.miner_data(line({"id": 2, "method": "mining.configure", "params": [["x"], {}]}), 0.0)
    assert tracker.pool_data(answer(2, {"version-rolling": False}), 0.0) == [VersionMaskSet(mask=0)]


def slush_session() -> list[bytes]:
    """sv1_transcripts.md section 1, verbatim (the notify's 4 source lines joined)."""
    text = (DATA / "sv1_transcripts.md").read_text()
    block = text.split("```")[1].strip().splitlines()
    joined: list[str] = []
    for raw in block:
        raw = raw.removesuffix("\\n")
        if joined and not joined[-1].endswith("}"):
            joined[-1] += raw
        else:
            joined.append(raw)
    return [raw.encode() + b"\n" for raw in joined]


def test_slush_doc_session_solves_its_testnet_block(tracker: Sv1Tracker) -> None:
    lines = slush_session()
    assert len(lines) == 8
    events: list[Event] = []
    # subscribe, result, authorize, result, notify, set_difficulty, submit, result
    from_miner = [True, False, True, False, False, False, True, False]
    for i, (data, miner) in enumerate(zip(lines, from_miner, strict=True)):
        events += (tracker.miner_data if miner else tracker.pool_data)(data, 1000.0 + i)
    assert Subscribed(extranonce1="08000002", extranonce2_size=4) in events
    assert WorkerAuthorized(worker="slush.miner1", accepted=True) in events
    record = one_record(events)
    assert record.share_hash == SLUSH["block_hash"]
    assert record.is_block is True
    assert record.status == "accepted"
    # set_difficulty 2 came after the job's notify: the job keeps the default 1.
    assert record.pool_difficulty == 1.0
    assert tracker.statistics()["blocks"] == 1


def test_set_extranonce_applies_to_jobs_notified_after_it(tracker: Sv1Tracker) -> None:
    subscribed(tracker, "deadbeef")
    tracker.pool_data(notify(SLUSH, job_id="before"), 0.0)
    events = tracker.pool_data(
        line({"id": None, "method": "mining.set_extranonce", "params": ["08000002", 4]}), 0.0
    )
    assert events == [ExtranonceChanged(extranonce1="08000002", extranonce2_size=4)]
    tracker.pool_data(notify(SLUSH, job_id="after"), 0.0)
    tracker.miner_data(submit(10, "after", SLUSH["nonce"]), 1.0)
    tracker.miner_data(submit(11, "before", SLUSH["nonce"]), 1.0)
    after = one_record(tracker.pool_data(answer(10), 1.0))
    before = one_record(tracker.pool_data(answer(11), 1.0))
    assert (after.extranonce1, after.share_hash) == ("08000002", SLUSH["expected_hash_be"])
    assert before.extranonce1 == "deadbeef"
    assert before.share_hash not in ("", SLUSH["expected_hash_be"])


def test_extranonce_change_after_notify_does_not_touch_that_job(tracker: Sv1Tracker) -> None:
    subscribed(tracker, "08000002")
    tracker.pool_data(notify(SLUSH), 0.0)
    tracker.pool_data(line({"id": 1, "method": "mining.set_extranonce", "params": ["ffff"]}), 0.0)
    tracker.miner_data(submit(4, SLUSH["job_id"], SLUSH["nonce"]), 1.0)
    assert one_record(tracker.pool_data(answer(4), 1.0)).share_hash == SLUSH["expected_hash_be"]


def test_difficulty_is_the_one_in_force_when_the_job_was_notified(tracker: Sv1Tracker) -> None:
    subscribed(tracker, "08000002")
    set_diff = lambda d: line({"id": None, "method": "mining.set_difficulty", "params": [d]})  # noqa: E731
    tracker.pool_data(set_diff(2), 0.0)
    tracker.pool_data(notify(SLUSH, job_id="j1"), 0.0)
    tracker.pool_data(set_diff(16383.75), 0.0)
    tracker.miner_data(submit(1, "j1", "00000000"), 1.0)  # race: old job after new diff
    tracker.pool_data(notify(SLUSH, job_id="j2"), 1.0)
    tracker.miner_data(submit(2, "j2", "00000000"), 1.0)
    tracker.miner_data(submit(3, "gone", "00000000"), 1.0)
    events = tracker.pool_data(
        answer(1) + answer(2) + answer(3, False, [21, "Job not found", None]), 2
    )
    by_job = {r.job_id: r for r in records(events)}
    assert by_job["j1"].pool_difficulty == 2.0
    assert by_job["j2"].pool_difficulty == 16383.75
    assert by_job["gone"].pool_difficulty == 16383.75  # unknown job: the difficulty in force


def test_unknown_job_is_still_a_row(tracker: Sv1Tracker) -> None:
    subscribed(tracker, "08000002")
    tracker.miner_data(submit(9, "nope", SLUSH["nonce"]), 5.0)
    record = one_record(tracker.pool_data(answer(9, None, [21, "Job not found", ""]), 5.1))
    assert (record.share_hash, record.share_difficulty, record.is_block) == ("", 0.0, False)
    assert (record.status, record.reject_reason) == ("rejected", "21 Job not found")
    assert tracker.statistics()["unknown_job_shares"] == 1


def test_repeated_ids_resolve_oldest_first(tracker: Sv1Tracker) -> None:
    subscribed(tracker, "08000002")
    tracker.pool_data(notify(SLUSH), 0.0)
    for nonce in ("00000001", "00000002", "00000003"):
        tracker.miner_data(submit(4, "bf", nonce), 1.0)  # cpuminer: every submit is id 4
    events = tracker.pool_data(
        answer(4, None, [23, "Low difficulty", None]) + notify(SLUSH, job_id="x") + answer(4), 2.0
    )
    events += tracker.pool_data(answer(4, False, None), 3.0)
    got = [(r.nonce, r.status) for r in records(events)]
    assert got == [("00000001", "rejected"), ("00000002", "accepted"), ("00000003", "rejected")]


def test_string_and_number_ids_are_different(tracker: Sv1Tracker) -> None:
    subscribed(tracker, "08000002")
    tracker.miner_data(submit("4", "bf", "0000000a") + submit(4, "bf", "0000000b"), 1.0)
    first = one_record(tracker.pool_data(answer(4), 2.0))
    second = one_record(tracker.pool_data(answer("4", False, "Stale"), 2.0))
    assert (first.nonce, first.status) == ("0000000b", "accepted")
    assert (second.nonce, second.status, second.reject_reason) == ("0000000a", "rejected", "Stale")


def test_several_workers_on_one_connection(tracker: Sv1Tracker) -> None:
    subscribed(tracker, "08000002")
    auth = b'{"id":"auth","method":"mining.authorize","params":["farm.a","x"]}\n'
    auth2 = b'{"id":3,"method":"mining.authorize","params":["farm.b","x"]}\n'
    tracker.miner_data(auth + auth2, 0.0)
    events = tracker.pool_data(answer(3, False, [24, "Unauthorized worker", None]), 0.1)
    events += tracker.pool_data(answer("auth"), 0.2)
    assert events == [
        WorkerAuthorized(worker="farm.b", accepted=False, reason="24 Unauthorized worker"),
        WorkerAuthorized(worker="farm.a", accepted=True),
    ]
    tracker.pool_data(notify(SLUSH), 0.0)
    tracker.miner_data(submit(5, "bf", "00000001", worker="farm.a"), 1.0)
    tracker.miner_data(submit(6, "bf", "00000002", worker="farm.b"), 1.0)
    events = tracker.pool_data(answer(6) + answer(5), 1.5)
    assert [r.worker for r in records(events)] == ["farm.b", "farm.a"]


def test_timeout_gives_no_response_and_a_late_answer_is_reported_apart() -> None:
    tracker = Sv1Tracker(context=CONTEXT, submit_timeout_s=30.0)
    subscribed(tracker, "08000002")
    assert tracker.get_timer() is None
    tracker.miner_data(submit(4, "bf", "00000001"), 100.0)
    assert tracker.get_timer() == 130.0
    assert tracker.handle_timer(129.9) == []
    record = one_record(tracker.handle_timer(130.0))
    assert (record.status, record.response_ms, record.ts) == ("no_response", 0.0, 100.0)
    assert "30" in record.reject_reason
    assert tracker.get_timer() is None
    (late,) = tracker.pool_data(answer(4), 131.0)
    assert isinstance(late, LateAnswer)
    assert (late.nonce, late.accepted, late.late_ms) == ("00000001", True, 1000.0)
    stats = tracker.statistics()
    assert (stats["no_response"], stats["late_answers"], stats["unmatched_responses"]) == (1, 1, 0)
    # Nothing is owed any more: a further answer with that id matches nothing.
    assert isinstance(tracker.pool_data(answer(4), 132.0)[0], UnmatchedAnswer)


def test_unanswered_subscribe_expires_silently_and_frees_its_id() -> None:
    tracker = Sv1Tracker(context=CONTEXT, submit_timeout_s=5.0)
    tracker.miner_data(line({"id": 4, "method": "mining.multi_version", "params": [1]}), 0.0)
    assert tracker.handle_timer(6.0) == []
    tracker.miner_data(submit(4, "bf", "00000001"), 7.0)
    assert one_record(tracker.pool_data(answer(4), 7.5)).status == "accepted"


def test_connection_lost_resolves_every_pending_submit(tracker: Sv1Tracker) -> None:
    subscribed(tracker, "08000002")
    tracker.miner_data(line({"id": 2, "method": "mining.authorize", "params": ["w", "x"]}), 0.0)
    tracker.miner_data(submit(4, "bf", "00000001") + submit(5, "bf", "00000002"), 1.0)
    found = records(tracker.connection_lost(2.0))
    assert [(r.nonce, r.status) for r in found] == [
        ("00000001", "no_response"),
        ("00000002", "no_response"),
    ]
    assert tracker.connection_lost(3.0) == []
    assert tracker.get_timer() is None


def test_outstanding_table_is_bounded() -> None:
    tracker = Sv1Tracker(context=CONTEXT, max_outstanding=3)
    subscribed(tracker, "08000002")
    events: list[Event] = []
    for i in range(5):
        events += tracker.miner_data(submit(i, "bf", f"{i:08x}"), float(i))
    evicted = records(events)
    assert [(r.nonce, r.status) for r in evicted] == [
        ("00000000", "no_response"),
        ("00000001", "no_response"),
    ]
    assert tracker.statistics()["outstanding_requests"] == 3
    assert tracker.statistics()["evicted_requests"] == 2
    assert one_record(tracker.pool_data(answer(3), 9.0)).nonce == "00000003"
    (late,) = tracker.pool_data(answer(0), 9.0)  # given up, but still owed
    assert isinstance(late, LateAnswer) and late.nonce == "00000000"


def test_pong_request_does_not_steal_an_answer(tracker: Sv1Tracker) -> None:
    subscribed(tracker, "08000002")
    tracker.pool_data(b'{"id":5,"method":"mining.ping","params":[]}\n', 0.0)
    tracker.miner_data(b'{"id":5,"method":"pong","params":[]}\n', 0.0)
    tracker.miner_data(submit(5, "bf", "00000001"), 1.0)
    assert one_record(tracker.pool_data(answer(5), 1.0)).status == "accepted"


def test_bad_lines_are_skipped_and_the_stream_goes_on(tracker: Sv1Tracker) -> None:
    subscribed(tracker, "08000002")
    tracker.pool_data(notify(SLUSH), 0.0)
    events = tracker.pool_data(
        b'{"id": 10, "result": null, "error": (21, "Job not found", null)}\n'
        b"\x00\x01binary junk\xff\n"
        b'{"id":null,"method":"mining.set_difficulty","params":["high"]}\n'
        b'{"id":null,"method":"client.show_message","params":["Welcome to the pool!"]}\n',
        1.0,
    )
    skipped = [e for e in events if isinstance(e, LineSkipped)]
    assert [e.side for e in skipped] == ["pool", "pool", "pool"]
    assert "invalid JSON" in skipped[0].reason
    assert "difficulty" in skipped[2].reason
    assert skipped[1].excerpt.startswith("b'\\x00\\x01binary")
    assert events[-1] == PoolMessage(text="Welcome to the pool!")
    assert tracker.statistics()["skipped_from_pool"] == 3


def test_malformed_submit_is_still_a_row(tracker: Sv1Tracker) -> None:
    subscribed(tracker, "08000002")
    tracker.pool_data(notify(SLUSH), 0.0)
    bad = b'{"id":77,"method":"mining.submit","params":["w1","bf","00000001","504e86ed",3000000002]}\n'
    events = tracker.miner_data(bad, 1.0)
    assert len(events) == 1 and isinstance(events[0], LineSkipped) and events[0].side == "miner"
    record = one_record(tracker.pool_data(answer(77, None, "Invalid nonce"), 1.2))
    assert (record.nonce, record.share_hash, record.share_difficulty) == ("3000000002", "", 0.0)
    assert (record.status, record.reject_reason, record.worker) == (
        "rejected",
        "Invalid nonce",
        "w1",
    )
    assert record.network_difficulty == pytest.approx(SLUSH["nbits_difficulty"], rel=1e-12)


def test_uncomputable_fields_give_an_empty_hash(tracker: Sv1Tracker) -> None:
    subscribed(tracker, "08000002")
    tracker.pool_data(notify(SLUSH), 0.0)
    tracker.miner_data(submit(1, "bf", "zzzzzzzz") + submit(2, "bf", "1234"), 1.0)
    found = records(tracker.pool_data(answer(1, False) + answer(2, False), 1.0))
    assert [(r.share_hash, r.share_difficulty) for r in found] == [("", 0.0), ("", 0.0)]
    assert tracker.statistics()["uncomputable_shares"] == 2


def test_framing_error_keeps_the_submit_before_it() -> None:
    tracker = Sv1Tracker(context=CONTEXT, max_line_bytes=200)
    subscribed(tracker, "08000002")
    with pytest.raises(RemoteProtocolError) as info:
        tracker.miner_data(submit(4, "bf", "00000001") + b"{" * 300 + b"\n", 1.0)
    assert info.value.fatal is True
    record = one_record(tracker.connection_lost(2.0))
    assert (record.nonce, record.status) == ("00000001", "no_response")


def test_reconnect_and_show_message_events(tracker: Sv1Tracker) -> None:
    events = tracker.pool_data(
        b'{"id":null,"method":"client.reconnect","params":["eu.pool.example",3333,0]}\n'
        b'{"id":null,"method":"client.reconnect","params":[]}\n'
        b'{"id":null,"method":"client.show_message","params":["maintenance at 12:00"]}\n',
        0.0,
    )
    assert events == [
        PoolReconnectRequested(host="eu.pool.example", port=3333, wait_s=0.0),
        PoolReconnectRequested(host=None, port=None, wait_s=0.0),
        PoolMessage(text="maintenance at 12:00"),
    ]


def test_set_upstream_names_later_shares(tracker: Sv1Tracker) -> None:
    subscribed(tracker, "08000002")
    tracker.miner_data(submit(1, "bf", "00000001"), 1.0)
    tracker.set_upstream("pool-b")
    tracker.miner_data(submit(2, "bf", "00000002"), 1.0)
    found = records(tracker.pool_data(answer(1) + answer(2), 1.0))
    assert [r.upstream for r in found] == ["pool-a", "pool-b"]


def test_job_table_is_bounded_and_clean_jobs_keeps_old_jobs() -> None:
    tracker = Sv1Tracker(context=CONTEXT, max_jobs=2)
    subscribed(tracker, "08000002")
    tracker.pool_data(notify(SLUSH, job_id="bf"), 0.0)
    tracker.pool_data(notify(SLUSH, job_id="j2", clean=True), 0.0)
    tracker.miner_data(submit(1, "bf", SLUSH["nonce"]), 1.0)  # stale, still rebuilt
    tracker.pool_data(notify(SLUSH, job_id="j3", clean=True), 1.0)
    tracker.miner_data(submit(2, "bf", SLUSH["nonce"]), 2.0)  # dropped by the bound
    stale, dropped = records(
        tracker.pool_data(answer(1, None, [21, "Stale", None]) + answer(2, False), 3)
    )
    assert stale.share_hash == SLUSH["expected_hash_be"]
    assert stale.status == "rejected"
    assert dropped.share_hash == ""
    assert tracker.statistics()["jobs_known"] == 2


def test_unusable_subscribe_result_is_reported(tracker: Sv1Tracker) -> None:
    tracker.miner_data(line({"id": 0, "method": "mining.subscribe", "params": []}), 0.0)
    events = tracker.pool_data(
        b'{"id":0,"error":null,"result":[["mining.notify","1"],"{}",4]}\n', 0
    )
    assert len(events) == 1 and isinstance(events[0], LineSkipped)
    assert "extranonce1" in events[0].reason


def test_tracker_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="submit_timeout_s"):
        Sv1Tracker(context=CONTEXT, submit_timeout_s=0)
    with pytest.raises(ValueError, match="max_jobs"):
        Sv1Tracker(context=CONTEXT, max_jobs=0)


def test_late_answers_never_land_on_the_next_share_with_the_same_id() -> None:
    """cpuminer (every submit id 4) flooding a pool that falls behind, as seen on ckpool.

    More submits than the outstanding limit, some timing out, every one answered
    by the pool in the order it read them, each with its own verdict: every row
    has its own share's verdict or no_response, never another share's.
    """
    limit, total = 8, 40
    tracker = Sv1Tracker(context=CONTEXT, submit_timeout_s=5.0, max_outstanding=limit)
    subscribed(tracker, "08000002")
    rows: dict[str, ShareRecord] = {}
    late: dict[str, LateAnswer] = {}

    def take(events: list[Event]) -> None:
        for e in events:
            if isinstance(e, ShareResolved):
                assert e.record.nonce not in rows, "a share recorded twice"
                rows[e.record.nonce] = e.record
            elif isinstance(e, LateAnswer):
                late[e.nonce] = e

    # The pool's own verdicts, one per share in the order it reads them.
    pool_verdicts = {f"{i:08x}": i % 3 != 0 for i in range(total)}
    answered = 0
    for i in range(total):
        take(tracker.miner_data(submit(4, "bf", f"{i:08x}"), float(i)))
        # The pool answers slowly: one answer for every two submits after a lag,
        # and once, a pause longer than the submit timeout.
        if i >= 12 and i % 2 == 0:
            take(tracker.handle_timer(float(i) + (7.0 if i == 20 else 0.0)))
            nonce = f"{answered:08x}"
            result = True if pool_verdicts[nonce] else None
            error = None if pool_verdicts[nonce] else [23, "Low difficulty share", None]
            take(tracker.pool_data(answer(4, result, error), float(i)))
            answered += 1
    while answered < total:  # the pool catches up
        nonce = f"{answered:08x}"
        result = True if pool_verdicts[nonce] else None
        error = None if pool_verdicts[nonce] else [23, "Low difficulty share", None]
        take(tracker.pool_data(answer(4, result, error), 100.0))
        answered += 1

    assert sorted(rows) == sorted(pool_verdicts)  # one row per submit
    evicted = tracker.statistics()["evicted_requests"]
    assert evicted > 0 and late, "the scenario must give up on some submits"
    for nonce, row in rows.items():
        if row.status == "no_response":
            # Given up: its own verdict came late and was reported apart.
            assert late[nonce].accepted == pool_verdicts[nonce]
        else:
            assert (row.status == "accepted") == pool_verdicts[nonce], nonce
            assert nonce not in late
    assert len(late) == sum(1 for r in rows.values() if r.status == "no_response")
    assert tracker.statistics()["unmatched_responses"] == 0


@pytest.mark.parametrize(
    "params",
    [
        None,
        [],
        ["w"],
        ["w", 1, 2, 3, 4],
        ["w", "bf", "00000001", "504e86ed", None],
        "not a list",
        {"worker": "w"},
        ["w", "bf", "00000001", "504e86ed", "00000001", 5],
    ],
)
def test_a_malformed_submit_is_one_row_with_the_pools_verdict(params: Any) -> None:
    """Forwarded as it is (a permissive pool may accept it), so it is a row like any other."""
    tracker = Sv1Tracker(context=CONTEXT)
    subscribed(tracker, "08000002")
    tracker.pool_data(notify(SLUSH, job_id="bf"), 0.0)
    sent = line({"id": 9, "method": "mining.submit", "params": params})
    found = records(tracker.miner_data(sent, 1.0))
    found += records(tracker.pool_data(answer(9, None, [20, "Other/Unknown", None]), 1.5))
    assert len(found) == 1
    assert (found[0].status, found[0].reject_reason) == ("rejected", "20 Other/Unknown")
    found = records(tracker.miner_data(line({**orjson.loads(sent), "id": 10}), 2.0))
    found += records(tracker.pool_data(answer(10), 2.5))
    assert [r.status for r in found] == ["accepted"]


def test_deadlines_follow_the_monotonic_clock_and_rows_the_wall_clock() -> None:
    """A wall-clock step (NTP) moves no deadline; the row keeps the wall time it was read at."""
    tracker = Sv1Tracker(context=CONTEXT, submit_timeout_s=5.0)
    subscribed(tracker, "f000000d", now=100.0)
    tracker.pool_data(notify(SLUSH, job_id="j1"), 100.0, wall=1_800_000_000.0)
    tracker.miner_data(submit(9, "j1", "00000001"), 100.0, wall=1_800_000_000.25)
    assert tracker.get_timer() == 105.0
    # The wall clock jumped an hour ahead meanwhile: nothing expires before 105 monotonic.
    assert records(tracker.handle_timer(104.9)) == []
    (row,) = records(tracker.handle_timer(105.0))
    assert row.status == "no_response" and row.ts == 1_800_000_000.25
    # A verdict's round trip is measured on the monotonic clock too.
    tracker.miner_data(submit(10, "j1", "00000002"), 200.0, wall=1_700_000_000.0)
    answered = one_record(tracker.pool_data(answer(10), 200.125, wall=1_900_000_000.0))
    assert answered.ts == 1_700_000_000.0 and answered.response_ms == pytest.approx(125.0)
