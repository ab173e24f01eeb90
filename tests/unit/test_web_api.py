"""The local HTTP API over a real loopback socket."""

from __future__ import annotations

import asyncio

import orjson

from stratum_proxy.errors import StoreError
from stratum_proxy.logging import get_logger
from stratum_proxy.proxy.stats import WorkerCounters, WorkerStats
from stratum_proxy.store.record import ShareRecord
from stratum_proxy.web.api import ApiServer
from stratum_proxy.web.metrics import render_metrics


def _record(worker: str, status: str, pool_diff: float, share_diff: float) -> ShareRecord:
    return ShareRecord(
        ts=0.0,
        proxy_id="p",
        upstream="u",
        protocol="sv1",
        channel_id=1,
        worker=worker,
        miner_addr="m",
        job_id="j",
        extranonce2="00",
        ntime="00",
        nonce="00",
        version=0,
        share_hash="",
        share_difficulty=share_diff,
        pool_difficulty=pool_diff,
        network_difficulty=1.0,
        status=status,
        reject_reason="",
        is_block=False,
        response_ms=1.0,
    )


async def _request(port: int, raw: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def test_endpoints() -> None:
    def query(sql: str) -> bytes:
        if "boom" in sql:
            raise StoreError("Code: 62. Syntax error", retryable=False)
        return f"ran {sql}\n".encode()

    api = ApiServer(
        stats=lambda: {"connections": 3},
        metrics=lambda: "m 1\n",
        query=query,
        log=get_logger(),
    )
    _, port = await api.start("127.0.0.1", 0)
    try:
        assert await _request(port, b"GET /healthz HTTP/1.1\r\n\r\n") == (200, b"ok\n")
        status, body = await _request(port, b"GET /api/stats HTTP/1.1\r\n\r\n")
        assert status == 200 and orjson.loads(body) == {"connections": 3}
        assert await _request(port, b"GET /metrics HTTP/1.1\r\n\r\n") == (200, b"m 1\n")
        sql = b"SELECT 1"
        req = b"POST /api/query HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(sql), sql)
        assert await _request(port, req) == (200, b"ran SELECT 1\n")
        bad = b"POST /api/query HTTP/1.1\r\nContent-Length: 4\r\n\r\nboom"
        status, body = await _request(port, bad)
        assert status == 400 and b"Syntax error" in body
        assert (await _request(port, b"GET /api/query HTTP/1.1\r\n\r\n"))[0] == 405
        assert (await _request(port, b"GET /nope HTTP/1.1\r\n\r\n"))[0] == 404
        huge = b"POST /api/query HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n"
        assert (await _request(port, huge))[0] == 413
        assert (await _request(port, b"garbage\r\n\r\n"))[0] == 404
    finally:
        await api.close()


def test_worker_stats_and_metrics() -> None:
    stats = WorkerStats()
    stats.add(_record("a", "accepted", 2.0, 5.0))
    stats.add(_record("a", "accepted", 2.0, 9.0))
    stats.add(_record("a", "rejected", 2.0, 0.5))
    stats.add(_record("b", "no_response", 1.0, 3.0))
    interval = stats.take_interval()
    a = interval["a"].summary(60.0)
    assert (a["shares"], a["accepted"], a["rejected"]) == (3, 2, 1)
    assert a["acceptance_pct"] == 66.67
    assert a["best_difficulty"] == 9.0
    # Hashrate counts the pool difficulty of accepted shares only: 4 * 2^32 / 60 s.
    assert a["hashrate_hs"] == 4.0 * 2**32 / 60.0
    assert stats.interval == {}
    stats.add(_record("a", "accepted", 3.0, 1.0))
    totals = stats.snapshot_totals()
    assert totals["a"].accepted == 3 and totals["a"].accepted_work == 7.0
    text = render_metrics(
        {"connections": 2, "pools": {"main": {"up": True}}},
        {"queue_depth": 5, "store_up": True, "last_error": "x"},
        totals,
    )
    assert 'stratum_proxy_shares_total{worker="a",status="accepted"} 3' in text
    assert 'stratum_proxy_shares_total{worker="b",status="no_response"} 1' in text
    assert 'stratum_proxy_pool_up{pool="main"} 1.0' in text
    assert "stratum_proxy_pipeline_queue_depth 5" in text
    assert "stratum_proxy_pipeline_store_up 1.0" in text
    assert "last_error" not in text
    assert isinstance(totals["b"], WorkerCounters)
