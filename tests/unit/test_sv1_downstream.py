"""The SV1 pool-side session of translate mode: what a miner is answered, byte for byte."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from stratum_proxy.sv1.codec import LineTooLongError
from stratum_proxy.sv1.downstream import (
    LineIgnored,
    MalformedSubmit,
    MinerAuthorized,
    MinerSubscribed,
    SubmitReceived,
    Sv1Downstream,
)


def _session() -> Sv1Downstream:
    return Sv1Downstream(max_line_bytes=1024, version_mask=0x1FFFE000)


def _sent(session: Sv1Downstream) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in session.data_to_send().splitlines()]


def test_subscribe_answer_carries_extranonce_once_assigned() -> None:
    s = _session()
    assert s.receive_data(b'{"id":1,"method":"mining.subscribe","params":[]}\n') == []
    assert _sent(s) == []
    event = s.assign(bytes.fromhex("0a0b0c0d0001"), 4)
    assert event == MinerSubscribed(extranonce1=bytes.fromhex("0a0b0c0d0001"), extranonce2_size=4)
    (answer,) = _sent(s)
    assert answer["id"] == 1 and answer["result"][1:] == ["0a0b0c0d0001", 4]
    assert [sub[0] for sub in answer["result"][0]] == ["mining.set_difficulty", "mining.notify"]
    # A second subscribe is answered at once.
    (again,) = s.receive_data(b'{"id":9,"method":"mining.subscribe","params":["x"]}\n')
    assert isinstance(again, MinerSubscribed) and _sent(s)[0]["id"] == 9


def test_byte_by_byte_input_gives_the_same_events() -> None:
    data = (
        b'{"id":2,"method":"mining.authorize","params":["farm.w7","x"]}\r\n'
        b'{"id":3,"method":"mining.submit","params":["farm.w7","1","00000001","65000000","0000abcd"]}\n'
    )
    whole, split = _session(), _session()
    events = whole.receive_data(data)
    one_by_one = [e for i in range(len(data)) for e in split.receive_data(data[i : i + 1])]
    assert events == one_by_one
    assert events[0] == MinerAuthorized(worker="farm.w7")
    assert isinstance(events[1], SubmitReceived) and events[1].submit.nonce == "0000abcd"
    assert _sent(whole) == _sent(split) == [{"id": 2, "result": True, "error": None}]


@pytest.mark.parametrize(
    ("requested", "granted"),
    [("ffffffff", "1fffe000"), ("00ffffff", "00ffe000"), ("00000fff", None)],
)
def test_version_rolling_mask_is_requested_and_offered(requested: str, granted: str | None) -> None:
    s = _session()
    line = {
        "id": 4,
        "method": "mining.configure",
        "params": [["version-rolling"], {"version-rolling.mask": requested}],
    }
    s.receive_data(orjson.dumps(line) + b"\n")
    (answer,) = _sent(s)
    if granted is None:
        assert answer["result"] == {"version-rolling": False} and s.version_mask == 0
    else:
        assert answer["result"]["version-rolling.mask"] == granted
        assert s.version_mask == int(granted, 16)


def test_answers_for_submits_and_other_requests() -> None:
    s = _session()
    s.answer_submit(7, None)
    s.answer_submit("s8", 21, "stale-share")
    s.receive_data(
        b'{"id":5,"method":"mining.suggest_difficulty","params":[1024]}\n'
        b'{"id":6,"method":"mining.extranonce.subscribe","params":[]}\n'
        b'{"id":7,"method":"client.get_version","params":[]}\n'
    )
    sent = _sent(s)
    assert sent[0] == {"id": 7, "result": True, "error": None}
    assert sent[1] == {"id": "s8", "result": None, "error": [21, "stale-share", None]}
    assert sent[2]["result"] is True and sent[3]["result"] is True and s.extranonce_subscribed
    assert sent[4]["error"][0] == 20


def test_garbage_is_skipped_and_a_bad_submit_is_still_a_submit() -> None:
    s = _session()
    events = s.receive_data(
        b'not json\n{"id":4,"method":"mining.submit","params":["w",1,"00","00000000"]}\n'
    )
    assert isinstance(events[0], LineIgnored)
    assert isinstance(events[1], MalformedSubmit)
    assert events[1].submit.job_id == "1" and events[1].submit.worker == "w"


def test_a_line_without_end_closes_the_session() -> None:
    with pytest.raises(LineTooLongError):
        _session().receive_data(b"x" * 2048)
