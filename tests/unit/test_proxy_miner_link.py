"""The miner link's read pauses and early-bytes bound, and the deadline timer's arming rule."""

from __future__ import annotations

import asyncio
import time

from stratum_proxy.proxy.miner_link import PRECONNECT_BUFFER, DeadlineTimer, MinerLink


class _Transport:
    def __init__(self) -> None:
        self.reading = True
        self.written: list[bytes] = []
        self.closing = False

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return self.closing

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closing = True


def _link() -> tuple[MinerLink, _Transport]:
    transport = _Transport()
    return MinerLink(transport), transport  # type: ignore[arg-type]


def test_reading_resumes_only_when_every_reason_is_gone() -> None:
    link, transport = _link()
    link.pause("backlog")
    link.pause("pool_busy")
    assert not transport.reading
    link.resume("backlog")
    assert not transport.reading  # the pool is still busy
    link.resume("pool_busy")
    assert transport.reading and not link.paused_for
    link.resume("stopping")  # a reason never given changes nothing
    assert transport.reading


def test_early_bytes_are_kept_in_order_up_to_the_bound() -> None:
    link, _ = _link()
    assert link.hold(b"a" * 10) and link.hold(b"b")
    assert link.take_held() == [b"a" * 10, b"b"] and link.take_held() == []
    assert not link.hold(b"x" * (PRECONNECT_BUFFER + 1))  # a flood: the caller closes


def test_a_gone_miner_is_not_written_to() -> None:
    link, transport = _link()
    link.write(b"1")
    link.gone = True
    link.write(b"2")
    assert transport.written == [b"1"]


async def test_the_timer_fires_at_the_earliest_deadline_armed() -> None:
    fired: list[float] = []
    timer = DeadlineTimer(lambda: fired.append(time.monotonic()))
    start = time.monotonic()
    timer.arm(start + 0.3)
    timer.arm(start + 0.05)  # earlier: moves the timer
    timer.arm(start + 0.2)  # later: left for the owner to re-arm when it fires
    timer.arm(None)
    await asyncio.sleep(0.12)
    assert len(fired) == 1 and fired[0] - start < 0.12
    timer.arm(time.monotonic() + 0.05)
    timer.cancel()
    await asyncio.sleep(0.1)
    assert len(fired) == 1
