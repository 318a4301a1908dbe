"""Summaries and intervals against values worked out by hand (t critical values from tables).

Percentiles interpolate linearly between order statistics (numpy's default, vLLM's too): for n
samples the p-th percentile sits at rank (n - 1) p / 100.
"""

from __future__ import annotations

import math

import pytest

from pytest_gpubench.metrics.stats import (
    SPREAD_KEYS,
    Summary,
    mean_ci,
    rate_interval,
    spread_of,
    summarize,
)

T975 = {1: 12.706204736174707, 2: 4.302652729749464, 4: 2.7764451051977987}
T95 = {4: 2.131846786326649}  # t(0.95, 4): a 90% two-sided interval


def test_mean_ci_of_two_values() -> None:
    # mean 2, sample std sqrt(2), sem 1, t(0.975, 1)
    low, high = mean_ci([1, 3])
    assert low == pytest.approx(2 - T975[1])
    assert high == pytest.approx(2 + T975[1])


def test_mean_ci_of_five_values_and_another_confidence() -> None:
    data = [10.0, 12.0, 11.0, 13.0, 14.0]  # mean 12, sample std sqrt(2.5)
    sem = math.sqrt(2.5) / math.sqrt(5)
    assert mean_ci(data) == pytest.approx((12 - T975[4] * sem, 12 + T975[4] * sem))
    assert mean_ci(data, 0.90) == pytest.approx((12 - T95[4] * sem, 12 + T95[4] * sem))


def test_mean_ci_of_one_value_is_the_value() -> None:
    assert mean_ci([7]) == (7.0, 7.0)
    assert mean_ci([7.5]) == (7.5, 7.5)


def test_summarize_by_hand() -> None:
    s = summarize([4, 1, 3, 2, 5])
    assert s.n == 5
    assert s.mean == 3.0
    assert s.std == pytest.approx(math.sqrt(2.5))
    assert s.median == 3.0
    # ranks 3.6, 3.8, 3.96 of the sorted 1..5
    assert s.p90 == pytest.approx(4.6)
    assert s.p95 == pytest.approx(4.8)
    assert s.p99 == pytest.approx(4.96)
    assert (s.min, s.max) == (1.0, 5.0)
    half = T975[4] * math.sqrt(2.5) / math.sqrt(5)
    assert s.ci95_low == pytest.approx(3 - half)
    assert s.ci95_high == pytest.approx(3 + half)
    assert all(type(v) in (int, float) for v in s.as_dict().values())
    assert type(s.n) is int


def test_summarize_of_two_values_has_a_spread() -> None:
    s = summarize([1.0, 3.0])
    assert s.std == pytest.approx(math.sqrt(2))
    assert s.median == 2.0


def test_summarize_of_one_value() -> None:
    s = summarize([2.5])
    assert (s.n, s.mean, s.std, s.median, s.p99, s.min, s.max) == (1, 2.5, 0.0, 2.5, 2.5, 2.5, 2.5)
    assert (s.ci95_low, s.ci95_high) == (2.5, 2.5)


def test_summarize_of_nothing() -> None:
    with pytest.raises(ValueError, match=r"^no samples to summarize$"):
        summarize([])


def test_spread_of_orders_keys_and_clamps_the_low_end() -> None:
    s = summarize([1.0, 3.0])  # t interval 2 -/+ 12.7: the low end is below 0
    out = spread_of(s)
    assert list(out) == ["rounds", *SPREAD_KEYS]
    assert out["rounds"] == 2
    assert out["ci95_low"] == 0.0
    assert out["ci95_high"] == pytest.approx(2 + T975[1])
    assert out["median"] == 2.0 and out["min"] == 1.0 and out["max"] == 3.0
    assert spread_of(s, ("p90",)) == {"rounds": 2, "p90": pytest.approx(2.8)}
    positive = spread_of(summarize([10.0, 10.5, 11.0]))
    assert positive["ci95_low"] == pytest.approx(10.5 - T975[2] * 0.5 / math.sqrt(3))


def _summary(mean, low, high, lo_round, hi_round) -> Summary:
    return Summary(3, mean, 0.0, mean, hi_round, hi_round, hi_round, lo_round, hi_round, low, high)


def test_rate_interval_inverts_the_time_interval() -> None:
    # 100 units of work, mean round 2 s, time interval [1.6, 2.5] -> rate [40, 62.5]
    assert rate_interval(100.0, _summary(2.0, 1.6, 2.5, 1.8, 2.2)) == (40.0, 62.5)
    # sub-second rounds: [0.4, 0.8] s -> [125, 250] per s
    assert rate_interval(100.0, _summary(0.5, 0.4, 0.8, 0.45, 0.7)) == (125.0, 250.0)


def test_rate_interval_falls_back_to_the_rounds_where_the_interval_is_not_positive() -> None:
    # time interval [-1, 5]: the low end has no inverse: the fastest round (1.25 s) stands in
    assert rate_interval(100.0, _summary(2.0, -1.0, 5.0, 1.25, 4.0)) == (20.0, 80.0)
    # exactly 0 has no inverse either
    assert rate_interval(100.0, _summary(2.0, 0.0, 5.0, 1.25, 4.0)) == (20.0, 80.0)
    # both ends not positive: the slowest round for the low end, the fastest for the high end
    assert rate_interval(100.0, _summary(2.0, -2.0, 0.0, 1.25, 4.0)) == (25.0, 80.0)


# Equivalent mutants (scripts/mutation.py lists them):
# - mean_ci / summarize: np.asarray(values, dtype=float) -> dtype=None or no dtype: integer
#   input gives the same float mean, std and percentiles (numpy promotes in those reductions;
#   every caller passes ints or floats).
