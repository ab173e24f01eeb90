"""The miner's side of every relay, whatever the mode: its socket and its timer.

Both relay kinds (passthrough, translate) own one ``MinerLink``: the miner's
transport, why reading it is paused, when it last sent something, and the
bytes it sent before the pool connection was up.  A relay owns one
``DeadlineTimer`` too, armed from its protocol core's ``get_timer()`` and its
own deadlines (idle miner, drain after a close), instead of a sweep over every
connection.

Clocks: every deadline here is ``time.monotonic()``; the wall clock only
stamps rows (an NTP step must not expire submits or idle miners).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

# Bytes a miner may send before its pool connection is up (subscribe, configure,
# authorize are a few hundred bytes; this only stops a peer from filling memory).
PRECONNECT_BUFFER = 256 * 1024
_NOT_PAUSED: frozenset[str] = frozenset()


class MinerLink:
    """One miner connection's transport, read pauses, last activity and early bytes."""

    __slots__ = ("_early", "_early_bytes", "gone", "last_rx", "paused_for", "transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        # Why the socket is not being read ("pool_busy", "backlog", "stopping").
        # Shared empty default: an idle connection costs no set of its own.
        self.paused_for: frozenset[str] | set[str] = _NOT_PAUSED
        self.last_rx = time.monotonic()
        self.gone = False  # the miner closed its side
        self._early: list[bytes] | None = None
        self._early_bytes = 0

    # -- reading ---------------------------------------------------------------

    def pause(self, why: str) -> None:
        """Stop reading for ``why``; reading resumes once no reason is left."""
        paused = self.paused_for
        if not paused:
            if not self.transport.is_closing():
                self.transport.pause_reading()
            self.paused_for = {why}
        elif isinstance(paused, set):
            paused.add(why)

    def resume(self, why: str) -> None:
        paused = self.paused_for
        if why in paused and isinstance(paused, set):
            paused.discard(why)
            if not paused and not self.transport.is_closing():
                self.transport.resume_reading()

    def hold(self, data: bytes) -> bool:
        """Keep bytes sent before the pool is up; False once they exceed the bound."""
        if self._early is None:
            self._early = []
        self._early.append(data)
        self._early_bytes += len(data)
        return self._early_bytes <= PRECONNECT_BUFFER

    def take_held(self) -> list[bytes]:
        """The bytes ``hold`` kept, oldest first; the buffer is then empty."""
        early, self._early, self._early_bytes = self._early or [], None, 0
        return early

    @property
    def held_bytes(self) -> int:
        return self._early_bytes

    # -- writing and closing ---------------------------------------------------

    def write(self, data: bytes) -> None:
        if not self.gone and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()


class DeadlineTimer:
    """Calls ``callback`` no later than the earliest deadline it was armed with.

    ``arm(at)`` moves the timer only *earlier*: a later deadline is picked up
    when the timer fires and the owner re-arms from its current deadlines.  A
    core's next deadline moves later nearly every time a request is answered,
    so re-arming on every answer would cost a timer handle per share; this
    way a timer fires at most once early per deadline period.
    """

    __slots__ = ("_at", "_callback", "_handle")

    def __init__(self, callback: Callable[[], None]) -> None:
        self._callback = callback
        self._handle: asyncio.TimerHandle | None = None
        self._at = 0.0

    def arm(self, at: float | None) -> None:
        """Fire at ``at`` (monotonic seconds) or earlier; None changes nothing."""
        if at is None or (self._handle is not None and self._at <= at):
            return
        if self._handle is not None:
            self._handle.cancel()
        self._at = at
        # loop.time() need not share time.monotonic()'s origin (uvloop): use a delay.
        delay = max(0.0, at - time.monotonic())
        self._handle = asyncio.get_running_loop().call_later(delay, self._fire)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        self._callback()
