"""Property tests for the SV1 core: framing is chunking-invariant, the tracker
never fails with anything but RemoteProtocolError, and no share is lost or
resolved twice whatever the pool does."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from stratum_proxy.errors import RemoteProtocolError
from stratum_proxy.sv1.codec import LineBuffer
from stratum_proxy.sv1.events import Event, ShareResolved
from stratum_proxy.sv1.records import ShareContext
from stratum_proxy.sv1.tracker import Sv1Tracker

CONTEXT = ShareContext(proxy_id="p", upstream="u", channel_id=1, miner_addr="m")
LIMIT = 200

line_bodies = st.binary(max_size=60).map(lambda b: b.replace(b"\n", b"").rstrip(b"\r"))


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in pairwise(edges)]


@given(
    bodies=st.lists(line_bodies, max_size=20),
    crlf=st.lists(st.booleans(), min_size=20, max_size=20),
    tail=line_bodies,
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=30),
)
def test_line_splitting_is_invariant_under_chunking(
    bodies: list[bytes], crlf: list[bool], tail: bytes, cuts: list[int]
) -> None:
    data = b"".join(body + (b"\r\n" if crlf[i] else b"\n") for i, body in enumerate(bodies)) + tail
    expected = [b for b in bodies if b.strip(b" \t\r\n")]
    whole = LineBuffer(LIMIT)
    assert whole.feed(data) == expected
    chunked = LineBuffer(LIMIT)
    got: list[bytes] = []
    for chunk in _chunks(data, cuts):
        got += chunked.feed(chunk)
    assert got == expected
    assert chunked.pending_bytes == whole.pending_bytes == len(tail)


@given(size=st.integers(min_value=LIMIT + 1, max_value=LIMIT * 3), cuts=st.lists(st.integers()))
def test_overlong_line_fails_whatever_the_chunking(size: int, cuts: list[int]) -> None:
    data = b"{" * size + b"\n"
    buffer = LineBuffer(LIMIT)
    try:
        for chunk in _chunks(data, cuts):
            buffer.feed(chunk)
    except RemoteProtocolError as exc:
        assert exc.fatal
    else:
        raise AssertionError("an overlong line was accepted")


def _feed_safely(tracker: Sv1Tracker, side: str, data: bytes, now: float) -> list[Event]:
    feed = tracker.miner_data if side == "miner" else tracker.pool_data
    try:
        events = feed(data, now)
    except RemoteProtocolError as exc:
        assert exc.fatal  # only framing raises; bad lines are events
        return tracker.connection_lost(now)
    assert isinstance(events, list)
    return events


@settings(max_examples=300)
@given(st.lists(st.tuples(st.sampled_from(["miner", "pool"]), st.binary(max_size=300)), max_size=8))
def test_any_bytes_give_events_or_a_protocol_error(feeds: list[tuple[str, bytes]]) -> None:
    tracker = Sv1Tracker(context=CONTEXT, max_line_bytes=LIMIT)
    for i, (side, data) in enumerate(feeds):
        _feed_safely(tracker, side, data, float(i))
    tracker.handle_timer(1e12)
    tracker.connection_lost(1e12)


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.sampled_from(["00000000", "1fffe000", "deadbeef", "0a0b"])
)
json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=10) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
methods = st.sampled_from(
    [
        "mining.submit", "mining.notify", "mining.set_difficulty", "mining.subscribe",
        "mining.authorize", "mining.configure", "mining.suggest_difficulty",
        "mining.extranonce.subscribe", "mining.set_extranonce", "mining.set_version_mask",
        "client.reconnect", "client.show_message", "mining.ping", "client.get_version", "pong",
    ]
)  # fmt: skip
rpc_ids = st.none() | st.integers(0, 5) | st.sampled_from(["4", "auth"]) | json_values
messages = st.one_of(
    st.fixed_dictionaries({"id": rpc_ids, "method": methods, "params": json_values}),
    st.fixed_dictionaries(
        {"id": rpc_ids, "result": json_values, "error": json_values},
        optional={"reject-reason": json_values},
    ),
)


@settings(max_examples=150)
@given(st.lists(st.tuples(st.sampled_from(["miner", "pool"]), messages), max_size=12))
def test_any_json_messages_give_events_or_a_protocol_error(
    feeds: list[tuple[str, dict[str, Any]]],
) -> None:
    tracker = Sv1Tracker(context=CONTEXT, max_line_bytes=4096, max_outstanding=4)
    for i, (side, msg) in enumerate(feeds):
        _feed_safely(tracker, side, orjson.dumps(msg) + b"\n", float(i))
    tracker.connection_lost(1e12)


SLUSH_NOTIFY = (
    b'{"params": ["bf", "4d16b6f85af6e2198f44ae2a6de67f78487ae5611b77c6c0440b921e00000000",'
    b'"01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff2002'
    b'0862062f503253482f04b8864e5008","072f736c7573682f000000000100f2052a010000001976a914d23f'
    b'cdf86f7e756a64a7a9688ef9903327048ed988ac00000000", [],"00000002", "1c2ac4af", "504e86b9",'
    b' false], "id": null, "method": "mining.notify"}\n'
)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("submit"), st.sampled_from([4, "4", 5, None])),
        st.tuples(st.just("answer"), st.sampled_from([4, "4", 5, None, 99])),
        st.tuples(st.just("notify"), st.none()),
        st.tuples(st.just("wait"), st.integers(0, 40)),
    ),
    max_size=40,
)


@settings(max_examples=200)
@given(operations, st.integers(1, 6))
def test_every_submit_is_resolved_exactly_once(ops: list[tuple[str, Any]], limit: int) -> None:
    tracker = Sv1Tracker(context=CONTEXT, submit_timeout_s=30.0, max_outstanding=limit)
    tracker.miner_data(b'{"id":1,"method":"mining.subscribe","params":[]}\n', 0.0)
    tracker.pool_data(b'{"id":1,"result":[[["mining.notify","a"]],"08000002",4],"error":null}\n', 0)
    now, submits, events = 0.0, 0, []
    for kind, arg in ops:
        if kind == "submit":
            submits += 1
            params = ["w", "bf", "00000001", "504e86ed", f"{submits:08x}"]
            data = {"id": arg, "method": "mining.submit", "params": params}
            events += tracker.miner_data(orjson.dumps(data) + b"\n", now)
        elif kind == "answer":
            events += tracker.pool_data(orjson.dumps({"id": arg, "result": True}) + b"\n", now)
        elif kind == "notify":
            events += tracker.pool_data(SLUSH_NOTIFY, now)
        else:
            now += arg
            events += tracker.handle_timer(now)
    events += tracker.connection_lost(now)
    resolved = [e.record for e in events if isinstance(e, ShareResolved)]
    assert len(resolved) == submits
    assert sorted(r.nonce for r in resolved) == [f"{i:08x}" for i in range(1, submits + 1)]
    assert all(r.status in ("accepted", "no_response") for r in resolved)
