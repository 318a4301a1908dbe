"""Metrics: one definition each (value, unit, direction), statistics, and later telemetry."""

from pytest_gpubench.metrics.core import Metric
from pytest_gpubench.metrics.stats import (
    Summary,
    mean_ci,
    rate_interval,
    ratio_interval,
    spread_of,
    summarize,
)

__all__ = [
    "Metric",
    "Summary",
    "mean_ci",
    "rate_interval",
    "ratio_interval",
    "spread_of",
    "summarize",
]
