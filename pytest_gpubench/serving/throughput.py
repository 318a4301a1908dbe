"""The 95% interval of output tok/s: an interval of the number that is reported.

Output tok/s is the output tokens streamed in the measured window over the window's length
(serving/metrics.py, ``serving_metrics``). Its interval cuts that same window into blocks and
takes the ratio estimator's interval over the blocks' (tokens, seconds) pairs
(metrics/rates.py): the blocks' tokens add up to the reported tokens and their seconds to the
reported duration, so the interval is centred on the reported value. The interval it replaces
averaged per-block rates, left the tail of the run and the warm-ups' tokens out, and on a real
llama-server run read 4,574..5,172 tok/s around a value of 4,336 (issue 26, item 7).

Blocks end at every ``block``-th completion (the last block runs to the window's end): in a
closed loop, ``block`` = the concurrency's worth of completions spans about one request's
duration, long enough for neighbouring blocks to be close to independent. Each token counts at
the time its text chunk arrived (a request's usage count spread evenly over its chunks), so a
request's tokens land in the blocks that produced them. Rounds, where there are several, are
the blocks themselves, as the regression gate's degrees of freedom (``rounds``) assume.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from pytest_gpubench.metrics.rates import block_edges, blocked_rate_interval
from pytest_gpubench.serving.client import RequestResult

#: completion blocks a run needs before its throughput interval means anything
MIN_BLOCKS = 3


def token_events(
    results: Sequence[RequestResult], after: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(times, tokens) of the successful requests' output: each text chunk carries its share
    of the request's usage count; a request without chunk times counts all at its end.
    ``after``: only chunks later than this (the warm-ups that led into a window)."""
    times: list[np.ndarray] = []
    amounts: list[np.ndarray] = []
    for r in results:
        if not r.ok or not r.output_tokens:
            continue
        if r.token_times:
            t = np.asarray(r.token_times, dtype=float)
            share = r.output_tokens / t.size
            if after is not None:
                t = t[t > after]
            times.append(t)
            amounts.append(np.full(t.size, share))
        elif after is None:
            times.append(np.asarray([r.end if r.end is not None else r.start], dtype=float))
            amounts.append(np.asarray([float(r.output_tokens)]))
    if not times:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(times), np.concatenate(amounts)


def completion_cuts(results: Sequence[RequestResult], block: int) -> list[float]:
    """The end of every ``block``-th successful completion, the last group's end excluded (the
    last block runs to the window's end and takes the completions left over)."""
    ends = sorted(r.end for r in results if r.ok and r.end is not None)
    full = len(ends) // max(block, 1)
    return [ends[i * block - 1] for i in range(1, full)]


def throughput_interval(
    results: Sequence[RequestResult],
    windows: Sequence[tuple[float, float]],
    block: int,
    *,
    lead: Sequence[RequestResult] = (),
    lead_after: float | None = None,
) -> tuple[float, float, int] | None:
    """(low, high, blocks) of output tok/s over ``windows`` (one per round, in time order):
    one round is cut into blocks of ``block`` completions, several rounds are one block each.
    ``lead``: warm-ups whose tokens after ``lead_after`` count in the window (a sweep point's).
    None with too few blocks for an interval (fewer than 3 blocks, or than 2 rounds)."""
    if not windows:
        return None
    times, tokens = token_events(results)
    if lead:
        start = windows[0][0] if lead_after is None else lead_after
        lead_times, lead_tokens = token_events(lead, after=start)
        times = np.concatenate([times, lead_times])
        tokens = np.concatenate([tokens, lead_tokens])
    if len(windows) > 1:
        return blocked_rate_interval(times, tokens, list(windows), min_blocks=2)
    blocks = block_edges(windows, completion_cuts(results, block))
    return blocked_rate_interval(times, tokens, blocks, min_blocks=MIN_BLOCKS)


def batch_means_ci(
    results: Sequence[RequestResult], start: float, block: int
) -> tuple[float, float, int] | None:
    """95% interval of output tok/s so far, over blocks of ``block`` completions since
    ``start`` (adaptive mode's stopping rule, serving/run.py): the ratio estimator's, as the
    recorded interval is. Mid-run, each request's tokens count at its completion (its chunks
    are not re-read on every check, which would cost the event loop time under load), and the
    window ends at the last completion. None with fewer than 3 blocks."""
    done = [r for r in results if r.ok and r.end is not None]
    if not done:
        return None
    last = max(r.end for r in done)  # type: ignore[type-var]
    if last <= start:
        return None
    blocks = block_edges([(start, last)], completion_cuts(done, block))
    times = [r.end for r in done]
    tokens = [float(r.output_tokens) for r in done]
    return blocked_rate_interval(times, tokens, blocks, min_blocks=MIN_BLOCKS)


def peak_in_flight(results: Sequence[RequestResult]) -> int:
    events = []
    for r in results:
        events.append((r.start, 1))
        events.append((r.start + (r.e2el or 0.0), -1))
    peak = cur = 0
    for _, delta in sorted(events, key=lambda e: (e[0], e[1])):
        cur += delta
        peak = max(peak, cur)
    return peak


def tokens_after(r: RequestResult, t0: float) -> float:
    """The output tokens ``r`` streamed after ``t0``: its usage count, in the share of its
    text chunks that arrived after ``t0`` (chunks and tokens differ where a chunk holds more)."""
    if not r.token_times:
        return 0.0
    late = sum(1 for t in r.token_times if t > t0)
    return r.output_tokens * late / len(r.token_times)


def output_tok_s_interval(
    results: Sequence[RequestResult],
    duration_s: float,
    value: float,
    lead: Sequence[RequestResult] = (),
    windows: Sequence[tuple[float, float]] | None = None,
    fallback: tuple[float, float] | None = None,
) -> dict[str, float]:
    """``ci95_low``, ``ci95_high`` and ``ci_blocks`` of output tok/s (serving/throughput.py),
    or {} where no interval of the reported value is known.

    One run's window starts at its first request and lasts ``duration_s``; pooled rounds
    (whose requests do not fit one such window) need their ``windows``. Blocks hold a
    closed loop's concurrency in completions (the most requests in flight, at least 5). A
    caller's ``fallback`` interval stands in only where none is computed and only if it holds
    the value: an interval that excludes its value misleads the regression gate's noise."""
    window_start = min(r.start for r in results)
    if windows is None:
        ends = [r.end for r in results if r.ok and r.end is not None]
        if ends and max(ends) <= window_start + duration_s:
            windows = [(window_start, window_start + duration_s)]
    found = None
    if windows and math.isclose(sum(b - a for a, b in windows), duration_s, rel_tol=1e-9):
        block = max(peak_in_flight(results), 5)
        found = throughput_interval(
            results, windows, block, lead=[r for r in lead if r.ok], lead_after=window_start
        )
    if found is not None:
        low, high, blocks = found
        # centred on the blocks' ratio, which is the value up to rounding: an interval of no
        # width (blocks all at one rate) may miss it by that rounding, and only by that
        slack = 1e-9 * abs(value)
        if low - slack <= value <= high + slack:
            low, high = min(low, value), max(high, value)
        return {"ci95_low": low, "ci95_high": high, "ci_blocks": blocks}
    if fallback is not None and fallback[0] <= value <= fallback[1]:
        return {"ci95_low": fallback[0], "ci95_high": fallback[1]}
    return {}
