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
