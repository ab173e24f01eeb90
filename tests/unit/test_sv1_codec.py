"""LineBuffer: SV1 framing fed whole, byte by byte, with partial tails and CRLF."""

from __future__ import annotations

import pytest

from stratum_proxy.errors import RemoteProtocolError
from stratum_proxy.sv1.codec import LineBuffer, LineTooLongError

SESSION = (
    b'{"id": 1, "method": "mining.subscribe", "params": ["cpuminer/2.5.1"]}\n'
    b'{"result":[[["mining.notify","6b022209"]],"0922026b",8],"id":1,"error":null}\r\n'
    b"\n"
    b"   \r\n"
    b'{"id": 2, "method": "mining.authorize", "params": ["realpeers.cpuminer1", "x"]}\n'
)
LINES = [
    b'{"id": 1, "method": "mining.subscribe", "params": ["cpuminer/2.5.1"]}',
    b'{"result":[[["mining.notify","6b022209"]],"0922026b",8],"id":1,"error":null}',
    b'{"id": 2, "method": "mining.authorize", "params": ["realpeers.cpuminer1", "x"]}',
]


def test_whole_session_in_one_chunk() -> None:
    assert LineBuffer(1024).feed(SESSION) == LINES


def test_one_byte_at_a_time() -> None:
    buffer = LineBuffer(1024)
    lines: list[bytes] = []
    for i in range(len(SESSION)):
        lines += buffer.feed(SESSION[i : i + 1])
    assert lines == LINES
    assert buffer.pending_bytes == 0


def test_trailing_partial_line_is_kept_until_completed() -> None:
    buffer = LineBuffer(1024)
    assert buffer.feed(SESSION + b'{"id": 3, "method"') == LINES
    assert buffer.pending_bytes == len(b'{"id": 3, "method"')
    assert buffer.feed(b': "mining.ping"}\r') == []
    assert buffer.feed(b"\n") == [b'{"id": 3, "method": "mining.ping"}']
    assert buffer.pending_bytes == 0


def test_crlf_split_between_chunks() -> None:
    buffer = LineBuffer(1024)
    assert buffer.feed(b'{"id":1}\r') == []
    assert buffer.feed(b'\n{"id":2}\r\n') == [b'{"id":1}', b'{"id":2}']


def test_leading_space_is_kept_for_the_parser() -> None:
    # One public fixture has a space before '{'; JSON allows it, so framing keeps it.
    assert LineBuffer(64).feed(b' {"id": 5}\n') == [b' {"id": 5}']


def test_line_at_the_limit_passes_and_one_more_byte_fails() -> None:
    limit = 32
    exact = b"{" + b"x" * (limit - 2) + b"}"
    assert LineBuffer(limit).feed(exact + b"\r\n") == [exact]
    with pytest.raises(RemoteProtocolError) as info:
        LineBuffer(limit).feed(exact + b"x\n")
    assert info.value.fatal is True
    assert "exceeds the 32-byte limit" in str(info.value)


def test_unterminated_overlong_line_fails_before_any_newline() -> None:
    buffer = LineBuffer(16)
    buffer.feed(b"{" * 10)
    with pytest.raises(LineTooLongError) as info:
        buffer.feed(b"{" * 10)
    assert info.value.fatal is True
    assert "unterminated" in str(info.value)


def test_overlong_line_reports_the_complete_lines_before_it() -> None:
    with pytest.raises(LineTooLongError) as info:
        LineBuffer(40).feed(b'{"id":1}\n{"id":2}\n' + b"{" * 41 + b"\n")
    assert info.value.lines_before == [b'{"id":1}', b'{"id":2}']


def test_overlong_tail_after_good_lines_reports_them() -> None:
    with pytest.raises(LineTooLongError) as info:
        LineBuffer(20).feed(b'{"id":1}\n' + b"{" * 30)
    assert info.value.lines_before == [b'{"id":1}']


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        LineBuffer(0)
