"""The aggregated SV1 pool connection: setup, own ids, verdicts paired exactly, timeouts."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from stratum_proxy.aggregate import upstream as up


def _sent(events: list[Any]) -> list[dict[str, Any]]:
    return [orjson.loads(e.data) for e in events if isinstance(e, up.SendToPool)]


def _line(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj) + b"\n"


def _ready(mask_answer: Any = None) -> tuple[up.Sv1Upstream, list[Any]]:
    client = up.Sv1Upstream(user="farm1", password="x", submit_timeout_s=30.0)
    sent = _sent(client.start(0.0))
    assert [s["method"] for s in sent] == [
        "mining.subscribe", "mining.configure", "mining.authorize",
    ]  # fmt: skip
    assert sent[2]["params"] == ["farm1", "x"]
    ids = [s["id"] for s in sent]
    events = client.receive_data(
        _line({"id": ids[0], "result": [[["mining.notify", "a"]], "f000000d", 8], "error": None})
        + _line({"id": ids[2], "result": True, "error": None}),
        0.1,
    )
    assert not any(isinstance(e, up.UpstreamReady) for e in events)  # waits for configure
    configure = mask_answer or {"version-rolling": True, "version-rolling.mask": "1fffe000"}
    events += client.receive_data(_line({"id": ids[1], "result": configure, "error": None}), 0.2)
    return client, events


def test_setup_gives_the_extranonce_space_and_the_granted_mask() -> None:
    client, events = _ready()
    (ready,) = [e for e in events if isinstance(e, up.UpstreamReady)]
    assert (ready.extranonce1, ready.extranonce2_size, ready.version_mask) == (
        bytes.fromhex("f000000d"), 8, 0x1FFFE000,
    )  # fmt: skip
    assert client.ready


def test_a_pool_that_ignores_configure_is_used_without_version_rolling() -> None:
    client = up.Sv1Upstream(user="u", password="p", submit_timeout_s=30.0, setup_timeout_s=5.0)
    ids = [s["id"] for s in _sent(client.start(0.0))]
    client.receive_data(
        _line({"id": ids[0], "result": [[], "00", 4], "error": None})
        + _line({"id": ids[2], "result": True, "error": None}),
        1.0,
    )
    assert client.get_timer() == 5.0
    (ready,) = [e for e in client.handle_timer(5.0) if isinstance(e, up.UpstreamReady)]
    assert ready.version_mask == 0


def test_a_refused_pool_user_makes_the_connection_useless() -> None:
    client = up.Sv1Upstream(user="u", password="bad", submit_timeout_s=30.0)
    ids = [s["id"] for s in _sent(client.start(0.0))]
    events = client.receive_data(
        _line({"id": ids[2], "result": False, "error": [24, "Unauthorized worker", None]}), 1.0
    )
    (refused,) = [e for e in events if isinstance(e, up.UpstreamRefused)]
    assert "24 Unauthorized worker" in refused.reason


def test_verdicts_land_on_their_own_share_whatever_order_and_lateness() -> None:
    client, _ = _ready()
    ids = []
    for n in range(3):
        (sent,) = _sent(
            client.submit(
                worker="rig", job_id="j", extranonce2="00000001", ntime="66000000",
                nonce=f"{n:08x}", version_bits=None, token=f"share{n}", now=10.0 + n,
            )
        )  # fmt: skip
        ids.append(sent["id"])
    assert len(set(ids)) == 3 and client.pending() == 3
    # The pool answers the third first, the first with an error; the second never.
    events = client.receive_data(
        _line({"id": ids[2], "result": True, "error": None})
        + _line({"id": ids[0], "result": None, "error": [21, "Stale", None]}),
        12.5,
    )
    verdicts = {e.token: e for e in events if isinstance(e, up.ShareVerdict)}
    assert verdicts["share2"].status == "accepted"
    assert (verdicts["share0"].status, verdicts["share0"].reason) == ("rejected", "21 Stale")
    assert verdicts["share0"].resolved_at - verdicts["share0"].submitted_at == pytest.approx(2.5)
    assert client.get_timer() == 41.0
    (gone,) = [e for e in client.handle_timer(41.0) if isinstance(e, up.ShareVerdict)]
    assert (gone.token, gone.status) == ("share1", "no_response")
    (late,) = client.receive_data(_line({"id": ids[1], "result": True, "error": None}), 45.0)
    assert isinstance(late, up.LateVerdict) and late.token == "share1" and late.accepted
    assert late.late_s == pytest.approx(4.0)


def test_jobs_carry_the_difficulty_set_before_them() -> None:
    client, _ = _ready()
    notify = [
        "j1", "00" * 32, "01", "02", [], "20000000", "1d00ffff", "66000000", True,
    ]  # fmt: skip
    events = client.receive_data(
        _line({"id": None, "method": "mining.set_difficulty", "params": [2048]})
        + _line({"id": None, "method": "mining.notify", "params": notify}),
        1.0,
    )
    (job,) = [e for e in events if isinstance(e, up.PoolJob)]
    assert job.difficulty == 2048 and job.notify.job_id == "j1"


def test_connection_lost_turns_every_owed_share_into_no_response() -> None:
    client, _ = _ready()
    client.submit(
        worker="rig", job_id="j", extranonce2="00", ntime="66000000", nonce="00000001",
        version_bits="00002000", token="t", now=1.0,
    )  # fmt: skip
    (verdict,) = client.connection_lost(2.0, "pool closed the connection")
    assert (verdict.token, verdict.status, verdict.reason) == (
        "t", "no_response", "pool closed the connection",
    )  # fmt: skip
    assert client.pending() == 0 and client.get_timer() is None


def test_pings_and_version_requests_are_answered_and_garbage_is_reported() -> None:
    client, _ = _ready()
    events = client.receive_data(
        _line({"id": 77, "method": "mining.ping", "params": []})
        + _line({"id": 78, "method": "client.get_version", "params": []})
        + b"not json\n",
        1.0,
    )
    answers = _sent(events)
    assert [a["id"] for a in answers] == [77, 78]
    assert any(isinstance(e, up.PoolNotice) and "line skipped" in e.text for e in events)


def test_work_sent_before_the_setup_finished_is_handed_on_once_ready() -> None:
    client = up.Sv1Upstream(user="u", password="p", submit_timeout_s=30.0)
    ids = [s["id"] for s in _sent(client.start(0.0))]
    notify = ["j1", "00" * 32, "01", "02", [], "20000000", "1d00ffff", "66000000", True]
    early = client.receive_data(
        _line({"id": ids[0], "result": [[], "00", 8], "error": None})
        + _line({"id": None, "method": "mining.set_difficulty", "params": [64]})
        + _line({"id": None, "method": "mining.notify", "params": notify}),
        0.1,
    )
    assert not [e for e in early if isinstance(e, up.PoolJob)]  # not ready yet
    later = client.receive_data(
        _line({"id": ids[1], "result": {"version-rolling": False}, "error": None})
        + _line({"id": ids[2], "result": True, "error": None}),
        0.2,
    )
    kinds = [type(e).__name__ for e in later]
    assert kinds == ["UpstreamReady", "PoolJob"]
    assert later[1].difficulty == 64  # type: ignore[union-attr]
