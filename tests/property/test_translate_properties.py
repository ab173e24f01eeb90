"""Translate mode invariants under arbitrary miner input.

Whatever a miner sends as a submit, it gets exactly one answer and exactly one
row (after the pool connection ends, unanswered ones are no_response rows), and
nothing but our own protocol errors is ever raised.
"""

from __future__ import annotations

import os
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from stratum_proxy.errors import RemoteProtocolError
from stratum_proxy.sim.sv2_pool_config import TEST_AUTHORITY_SECRET, Sv2PoolConfig
from stratum_proxy.sim.sv2_pool_core import Sv2PoolState
from stratum_proxy.sv2.client import Sv2Client
from stratum_proxy.sv2.crypto import xonly_pubkey
from stratum_proxy.sv2.settings import Sv2Settings
from stratum_proxy.translate import events as tev
from stratum_proxy.translate.core import Translator

NOW = 1_800_000_000.0
_HEX = st.text("0123456789abcdefABCDEF", max_size=12)
_PARAM = st.one_of(
    _HEX, st.sampled_from(["1", "2", "00000000", ""]), st.integers(-(2**63), 2**63 - 1), st.none()
)


def _rig(mode: str) -> tuple[Translator, Any]:
    pool = Sv2PoolState(Sv2PoolConfig(answer_shares=False, difficulty=1e-12))
    conn = pool.new_connection(NOW, os.urandom)
    client = Sv2Client(
        authority_pubkey=xonly_pubkey(TEST_AUTHORITY_SECRET),
        now=NOW,
        rng=os.urandom,
        endpoint_host="h",
        endpoint_port=1,
    )
    tr = Translator(
        client=client,
        settings=Sv2Settings(extranonce_mode=mode),
        upstream="p",
        proxy_id="x",
        max_line_bytes=4096,
        max_jobs=8,
    )
    events = tr.connection_made() + tr.add_miner(1, "m", NOW)
    events += tr.miner_data(1, b'{"id":"s","method":"mining.subscribe","params":[]}\n', NOW)
    for _ in range(6):
        events = _to_pool(conn, events)
        events += tr.pool_data(conn.data_to_send(), NOW)
    _to_pool(conn, events)
    return tr, conn


def _to_pool(conn: Any, events: list[tev.TranslateEvent]) -> list[tev.TranslateEvent]:
    """Deliver the SendToPool events; the rest is returned in order."""
    rest = []
    for event in events:
        if isinstance(event, tev.SendToPool):
            conn.receive_data(event.data, NOW)
        else:
            rest.append(event)
    return rest


@settings(max_examples=60, deadline=None)
@given(
    mode=st.sampled_from(["per_miner", "aggregated"]),
    submits=st.lists(st.lists(_PARAM, min_size=0, max_size=7), min_size=1, max_size=8),
    chunk=st.integers(1, 64),
)
def test_every_submit_gets_one_answer_and_one_row(
    mode: str, submits: list[list[Any]], chunk: int
) -> None:
    tr, conn = _rig(mode)
    stream = b"".join(
        orjson.dumps({"id": 100 + i, "method": "mining.submit", "params": p}) + b"\n"
        for i, p in enumerate(submits)
    )
    events: list[tev.TranslateEvent] = []
    for at in range(0, len(stream), chunk):
        try:
            events += _to_pool(conn, tr.miner_data(1, stream[at : at + chunk], NOW))
        except RemoteProtocolError:
            raise AssertionError("a submit line closed the miner") from None
    events += tr.connection_lost(NOW + 1, "end of test")
    answers = [
        orjson.loads(line)
        for e in events
        if isinstance(e, tev.SendToMiner)
        for line in e.data.splitlines()
    ]
    submit_answers = [a["id"] for a in answers if isinstance(a.get("id"), int)]
    assert sorted(submit_answers) == [100 + i for i in range(len(submits))]
    rows = [e.record for e in events if isinstance(e, tev.ShareRecorded)]
    assert len(rows) == len(submits)
    assert len(conn.pool.judged) == sum(1 for r in rows if r.status == "no_response")
