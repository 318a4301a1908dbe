"""The spread helpers every benchmark records with: a rate's interval and a summary's spread.

Expected values are worked out by hand from the t table (t(0.975, 2 dof) = 4.302653), not by
calling the code under test or scipy.
"""

from __future__ import annotations

import pytest

from pytest_gpubench.metrics.stats import rate_interval, spread_of, summarize


def test_rate_interval_is_the_inverted_interval_of_the_mean_time() -> None:
    # Rounds of 0.9, 1.0 and 1.1 s: mean 1.0 s, sd 0.1 s, sem 0.1 / sqrt(3) = 0.057735 s,
    # half-width 4.302653 * 0.057735 = 0.248414 s, so the mean time is in [0.751586, 1.248414]
    # and 10 units of work per round run at 10 / 1.248414 .. 10 / 0.751586 units/s.
    low, high = rate_interval(10.0, summarize([0.9, 1.0, 1.1]))
    assert low == pytest.approx(8.010165, rel=1e-6)
    assert high == pytest.approx(13.305193, rel=1e-6)
    assert low < 10.0 / 1.0 < high  # the rate reported, work / mean time, lies inside


def test_rate_interval_uses_the_fastest_round_where_the_time_interval_reaches_zero() -> None:
    # 1, 2 and 3 s: mean 2 s, sd 1 s, half-width 4.302653 / sqrt(3) = 2.484138 s, so the time's
    # interval [-0.484138, 4.484138] has no positive low end: the fastest round (6 / 1 s) stands
    # in for the rate's high end; the low end is 6 / 4.484138.
    low, high = rate_interval(6.0, summarize([1.0, 2.0, 3.0]))
    assert low == pytest.approx(1.338050, rel=1e-6)
    assert high == 6.0


def test_a_single_round_has_no_spread_to_invert() -> None:
    assert rate_interval(3.0, summarize([0.5])) == (6.0, 6.0)


def test_spread_of_stores_n_as_rounds_in_order_and_never_below_zero() -> None:
    s = summarize([1.0, 2.0, 3.0])  # ci95_low = -0.484138, as above
    spread = spread_of(s)
    assert list(spread) == ["rounds", "median", "min", "max", "std", "ci95_low", "ci95_high"]
    assert spread["rounds"] == 3
    assert (spread["median"], spread["min"], spread["max"], spread["std"]) == (2.0, 1.0, 3.0, 1.0)
    assert spread["ci95_low"] == 0.0
    assert spread["ci95_high"] == pytest.approx(4.484138, rel=1e-6)
    assert spread_of(s, ("ci95_high",)) == {"rounds": 3, "ci95_high": s.ci95_high}
