"""Intervals of a rate that is reported as total amount over total time.

A throughput such as output tok/s is the ratio estimator ``sum(amount) / sum(seconds)`` over
the measured window. Its interval has to come from the same estimator: blocks of the window,
each an (amount, seconds) pair, whose totals are exactly the reported amount and time, fed to
``stats.ratio_interval``. Then the interval is centred on the reported value whatever the
blocks' lengths; a mean of per-block rates is not (issue 26, item 7).

The functions here know nothing of requests or tokens: events are (time, amount) pairs and a
window is cut into blocks at given times, so any rate can use them.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from pytest_gpubench.metrics.stats import ratio_interval


def block_edges(
    windows: Sequence[tuple[float, float]], cuts: Sequence[float] = ()
) -> list[tuple[float, float]]:
    """The blocks of ``windows`` (each ``(start, end)``, in time order), each window split at
    the ``cuts`` strictly inside it. Equal cuts count once: a block of no length holds no
    time to measure a rate over."""
    marks = np.unique(np.asarray(cuts, dtype=float))
    blocks: list[tuple[float, float]] = []
    for lo, hi in windows:
        inside = marks[(marks > lo) & (marks < hi)]
        edges = [lo, *inside.tolist(), hi]
        blocks.extend(itertools.pairwise(edges))
    return blocks


def block_totals(
    times: Sequence[float] | np.ndarray,
    amounts: Sequence[float] | np.ndarray,
    blocks: Sequence[tuple[float, float]],
) -> tuple[np.ndarray, np.ndarray]:
    """(amount, seconds) per block: each event goes to the first block ending at or after its
    time, and an event past the last block to the last one, so the amounts always add up to
    the events' total (the reported numerator) and the seconds to the blocks' total length."""
    if not blocks:
        raise ValueError("no blocks")
    ends = np.asarray([hi for _, hi in blocks], dtype=float)
    index = np.searchsorted(ends, np.asarray(times, dtype=float), side="left")
    index = np.minimum(index, len(blocks) - 1)
    totals = np.bincount(index, weights=np.asarray(amounts, dtype=float), minlength=len(blocks))
    seconds = np.asarray([hi - lo for lo, hi in blocks], dtype=float)
    return totals, seconds


def blocked_rate_interval(
    times: Sequence[float] | np.ndarray,
    amounts: Sequence[float] | np.ndarray,
    blocks: Sequence[tuple[float, float]],
    *,
    min_blocks: int = 3,
    confidence: float = 0.95,
) -> tuple[float, float, int] | None:
    """(low, high, blocks) of the rate ``sum(amounts) / total block time``; None with fewer
    than ``min_blocks`` blocks. The low end is clamped at 0 (no amount here is negative, and
    a few noisy blocks can put a symmetric interval below zero)."""
    if len(blocks) < max(min_blocks, 2):
        return None
    totals, seconds = block_totals(times, amounts, blocks)
    found = ratio_interval(totals, seconds, confidence)
    if found is None:
        return None
    return max(0.0, found[0]), found[1], len(blocks)
