"""Per-miner difficulty toward a target share rate (aggregate mode).  Sans-I/O.

A miner on a shared upstream cannot use the pool's difficulty: the pool sets
it for the whole connection, which starves small miners and floods big ones.
So each miner gets its own, steered toward ``shares_per_minute``:

* the rate is measured over a window that closes after ``_WINDOW_SHARES``
  shares or ``retarget_s`` seconds, whichever comes first (a fast miner is
  corrected within seconds, a slow one within ``retarget_s``);
* inside the band ``[target / 2, target * 2]`` nothing changes (a share rate
  is a Poisson count: chasing its noise would resend set_difficulty for
  nothing);
* outside it the difficulty is scaled by observed ÷ target, at most
  ``_MAX_STEP`` times per window (a miner that paused for a minute is not
  dropped to the floor at once), and kept within ``[minimum, maximum]``.
  A window with no share at all counts half a share, so a difficulty far
  too high comes down step by step instead of never;
* ``mining.suggest_difficulty`` sets the difficulty within the same bounds
  (Bitaxe asks for 1000 at every connect) and restarts the window.

The minimum is a floor, never crossed: a difficulty below what an ASIC
expects floods it (public-pool#120: an ASIC boot-looped at difficulty < 1).
A new difficulty is not sent at once: the caller sends it before the next
``mining.notify``, from which it applies (``pending``).
"""

from __future__ import annotations

from dataclasses import dataclass

_WINDOW_SHARES = 16
_MAX_STEP = 8.0
_BAND = 2.0


@dataclass(frozen=True, slots=True, kw_only=True)
class VardiffSettings:
    shares_per_minute: float = 12.0
    minimum: float = 1.0
    maximum: float = 1e15
    start: float = 1024.0
    retarget_s: float = 60.0

    def __post_init__(self) -> None:
        if not 0 < self.minimum <= self.start <= self.maximum:
            raise ValueError(
                f"vardiff needs 0 < minimum <= start <= maximum, got {self.minimum}, "
                f"{self.start}, {self.maximum}"
            )
        if self.shares_per_minute <= 0 or self.retarget_s <= 0:
            raise ValueError("vardiff shares_per_minute and retarget_s must be positive")

    def clamp(self, difficulty: float) -> float:
        return min(self.maximum, max(self.minimum, difficulty))


class Vardiff:
    """One miner's difficulty controller."""

    __slots__ = ("_shares", "_window_start", "difficulty", "pending", "settings")

    def __init__(self, settings: VardiffSettings, now: float) -> None:
        self.settings = settings
        self.difficulty = settings.start  # in force for the jobs sent from now on
        self.pending: float | None = None  # decided, not yet sent to the miner
        self._window_start = now
        self._shares = 0

    def suggest(self, difficulty: float, now: float) -> float:
        """The miner asked for ``difficulty``: what it gets (within the bounds)."""
        self._set(self.settings.clamp(difficulty), now)
        return self.pending if self.pending is not None else self.difficulty

    def on_share(self, now: float) -> None:
        """A share the miner submitted that met its difficulty."""
        self._shares += 1
        if self._shares >= _WINDOW_SHARES:
            self.retarget(now)

    def due(self) -> float:
        """When the current window closes (monotonic seconds): call ``retarget`` then."""
        return self._window_start + self.settings.retarget_s

    def retarget(self, now: float) -> None:
        """Close the window if it is over; may set ``pending``."""
        if self._shares < _WINDOW_SHARES and now < self.due():  # not ``elapsed <``: float rounding
            return
        elapsed = now - self._window_start
        target = self.settings.shares_per_minute
        observed = max(self._shares, 0.5) * 60.0 / max(elapsed, 1e-3)
        ratio = observed / target
        if 1 / _BAND <= ratio <= _BAND:
            self._restart(now)
            return
        ratio = min(_MAX_STEP, max(1 / _MAX_STEP, ratio))
        # The window's shares were found at the difficulty in force, not at one
        # still waiting for the next notify: scaling that one would compound the
        # step with every window that closes before the next job.
        self._set(self.settings.clamp(self.difficulty * ratio), now)

    def take_pending(self) -> float | None:
        """The difficulty to send before the next notify (None: unchanged)."""
        new, self.pending = self.pending, None
        if new is not None:
            self.difficulty = new
        return new

    def _set(self, difficulty: float, now: float) -> None:
        if difficulty != self.difficulty:
            self.pending = difficulty
        else:
            self.pending = None
        self._restart(now)

    def _restart(self, now: float) -> None:
        self._window_start = now
        self._shares = 0
