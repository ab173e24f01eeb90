"""Per-miner vardiff: convergence for very different speeds, bounds, suggest_difficulty."""

from __future__ import annotations

import random

import pytest

from stratum_proxy.aggregate.vardiff import Vardiff, VardiffSettings

HASHES_PER_DIFF1 = 2**32


def _simulate(hashrate: float, settings: VardiffSettings, minutes: float, seed: int) -> Vardiff:
    """A miner of ``hashrate`` H/s finding shares as a Poisson process at its difficulty."""
    rng = random.Random(seed)
    vd = Vardiff(settings, now=0.0)
    now = 0.0
    while now < minutes * 60:
        rate = hashrate / (vd.difficulty * HASHES_PER_DIFF1)  # shares per second
        gap = rng.expovariate(rate)
        if now + gap >= vd.due():  # the window closes first (no share in it)
            now = vd.due()
            vd.retarget(now)
        else:
            now += gap
            vd.on_share(now)
        vd.take_pending()  # sent before the next notify: in force from then
    return vd


@pytest.mark.parametrize(
    "hashrate", [5e8, 1e12, 1.1e14, 2e15]
)  # a Bitaxe-class rig up to a farm-size S21 line
def test_difficulty_converges_to_the_target_rate(hashrate: float) -> None:
    settings = VardiffSettings(shares_per_minute=12, minimum=1e-3, maximum=1e15, start=1024)
    vd = _simulate(hashrate, settings, minutes=30, seed=int(hashrate) % 997)
    expected = hashrate * 60 / (12 * HASHES_PER_DIFF1)
    assert expected / 2.5 <= vd.difficulty <= expected * 2.5


def test_the_minimum_is_never_crossed() -> None:
    settings = VardiffSettings(shares_per_minute=12, minimum=512, start=1024)
    vd = _simulate(1e6, settings, minutes=20, seed=1)  # far too slow for 512
    assert vd.difficulty == 512


def test_a_silent_miner_comes_down_step_by_step() -> None:
    settings = VardiffSettings(start=1e6, minimum=1, retarget_s=60)
    vd = Vardiff(settings, now=0.0)
    vd.retarget(60.0)
    assert vd.take_pending() == pytest.approx(1e6 / 8)  # at most 8x per window


def test_noise_inside_the_band_changes_nothing() -> None:
    settings = VardiffSettings(shares_per_minute=12, start=1000)
    vd = Vardiff(settings, now=0.0)
    for i in range(16):  # 16 shares in 100 s: 9.6 per minute, inside [6, 24]
        vd.on_share(100.0 * (i + 1) / 16)
    assert vd.take_pending() is None and vd.difficulty == 1000


def test_suggest_difficulty_is_honoured_within_the_bounds() -> None:
    settings = VardiffSettings(minimum=16, maximum=4096, start=256)
    vd = Vardiff(settings, now=0.0)
    assert vd.suggest(1000, now=1.0) == 1000 and vd.take_pending() == 1000
    assert vd.suggest(0.001, now=2.0) == 16
    assert vd.suggest(1e9, now=3.0) == 4096


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        VardiffSettings(minimum=0)
    with pytest.raises(ValueError):
        VardiffSettings(minimum=10, start=5)
