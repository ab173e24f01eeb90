"""The translation core (SV1 miners on SV2 channels) against the sans-I/O test pool, in memory."""

from __future__ import annotations

import os
from typing import Any

import orjson
import pytest

from stratum_proxy.shares import swap_prevhash_words
from stratum_proxy.sim import hasher
from stratum_proxy.sim.chain import share_target
from stratum_proxy.sim.sv2_pool_config import TEST_AUTHORITY_SECRET, Sv2PoolConfig
from stratum_proxy.sim.sv2_pool_core import Sv2PoolState
from stratum_proxy.sv2.client import Sv2Client
from stratum_proxy.sv2.crypto import xonly_pubkey
from stratum_proxy.sv2.settings import Sv2Settings
from stratum_proxy.translate import events as tev
from stratum_proxy.translate.core import Translator

NOW = 1_800_000_000.0
SUBSCRIBE = b'{"id":1,"method":"mining.subscribe","params":["cgminer/4.11"]}\n'
AUTHORIZE = b'{"id":2,"method":"mining.authorize","params":["farm.w1","x"]}\n'


class Rig:
    """Pool connection, client and translator, with SV1 miners as byte queues."""

    def __init__(self, pool: Sv2PoolConfig | None = None, **settings: Any) -> None:
        self.pool = Sv2PoolState(pool or Sv2PoolConfig())
        self.conn = self.pool.new_connection(NOW, os.urandom)
        client = Sv2Client(
            authority_pubkey=xonly_pubkey(TEST_AUTHORITY_SECRET),
            now=NOW,
            rng=os.urandom,
            endpoint_host="127.0.0.1",
            endpoint_port=3336,
            submit_timeout_s=5.0,
        )
        self.tr = Translator(
            client=client,
            settings=Sv2Settings(**settings),
            upstream="pool",
            proxy_id="p1",
            max_line_bytes=4096,
            max_jobs=8,
        )
        self.lines: dict[int, list[dict[str, Any]]] = {}
        self.events: list[tev.TranslateEvent] = []
        self.act(self.tr.connection_made())
        self.pump()

    def act(self, events: list[tev.TranslateEvent], now: float = NOW) -> None:
        """What the shell does: bytes to their sockets, everything else is kept."""
        for event in events:
            if isinstance(event, tev.SendToPool):
                self.conn.receive_data(event.data, now)
            elif isinstance(event, tev.SendToMiner):
                lines = self.lines.setdefault(event.miner_id, [])
                lines.extend(orjson.loads(x) for x in event.data.splitlines())
            else:
                self.events.append(event)

    def pump(self, now: float = NOW) -> None:
        while down := self.conn.data_to_send():
            self.act(self.tr.pool_data(down, now), now)

    def miner(self, miner_id: int, data: bytes = SUBSCRIBE + AUTHORIZE) -> None:
        if miner_id not in self.tr.miners:
            self.act(self.tr.add_miner(miner_id, f"10.0.0.{miner_id}:4028", NOW))
        self.act(self.tr.miner_data(miner_id, data, NOW))
        self.pump()

    def answer(self, miner_id: int, msg_id: Any) -> dict[str, Any]:
        (found,) = [x for x in self.lines[miner_id] if x.get("id") == msg_id and "method" not in x]
        return found

    def last(self, miner_id: int, method: str) -> list[Any]:
        return [x for x in self.lines[miner_id] if x.get("method") == method][-1]["params"]

    def records(self) -> list[Any]:
        return [e.record for e in self.events if isinstance(e, tev.ShareRecorded)]

    def share(self, miner_id: int, *, valid: bool = True, start: int = 0) -> list[str]:
        """Submit params for a share on the miner's current job, found like a miner would."""
        sub = self.answer(miner_id, 1)["result"]
        en1, size = bytes.fromhex(sub[1]), sub[2]
        template = hasher.template_from_notify(self.last(miner_id, "mining.notify"))
        en2 = (miner_id).to_bytes(size, "little")
        header = hasher.header76(template, template.header_prefix(en1, en2), template.version)
        target = share_target(self.last(miner_id, "mining.set_difficulty")[0])
        nonce = hasher.search(header, target, start, 1 << 22, want_valid=valid)
        assert nonce is not None
        return ["farm.w1", template.job_id, en2.hex(), f"{template.ntime:08x}", f"{nonce:08x}"]

    def submit(self, miner_id: int, params: list[str], msg_id: int = 10) -> None:
        line = {"id": msg_id, "method": "mining.submit", "params": params}
        self.miner(miner_id, orjson.dumps(line) + b"\n")


@pytest.mark.parametrize("mode", ["per_miner", "aggregated"])
def test_subscribe_held_until_the_channel_opens_then_difficulty_and_job(mode: str) -> None:
    rig = Rig(extranonce_mode=mode)
    rig.act(rig.tr.add_miner(1, "m", NOW))
    held = rig.tr.miner_data(1, SUBSCRIBE, NOW)  # channel not open yet: no answer
    assert [e for e in held if isinstance(e, tev.SendToMiner)] == []
    rig.act(held)
    rig.pump()
    first = rig.lines[1]
    assert [x.get("method") for x in first] == [None, "mining.set_difficulty", "mining.notify"]
    en1 = bytes.fromhex(first[0]["result"][1])
    channel = next(iter(rig.conn.channels.values()))
    assert en1.startswith(channel.prefix) and first[0]["result"][2] == 4
    assert len(en1) + 4 == len(channel.prefix) + channel.extranonce_size
    assert first[1]["params"] == [pytest.approx(1e-6)]
    assert first[2]["params"][8] is True


def test_notify_fields_follow_the_sv2_job() -> None:
    rig = Rig(Sv2PoolConfig(segwit_coinbase=True))
    rig.miner(1)
    params = rig.last(1, "mining.notify")
    job = rig.pool.current_job()
    t = job.template
    assert params[0] == str(job.job_id)
    assert bytes.fromhex(params[1]) == swap_prevhash_words(t.prevhash)
    assert (bytes.fromhex(params[2]), bytes.fromhex(params[3])) == (t.coinb1, t.coinb2)  # stripped
    assert params[4] == [node.hex() for node in t.branch]
    assert params[5:8] == [f"{t.version:08x}", f"{t.nbits:08x}", f"{t.ntime:08x}"]
    rig.pool.new_job(NOW + 1)
    rig.pump()
    assert rig.last(1, "mining.notify")[8] is False
    rig.pool.new_block(NOW + 2)
    rig.pump()
    assert rig.last(1, "mining.notify")[8] is True


def test_configure_grants_the_intersection_of_masks() -> None:
    rig = Rig(version_mask=0x1FFFE000)
    line = {
        "id": 5,
        "method": "mining.configure",
        "params": [["version-rolling", "minimum-difficulty"], {"version-rolling.mask": "00fff000"}],
    }
    rig.miner(1, orjson.dumps(line) + b"\n")
    result = rig.answer(1, 5)["result"]
    assert result == {
        "version-rolling": True,
        "version-rolling.mask": "00ffe000",
        "minimum-difficulty": False,
    }


@pytest.mark.parametrize("mode", ["per_miner", "aggregated"])
def test_accepted_share_row_matches_the_pool(mode: str) -> None:
    rig = Rig(extranonce_mode=mode)
    rig.miner(1)
    rig.miner(2)
    rig.submit(2, rig.share(2))
    assert rig.answer(2, 10) == {"id": 10, "result": True, "error": None}
    (record,) = rig.records()
    (judged,) = rig.pool.judged
    assert (record.status, record.share_hash, record.channel_id) == (
        "accepted",
        judged.hash_hex,
        judged.channel_id,
    )
    assert record.share_difficulty == pytest.approx(judged.difficulty, rel=1e-12)
    assert record.pool_difficulty == pytest.approx(judged.pool_difficulty)
    assert (record.worker, record.miner_addr, record.protocol) == (
        "farm.w1",
        "10.0.0.2:4028",
        "sv1",
    )


def test_local_rejections_are_rows_and_never_reach_the_pool() -> None:
    rig = Rig()
    rig.miner(1)
    good = rig.share(1)
    rig.submit(1, [good[0], "999", *good[2:]], msg_id=11)
    rig.submit(1, rig.share(1, valid=False), msg_id=12)
    rig.submit(1, [good[0], good[1], "zz", *good[3:]], msg_id=13)
    rig.miner(1, b'{"id":14,"method":"mining.submit","params":["farm.w1",5]}\n')
    assert rig.answer(1, 11)["error"] == [21, "job not found", None]
    assert rig.answer(1, 12)["error"] == [23, "low difficulty share", None]
    assert rig.answer(1, 13)["error"][0] == 20
    assert rig.answer(1, 14)["error"][0] == 20
    reasons = [(r.status, r.reject_reason) for r in rig.records()]
    assert reasons == [
        ("rejected", "proxy: job not found"),
        ("rejected", "proxy: below pool target"),
        ("rejected", "proxy: malformed submit"),
        ("rejected", "proxy: malformed submit"),
    ]
    assert rig.records()[1].share_difficulty > 0  # computed, just too low
    assert rig.pool.judged == []


def test_submit_before_subscribe_is_a_row() -> None:
    rig = Rig()
    rig.act(rig.tr.add_miner(1, "m", NOW))
    rig.miner(1, b'{"id":3,"method":"mining.submit","params":["w","1","00","00","00"]}\n')
    assert rig.answer(1, 3)["error"][0] == 25
    assert [r.reject_reason for r in rig.records()] == ["proxy: not subscribed"]


def test_miner_leaving_with_a_share_in_flight_still_gets_its_row() -> None:
    rig = Rig(Sv2PoolConfig(batch_size=5, batch_delay_s=1.0))
    rig.miner(1)
    rig.submit(1, rig.share(1))
    assert rig.tr.pending_for(1) == 1
    rig.act(rig.tr.remove_miner(1, NOW))
    rig.pump()
    assert rig.conn.closed_channels == []  # not before its verdict came
    rig.conn.handle_timer(NOW + 1.0)
    rig.pump()
    assert [r.status for r in rig.records()] == ["accepted"]
    assert rig.conn.closed_channels == [1]


def test_aggregated_slots_are_unique_and_run_out_cleanly() -> None:
    rig = Rig(
        Sv2PoolConfig(extranonce_size=5), extranonce_mode="aggregated", aggregated_local_bytes=1
    )
    for miner_id in range(1, 258):
        rig.miner(miner_id, SUBSCRIBE)
    prefixes = {rig.answer(m, 1)["result"][1] for m in range(1, 257)}
    assert len(prefixes) == 256
    closes = [e for e in rig.events if isinstance(e, tev.CloseMiner)]
    assert [c.miner_id for c in closes] == [257]
    rig.act(rig.tr.remove_miner(5, NOW))
    rig.miner(300, SUBSCRIBE)
    assert rig.answer(300, 1)["result"][1] == rig.answer(5, 1)["result"][1]  # the freed slot


def test_pool_granting_too_little_extranonce_closes_the_miners() -> None:
    rig = Rig(Sv2PoolConfig(grant_extranonce_size=5), extranonce_mode="aggregated")
    rig.miner(1, SUBSCRIBE)
    (close,) = [e for e in rig.events if isinstance(e, tev.CloseMiner)]
    assert close.miner_id == 1
    assert "granted 5 extranonce bytes, 6 needed" in close.reason
    assert 1 not in rig.lines  # the held subscribe was never answered
    assert rig.conn.closed_channels == [1]


def test_pool_loss_answers_miners_then_closes_them() -> None:
    rig = Rig(Sv2PoolConfig(answer_shares=False))
    rig.miner(1)
    rig.submit(1, rig.share(1))
    rig.act(rig.tr.connection_lost(NOW + 1, "pool closed the connection"))
    rig.pump()
    assert rig.answer(1, 10)["error"] == [20, "no response from pool", None]
    assert [(r.status, r.reject_reason) for r in rig.records()] == [
        ("no_response", "pool closed the connection")
    ]
    assert [e.miner_id for e in rig.events if isinstance(e, tev.CloseMiner)] == [1]


def test_aggregated_channel_tells_the_pool_its_hash_rate_at_most_once_a_second() -> None:
    rig = Rig(extranonce_mode="aggregated", nominal_hashrate_hs=1e12)
    for miner_id in (1, 2, 3):
        rig.miner(miner_id)
    assert rig.tr.get_timer() == NOW + 1.0
    rig.act(rig.tr.handle_timer(NOW + 0.5))
    rig.pump()
    assert rig.conn.updates == 0
    rig.act(rig.tr.handle_timer(NOW + 1.0))
    rig.pump()
    assert rig.conn.updates == 1
    assert rig.tr.get_timer() is None


def test_setup_success_is_a_ready_event_before_anything_else() -> None:
    rig = Rig()
    assert rig.events[:1] == [tev.PoolReady(used_version=2, flags=0)]
    assert [e for e in rig.events if isinstance(e, tev.PoolReady | tev.SetupRefused)] == [
        tev.PoolReady(used_version=2, flags=0)
    ]


def test_setup_error_is_a_refused_event_and_the_connection_is_over() -> None:
    rig = Rig(Sv2PoolConfig(refuse_setup="unsupported-feature-flags"))
    assert rig.events == [tev.SetupRefused(error_code="unsupported-feature-flags")]
    rig.act(rig.tr.add_miner(1, "m", NOW))  # e.g. a miner attached meanwhile
    rig.act(rig.tr.connection_lost(NOW, "pool refused the connection setup"))
    assert [e.miner_id for e in rig.events if isinstance(e, tev.CloseMiner)] == [1]


def test_bytes_come_first_then_what_happened() -> None:
    """A miner's answers are written before a CloseMiner for it is acted on."""
    rig = Rig(Sv2PoolConfig(answer_shares=False))
    rig.miner(1)
    line = orjson.dumps({"id": 10, "method": "mining.submit", "params": rig.share(1)})
    rig.act(rig.tr.miner_data(1, line + b"\n", NOW))
    events = rig.tr.connection_lost(NOW + 1, "gone")
    assert [type(e) for e in events] == [tev.SendToMiner, tev.ShareRecorded, tev.CloseMiner]


def test_reconnect_miner_sends_client_reconnect_through_the_session() -> None:
    rig = Rig()
    rig.miner(1)
    (event,) = rig.tr.reconnect_miner(1)
    assert event == tev.SendToMiner(
        miner_id=1, data=b'{"id":null,"method":"client.reconnect","params":[]}\n'
    )
    assert rig.tr.reconnect_miner(99) == []  # not (or no longer) a miner here


def test_a_wall_clock_jump_moves_no_deadline() -> None:
    """Timeouts follow the monotonic ``now``; the row's ts is the ``wall`` of its submit."""
    rig = Rig(Sv2PoolConfig(answer_shares=False))
    rig.miner(1)
    mono = NOW + 100.0
    line = orjson.dumps({"id": 10, "method": "mining.submit", "params": rig.share(1)})
    rig.act(rig.tr.miner_data(1, line + b"\n", mono, wall=1_000.0))  # wall clock stepped back
    rig.pump(mono)
    assert rig.tr.get_timer() == mono + 5.0
    rig.act(rig.tr.handle_timer(mono + 4.9))
    assert rig.records() == []
    rig.act(rig.tr.handle_timer(mono + 5.0))
    (row,) = rig.records()
    assert (row.status, row.ts, row.response_ms) == ("no_response", 1_000.0, 0.0)
    assert rig.answer(1, 10)["error"] == [20, "no response from pool", None]
    assert rig.tr.get_timer() is None


def test_response_time_is_measured_on_the_monotonic_clock() -> None:
    rig = Rig()
    rig.miner(1)
    mono = NOW + 100.0
    line = orjson.dumps({"id": 10, "method": "mining.submit", "params": rig.share(1)})
    events = rig.tr.miner_data(1, line + b"\n", mono, wall=3e9)  # wall clock far ahead
    (send,) = events
    assert isinstance(send, tev.SendToPool)
    rig.act(events)
    rig.pump(mono + 0.25)
    (row,) = rig.records()
    assert (row.status, row.ts) == ("accepted", 3e9)
    assert row.response_ms == pytest.approx(250.0)
