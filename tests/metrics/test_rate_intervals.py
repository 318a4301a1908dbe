"""The interval of a rate reported as total amount over total time (issue 26, item 7).

Expected values come from hand arithmetic (t(0.975, 2) = 4.302653 from the t table), from the
delta method written a second way (the gradient of ybar / xbar against numpy's covariance
matrix, not the code's residual form), and from simulated token streams whose true rate is
known, where the interval must cover that rate about 95% of the time.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from pytest_gpubench.metrics.rates import block_edges, block_totals, blocked_rate_interval
from pytest_gpubench.metrics.stats import ratio_interval

T975_2 = 4.302652729749464


def delta_method(y, x, confidence=0.95):
    """Var(ybar / xbar) ~ grad' Cov grad / n, grad = (1 / xbar, -ybar / xbar^2)."""
    from scipy import stats

    y, x = np.asarray(y, float), np.asarray(x, float)
    grad = np.array([1 / x.mean(), -y.mean() / x.mean() ** 2])
    se = math.sqrt(grad @ np.cov(np.vstack([y, x])) @ grad / y.size)
    t = stats.t.ppf(0.5 + confidence / 2, y.size - 1)
    ratio = y.sum() / x.sum()
    return ratio - t * se, ratio + t * se


def test_ratio_interval_by_hand() -> None:
    # 10, 20, 30 tokens over 1, 2, 4 s: R = 60 / 7 = 8.571429 (the mean of the blocks' rates,
    # 10, 10, 7.5, is 9.17: a different number). Residuals y - R x = 10/7, 20/7, -30/7, their
    # squares add to 1400/49 = 200/7; se = sqrt(200/7 / 2 / 3) / (7/3) = 0.935220;
    # half-width 4.302653 * 0.935220 = 4.023927.
    low, high = ratio_interval([10, 20, 30], [1, 2, 4])
    assert low == pytest.approx(60 / 7 - 4.023927, rel=1e-6)
    assert high == pytest.approx(60 / 7 + 4.023927, rel=1e-6)
    assert (low, high) == pytest.approx(delta_method([10, 20, 30], [1, 2, 4]))


def test_ratio_interval_needs_two_blocks_and_time() -> None:
    assert ratio_interval([5.0], [1.0]) is None
    assert ratio_interval([], []) is None
    assert ratio_interval([1.0, 2.0], [0.0, 0.0]) is None
    assert ratio_interval([4.0, 8.0], [1.0, 2.0]) == (4.0, 4.0)  # every block at one rate
    with pytest.raises(ValueError, match="differ in length"):
        ratio_interval([1.0, 2.0], [1.0])


def test_the_ratio_lies_inside_its_interval_for_uneven_blocks() -> None:
    rng = np.random.default_rng(26)
    for _ in range(500):
        n = int(rng.integers(2, 40))
        x = rng.gamma(0.5, 2.0, n) + 1e-6  # very uneven block lengths
        y = x * rng.lognormal(3.0, 1.0, n)  # and rates that swing by e^±1
        if rng.random() < 0.3:
            y[: n // 2] = 0.0  # a stretch with no tokens at all
        low, high = ratio_interval(y, x, confidence=float(rng.uniform(0.5, 0.99)))
        ratio = y.sum() / x.sum()
        assert low <= ratio * (1 + 1e-12) and ratio * (1 - 1e-12) <= high
        assert (low + high) / 2 == pytest.approx(ratio, rel=1e-9)  # centred on it


def test_the_interval_agrees_with_the_covariance_form_everywhere() -> None:
    rng = np.random.default_rng(7)
    for _ in range(200):
        n = int(rng.integers(2, 30))
        x = rng.uniform(0.01, 5.0, n)
        y = rng.uniform(0.0, 100.0, n)
        assert ratio_interval(y, x) == pytest.approx(delta_method(y, x), rel=1e-9)


def test_the_interval_covers_a_known_rate_about_95_percent_of_the_time() -> None:
    # Tokens arrive as a Poisson stream at 400 tok/s; a run is cut into 20 blocks of uneven
    # length. The interval should hold 400 in ~95% of runs (the delta method is asymptotic:
    # allow 92..97.5% over 2,000 runs, whose own sampling error is about 0.5%).
    rng = np.random.default_rng(2026)
    rate, runs, hits = 400.0, 2000, 0
    for _ in range(runs):
        x = rng.uniform(0.05, 1.0, 20)
        y = rng.poisson(rate * x)
        low, high = ratio_interval(y, x)
        hits += low <= rate <= high
    assert 0.92 <= hits / runs <= 0.975, hits / runs


def test_blocks_cut_windows_at_the_cuts_inside_them() -> None:
    assert block_edges([(0.0, 10.0)], [2.0, 2.0, 5.0, 10.0, -1.0]) == [
        (0.0, 2.0),
        (2.0, 5.0),
        (5.0, 10.0),
    ]
    # rounds: each window cut only by its own cuts
    assert block_edges([(0.0, 1.0), (3.0, 5.0)], [0.5, 2.0, 4.0]) == [
        (0.0, 0.5),
        (0.5, 1.0),
        (3.0, 4.0),
        (4.0, 5.0),
    ]


def test_block_totals_keep_every_event() -> None:
    blocks = [(0.0, 1.0), (1.0, 3.0), (3.0, 4.0)]
    # an event on a block's end belongs to it; before the first or after the last: the
    # nearest end block, so the totals are the reported amount
    totals, seconds = block_totals(
        [1.0, 0.5, 2.0, 3.0, 3.5, 9.0, -2.0], [1, 2, 4, 8, 16, 32, 64], blocks
    )
    assert totals.tolist() == [1 + 2 + 64, 4 + 8, 16 + 32]
    assert seconds.tolist() == [1.0, 2.0, 1.0]
    with pytest.raises(ValueError, match="no blocks"):
        block_totals([1.0], [1.0], [])


def test_blocked_rate_interval() -> None:
    blocks = [(0.0, 1.0), (1.0, 3.0), (3.0, 7.0)]
    times = [0.5, 0.9, 2.0, 6.0]
    amounts = [4.0, 6.0, 20.0, 30.0]  # blocks: 10, 20, 30 over 1, 2, 4 s
    low, high, n = blocked_rate_interval(times, amounts, blocks)
    assert n == 3
    assert (low, high) == pytest.approx(ratio_interval([10, 20, 30], [1, 2, 4]))
    assert blocked_rate_interval(times, amounts, blocks[:2]) is None  # fewer than 3 blocks
    assert blocked_rate_interval(times, amounts, blocks[:2], min_blocks=2) is not None
    # a symmetric interval reaching below zero is clamped there: no rate is negative
    low, high, _ = blocked_rate_interval([0.5, 2.0, 3.5], [100.0, 0.0, 0.0], blocks)
    assert low == 0.0 and high > 100.0 / 7
