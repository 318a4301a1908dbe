"""Summary statistics and confidence intervals, defined once for every benchmark.

Percentiles use linear interpolation (numpy's default, which ``vllm bench serve`` also uses),
so our p99 of the same samples equals theirs. Confidence intervals on a mean use Student's t
(scipy) because rounds are few: with 5 rounds the normal approximation would understate the
interval by ~40%. ``spread_of`` and ``rate_interval`` turn a summary into the ``spread`` a
metric records, so every benchmark stores the same keys computed the same way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    std: float
    median: float
    p90: float
    p95: float
    p99: float
    min: float
    max: float
    ci95_low: float
    ci95_high: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided t interval of the mean; (mean, mean) for a single value (no spread known)."""
    data = np.asarray(values, dtype=float)
    mean = float(data.mean())
    if data.size < 2:
        return mean, mean
    from scipy import stats as scipy_stats  # 1-2 s to import: only when an interval is asked

    sem = float(data.std(ddof=1)) / math.sqrt(data.size)
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2, data.size - 1)) * sem
    return mean - half, mean + half


def quantile_interval(
    values: Sequence[float], percentile: float, confidence: float = 0.95
) -> tuple[float, float]:
    """Distribution-free interval of a percentile (90: p90) from the samples' order statistics.

    The number of samples below the true percentile is Binomial(n, p/100), so the order
    statistics at that distribution's two tail quantiles bracket it with about ``confidence``
    (a latency distribution is far from normal: no t interval here). With few samples the upper
    end is the largest sample and the coverage is lower than asked: 24 requests cannot bound a
    p90 from above with 95% (it needs the 25th). Returns (low, high) of the samples' values.
    """
    data = np.sort(np.asarray(values, dtype=float))
    n = data.size
    if n == 0:
        raise ValueError("no samples")
    from scipy import stats as scipy_stats

    q = percentile / 100.0
    tail = (1 - confidence) / 2
    low = int(scipy_stats.binom.ppf(tail, n, q))  # 1-based rank of the lower end
    high = int(scipy_stats.binom.ppf(1 - tail, n, q)) + 1
    low, high = min(max(low, 1), n), min(max(high, 1), n)
    return float(data[low - 1]), float(data[high - 1])


def summarize(values: Sequence[float]) -> Summary:
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("no samples to summarize")
    p50, p90, p95, p99 = np.percentile(data, [50, 90, 95, 99])
    low, high = mean_ci(data)
    return Summary(
        n=int(data.size),
        mean=float(data.mean()),
        std=float(data.std(ddof=1)) if data.size > 1 else 0.0,
        median=float(p50),
        p90=float(p90),
        p95=float(p95),
        p99=float(p99),
        min=float(data.min()),
        max=float(data.max()),
        ci95_low=low,
        ci95_high=high,
    )


# What a time's or a rate's spread records by default (after "rounds"), in this order.
SPREAD_KEYS = ("median", "min", "max", "std", "ci95_low", "ci95_high")


def spread_of(summary: Summary, keys: Sequence[str] = SPREAD_KEYS) -> dict[str, float]:
    """The ``spread`` of a metric that is a time or a rate: ``rounds`` then ``keys``, in order.

    Fields come from ``Summary.as_dict``; its ``n`` is stored as ``rounds``, the name results
    tables and baselines read. A t interval's lower end is clamped at 0: with few noisy rounds
    it can dip below zero, but no time or rate can.
    """
    fields = summary.as_dict()
    out = {"rounds": fields["n"], **{key: fields[key] for key in keys}}
    if "ci95_low" in out:
        out["ci95_low"] = max(0.0, out["ci95_low"])
    return out


def rate_interval(work: float, seconds: Summary) -> tuple[float, float]:
    """95% interval of the rate ``work / mean round time``: the time's interval, inverted.

    Rates are reported as total work over total time, which is ``work`` over the mean round
    time, not the mean of per-round rates (a different number when rounds vary). ``x -> work/x``
    is decreasing, so the time's interval ``[lo, hi]`` maps to ``[work/hi, work/lo]`` with the
    same 95% coverage: ``lo <= mean <= hi`` exactly when ``work/hi <= work/mean <= work/lo``.
    Where an end of the time's interval is not positive (few, noisy rounds) the inversion has no
    finite value, so the slowest (for the low end) or fastest (high end) round's rate stands in.
    """
    low = work / seconds.ci95_high if seconds.ci95_high > 0 else work / seconds.max
    high = work / seconds.ci95_low if seconds.ci95_low > 0 else work / seconds.min
    return low, high


def ratio_interval(
    numerators: Sequence[float], denominators: Sequence[float], confidence: float = 0.95
) -> tuple[float, float] | None:
    """Two-sided interval of the ratio estimator ``sum(numerators) / sum(denominators)``.

    A rate reported as total work over total time is this estimator, whatever the blocks'
    sizes: the mean of per-block rates is a different number when blocks are uneven, and an
    interval built around it can exclude the rate that is reported (issue 26: 4,336 tok/s with
    an interval of 4,574..5,172). The delta method (Cochran, *Sampling Techniques*, 6.9) gives
    the ratio's standard error from the residuals ``d_i = y_i - R x_i``:
    ``se = sqrt(sum(d_i**2) / (n - 1) / n) / mean(x)``, and Student's t with n - 1 degrees of
    freedom sets the width, so the interval is symmetric about ``R`` and always holds it.
    None with fewer than two blocks or no positive total denominator (no spread known).
    """
    y = np.asarray(numerators, dtype=float)
    x = np.asarray(denominators, dtype=float)
    if y.shape != x.shape:
        raise ValueError("numerators and denominators differ in length")
    n = y.size
    if n < 2 or x.sum() <= 0:
        return None
    from scipy import stats as scipy_stats

    ratio = float(y.sum() / x.sum())
    residuals = y - ratio * x
    se = math.sqrt(float(residuals @ residuals) / (n - 1) / n) / float(x.mean())
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2, n - 1)) * se
    return ratio - half, ratio + half
