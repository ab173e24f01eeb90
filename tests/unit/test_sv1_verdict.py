"""The pool's verdict on a submit, for every answer shape in sv1_transcripts.md 3.5."""

from __future__ import annotations

import pytest

from stratum_proxy.sv1.messages import Response
from stratum_proxy.sv1.parser import parse_line
from stratum_proxy.sv1.verdict import MAX_REASON_CHARS, verdict


def _verdict_of(line: bytes) -> tuple[bool, str]:
    msg = parse_line(line)
    assert isinstance(msg, Response)
    return verdict(msg.result, msg.error, msg.reject_reason)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b'{"error": null, "id": 4, "result": true}', (True, "")),
        (b'{"id":5,"error":null,"result":true}', (True, "")),
        (b'{"result":true,"error":null,"id":1207}', (True, "")),
        (
            b'{"id":19992,"result":null,"error":[23,"Low difficulty",null]}',
            (False, "23 Low difficulty"),
        ),
        (b'{"id":4,"result":null,"error":[21,"Job not found",""]}', (False, "21 Job not found")),
        (
            b'{"reject-reason":"Above target 2","result":false,"error":null,"id":8}',
            (False, "Above target 2"),
        ),
        (b'{"result":false,"error":"Stale","id":618}', (False, "Stale")),
        (b'{"result":null,"error":"Stale","id":618}', (False, "Stale")),
        (
            b'{"jsonrpc":"2.0","error":{"code":22,"message":"duplicate share","data":null},'
            b'"id":42}',
            (False, "22 duplicate share"),
        ),
        (
            b'{"id":3,"result":false,"error":[24,"init_auth: sustainhash.firmware",null]}',
            (False, "24 init_auth: sustainhash.firmware"),
        ),
        (
            b'{"id":9,"result":null,"error":[23,"Difficulty too low","nonce above target"]}',
            (False, "23 Difficulty too low (nonce above target)"),
        ),
    ],
)
def test_transcript_answer_shapes(line: bytes, expected: tuple[bool, str]) -> None:
    assert _verdict_of(line) == expected


def test_false_without_any_reason_says_so() -> None:
    accepted, reason = _verdict_of(b'{"id":1,"result":false,"error":null}')
    assert accepted is False
    assert "no reason" in reason


def test_null_result_and_null_error_is_not_accepted() -> None:
    accepted, reason = _verdict_of(b'{"id":1,"result":null,"error":null}')
    assert accepted is False
    assert "no reason" in reason


def test_missing_result_is_not_accepted() -> None:
    assert _verdict_of(b'{"id":1,"error":null}')[0] is False


@pytest.mark.parametrize("result", [1, "true", "ok", [], {"accepted": True}])
def test_only_a_literal_true_is_accepted(result: object) -> None:
    accepted, reason = verdict(result, None)
    assert accepted is False
    assert reason


def test_true_with_an_error_is_not_accepted() -> None:
    assert verdict(True, [21, "Job not found", None]) == (False, "21 Job not found")


def test_error_and_reject_reason_are_both_kept() -> None:
    assert verdict(False, [23, "Low difficulty", None], "Above target") == (
        False,
        "23 Low difficulty; Above target",
    )


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        ([20], "20"),
        ({"message": "Stale"}, "Stale"),
        ({"code": 21}, "21"),
        (42, "42"),
        ({"weird": 1}, '{"weird":1}'),
    ],
)
def test_unusual_error_shapes_keep_the_pool_text(error: object, reason: str) -> None:
    assert verdict(None, error) == (False, reason)


def test_huge_reasons_are_capped() -> None:
    accepted, reason = verdict(False, "x" * 10_000)
    assert accepted is False
    assert len(reason) == MAX_REASON_CHARS
