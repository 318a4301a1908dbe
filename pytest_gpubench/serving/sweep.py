"""Serving sweeps and SLO capacity: ``serve_bench.sweep`` and ``serve_bench.capacity``.

A sweep measures one point per load setting (a concurrency, a request rate, or an
``(input_len, output_len)`` shape), each with the full serving metrics, its own warm-ups and a
number of prompts scaled to the point (``prompts_per_user`` requests per stream, so every
point runs several requests deep rather than one ramp-up and drain); a concurrency or rate
sweep stops early at the first point that saturates: output tokens/s gained no more than
``saturation_tolerance`` while the latency rose by more than the same margin.

A capacity search finds the highest concurrency whose chosen percentile meets every SLO:
doubling from 1 until a point fails (bracket), bisecting between the last pass and the first
fail, then re-measuring the two concurrencies either side of the boundary (a concurrency
passes when more than half of its measurements pass); a re-measured boundary that moves
resumes the bisection.

Both take a ``time_budget_s``: before each point after the first, the point's cost is estimated
from the points measured (``point_cost``) and the work stops where it stands if the budget
would be passed; the result says so (``stopped_by="time_budget"``) and keeps every point
measured. Why: on the H200 a capacity search of llama.cpp to 64 users ran past the 9 minutes
its GPU call had and was killed with nothing recorded. Every finished point is also written as
a permanent line (``progress.say``), so a search that is killed still leaves its points in the
log.

This module runs a sweep (``run_sweep``); the points' data and rules are in ``points.py``, the
capacity search in ``capacity.py``, the measuring of a point in ``sweeper.py`` (the same plan,
measure and aggregate steps as ``serve_bench``); the names tests and users imported from here
stay importable from here.

Recorded: one pytest-benchmark entry per test (one round = the whole sweep or search); every
point's metrics under the point's name (``output_tok_s.c4``, ``ttft_ms.r2.5``,
``tpot_ms.i1000o300``), so a baseline gates each point as it gates any metric; the points in
``extra_info["sweep"]`` (or ``["capacity"]``) with their settings and all their metrics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from pytest_gpubench import progress
from pytest_gpubench.serving.aggregate import check_result
from pytest_gpubench.serving.arguments import real
from pytest_gpubench.serving.capacity import (
    CapacityResult,
    Found,
    OutOfTime,
    known_points,
    search_capacity,
    stored_points,
)
from pytest_gpubench.serving.context import ServeContext
from pytest_gpubench.serving.failures import point_failure
from pytest_gpubench.serving.plan import ServePlan
from pytest_gpubench.serving.points import (
    NOT_PER_POINT,
    PERCENTILES,
    POINT_METRICS,
    Budget,
    PointSizes,
    Setting,
    SweepPoint,
    SweepResult,
    boundary_noise,
    check_percentile,
    describe_point,
    meets,
    named,
    pareto_frontier,
    point_cost,
    point_metrics,
    prompts_for,
    saturated,
    settings_for,
    slo_check,
    steady_state,
    warmups_for,
)
from pytest_gpubench.serving.sweeper import (
    Sweeper,
    attach_ceiling,
    check_engine_ceiling,
    note_stalls,
    point_options,
    record_points,
    record_section,
)

__all__ = [
    "NOT_PER_POINT", "PERCENTILES", "POINT_METRICS", "Budget", "CapacityResult", "Found",
    "OutOfTime", "PointSizes", "Setting", "SweepPoint", "SweepResult", "Sweeper",
    "boundary_noise", "check_percentile", "describe_point", "known_points", "meets", "named",
    "pareto_frontier", "point_cost", "point_metrics", "prompts_for", "run_sweep", "saturated",
    "search_capacity", "settings_for", "slo_check", "steady_state", "stored_points",
    "warmups_for",
]  # fmt: skip


def run_sweep(
    ctx: ServeContext,
    server: Any,
    axes: tuple[Any, Any, Any],
    sizes: PointSizes,
    saturation: tuple[bool, float],
    time_budget_s: float | None,
    workload: Mapping[str, Any],
    engine_ceiling: Any = False,
) -> SweepResult:
    """``serve_bench.sweep``: ``axes`` is (concurrency, request_rate, shapes), one of them a
    list; ``saturation`` is (stop at saturation, tolerance); ``engine_ceiling``: after the
    points, the engine's own batched benchmark at the same shape (sweeper.attach_ceiling)."""
    ceiling = check_engine_ceiling(engine_ceiling)
    real("saturation_tolerance", saturation[1], low=0, hint="a fraction such as 0.1")
    budget_s = real("time_budget_s", time_budget_s, low=0, none="no limit", hint="seconds")
    own = ("concurrency", "request_rate", "num_prompts")
    args = point_options(workload, own, "serve_bench.sweep")
    settings = settings_for(*axes, args["input_len"], args["output_len"])
    pool = max((s.concurrency or 1024) for s in settings)
    with Sweeper(ctx, server, args, pool) as sweeper:
        plans = [  # every point's requests built before the clock starts
            sweeper.plan(s, sizes.prompts(s), sizes.warmups_at(s)) for s in settings
        ]
        total = sum(len(p.specs) for p in plans)
        with ctx.progress(total, f"sweep {plans[0].label}") as bar:
            found: dict[str, Any] = {}

            def run() -> None:
                found["result"] = _measure_sweep(
                    sweeper, settings, plans, saturation, budget_s, bar
                )

            times = ctx.time(run)
    result: SweepResult = found["result"]
    if ceiling and times and result.failure is None:
        attach_ceiling(ctx, server, result.points)
    _finish_sweep(ctx, result, plans[0], sizes, budget_s, recorded=bool(times))
    return result


def _measure_sweep(
    sweeper: Sweeper,
    settings: Sequence[Setting],
    plans: Sequence[ServePlan],
    saturation: tuple[bool, float],
    budget_s: float | None,
    bar: Any,
) -> SweepResult:
    """The points in order, until the last, a saturated one, or the time budget."""
    stop_at_saturation, tolerance = saturation
    axis = settings[0].axis
    points: list[SweepPoint] = []
    stopped = "done"
    budget = Budget(budget_s)
    for s, plan in zip(settings, plans, strict=True):
        requests = len(plan.specs) + len(plan.warm_specs)
        cost = point_cost(points, s.concurrency, s.request_rate, requests)
        if not budget.allows(cost):
            stopped = "time_budget"
            progress.say(
                f"sweep stopped before {s.label}: about {cost:.0f} s more would "
                f"pass time_budget_s={budget_s:g} ({budget.elapsed():.0f} s spent)"
            )
            break
        point = sweeper.measure(s, plan, bar)
        points.append(point)
        assert point.result is not None
        failure = point_failure(s.label, point.result.results, plan.max_error_rate, plan.base_url)
        if failure is not None:  # a failed point: the sweep stops there, and fails
            progress.say(describe_point("sweep", point))
            return SweepResult(points, axis, "failed_point", sweeper.gpus, failure)
        if (
            stop_at_saturation
            and axis != "shape"
            and len(points) >= 2
            and saturated(points[-2].metrics, point.metrics, tolerance)
        ):
            point.saturated = True
            stopped = "saturation"
        progress.say(describe_point("sweep", point))
        if stopped == "saturation":
            break
    return SweepResult(points, axis, stopped, sweeper.gpus)


def _finish_sweep(
    ctx: ServeContext,
    result: SweepResult,
    first: ServePlan,
    sizes: PointSizes,
    budget_s: float | None,
    recorded: bool,
) -> None:
    """Record the sweep (when timed), then each point's checks and the stalls' warning; a
    sweep that stopped at a failed point fails the test and records nothing."""
    points = result.points
    if result.failure is not None:
        measured = ", ".join(p.label for p in points)
        pytest.fail(
            f"serve_bench.sweep: {result.failure}; the sweep stopped there and recorded "
            f"nothing (measured: {measured})",
            pytrace=False,
        )
    if recorded:
        record_points(ctx.gpubench, points, headline=True)
        info = {
            "axis": result.axis,
            "stopped_by": result.stopped_by,
            "gpus": result.gpus,
            "slo_ms": first.slo_ms or None,
            "prompts_per_user": sizes.prompts_per_user,
            "time_budget_s": budget_s,
            "points": [p.as_dict() for p in points],
        }
        record_section(ctx, "sweep", info, first, points)
        if result.stopped_by == "time_budget":
            ctx.note(
                f"{ctx.test_name}: sweep stopped by time_budget_s={budget_s:g} "
                f"after {', '.join(p.label for p in points)}; the settings after those "
                "were not measured"
            )
    for point in points:
        assert point.result is not None
        check_result(point.result, first.max_error_rate, first.ignore_eos, stalls=False)
    note_stalls(ctx, "sweep", points, recorded=recorded)
