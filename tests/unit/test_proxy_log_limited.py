"""Repeated warnings (late answers, evictions, unmatched ids) are one line a while, with counts."""

from __future__ import annotations

from typing import Any

from stratum_proxy.proxy import server as server_module
from stratum_proxy.proxy.server import ProxyServer
from stratum_proxy.settings import load_settings


class _Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, **fields: Any) -> None:
        self.lines.append((event, fields))


def test_a_flood_of_one_warning_is_one_line_with_what_was_held_back(monkeypatch: Any) -> None:
    clock = [1000.0]
    monkeypatch.setattr(server_module.time, "monotonic", lambda: clock[0])
    settings = load_settings(None, pools=["stratum+tcp://127.0.0.1:1"])
    log = _Log()
    server = ProxyServer(settings, sink=None, log=log)  # type: ignore[arg-type]
    for _ in range(500):
        server.log_limited(log, "late_answer", nonce="1")
    server.log_limited(log, "requests_evicted", method="mining.submit")
    assert [e for e, _ in log.lines] == ["late_answer", "requests_evicted"]
    assert log.lines[0][1]["suppressed"] == 0
    clock[0] += 10.0
    server.log_limited(log, "late_answer", nonce="2")
    assert log.lines[-1] == ("late_answer", {"suppressed": 499, "nonce": "2"})


class _InfoLog(_Log):
    def info(self, event: str, **fields: Any) -> None:
        self.lines.append((event, fields))


def _share(worker: str, *, is_block: bool, status: str = "accepted") -> Any:
    from helpers.store_rows import rec

    return rec(worker=worker, is_block=is_block, status=status)


class _Sink:
    def put(self, record: Any) -> None:
        pass


def test_candidates_and_rejects_on_a_test_chain_do_not_flood_the_log(monkeypatch: Any) -> None:
    clock = [50.0]
    monkeypatch.setattr(server_module.time, "monotonic", lambda: clock[0])
    log = _InfoLog()
    settings = load_settings(None, pools=["stratum+tcp://127.0.0.1:1"])
    server = ProxyServer(settings, sink=_Sink(), log=log)
    for _ in range(1000):  # regtest: every share meets the network target
        server.record_share(_share("w", is_block=True), log)
        server.record_share(_share("w", is_block=False, status="rejected"), log)
    events = [e for e, _ in log.lines]
    assert events.count("block_candidate") == 1 and events.count("share_rejected") == 1
    assert server.statistics()["block_candidates"] == 1000  # every one still counted


def test_the_last_summary_says_how_long_it_really_covered(monkeypatch: Any) -> None:
    clock = [100.0]
    monkeypatch.setattr(server_module.time, "monotonic", lambda: clock[0])
    log = _InfoLog()
    settings = load_settings(None, pools=["stratum+tcp://127.0.0.1:1"])
    server = ProxyServer(settings, sink=_Sink(), log=log)
    server.record_share(_share("w", is_block=False), log)
    clock[0] += 36.0  # the stop comes 36 s into a 60 s interval
    server._log_summaries(final=True)
    (summary,) = [f for e, f in log.lines if e == "worker_summary"]
    assert summary["seconds"] == 36.0
