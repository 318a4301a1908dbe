"""Measuring sweep and capacity points, on one client, inside the test's one timed round.

A ``Sweeper`` plans each point with ``plan.build_plan`` (a draw of its own), runs it with
``measure.run_steady`` and aggregates it with ``aggregate.run_metrics``, so a point's metrics
are exactly what ``serve_bench`` would record for it. Also here: what a sweep and a capacity
search record besides their own section (each point's metrics under its name, the stall
share pooled over the test's points).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.launch.engine_ceiling import Ceiling, measure_ceiling
from pytest_gpubench.metrics.core import Metric
from pytest_gpubench.metrics.point import PointReport
from pytest_gpubench.serving import recording
from pytest_gpubench.serving.aggregate import (
    ServeResult,
    ServingWarning,
    plugin_metrics,
    run_metrics,
)
from pytest_gpubench.serving.client import StreamingClient
from pytest_gpubench.serving.context import ServeContext
from pytest_gpubench.serving.measure import client_for, run_steady
from pytest_gpubench.serving.options import (
    ServeOptions,
    defaults,
    expand_values,
    unknown_keywords,
)
from pytest_gpubench.serving.plan import ServePlan, build_plan
from pytest_gpubench.serving.point_report import point_report
from pytest_gpubench.serving.points import (
    NOT_PER_POINT,
    POINT_METRICS,
    Setting,
    SweepPoint,
    named,
    point_metrics,
    steady_state,
)
from pytest_gpubench.serving.run import RunResult, close_loop
from pytest_gpubench.serving.stalls import stall_message, stall_metric
from pytest_gpubench.serving.validity import record_validity, serving_validity
from pytest_gpubench.serving.warn import warn_at_caller


def point_options(workload: Mapping[str, Any], own: Sequence[str], call: str) -> dict[str, Any]:
    """``serve_bench``'s keywords for every point: the defaults, then ``workload``; a
    keyword the sweep sets per point (``own``) or that means nothing per point is an error."""
    workload = expand_values(workload)
    for name in workload:
        if name in NOT_PER_POINT or name in own:
            raise GpubenchError(
                f"{name} is not a sweep argument (each point sets its own number of "
                "prompts and warm-ups, and runs once; see prompts_per_user)"
            )
    args = defaults()
    unknown_keywords(workload, args, call)
    args.update(workload)
    return args


class Sweeper:
    """Runs points of one sweep or capacity search inside one timed round, on one client
    sized for ``pool`` streams (the most any point opens)."""

    def __init__(self, ctx: ServeContext, server: Any, args: Mapping[str, Any], pool: int) -> None:
        self.ctx = ctx
        self.server = server
        self.args = dict(args)
        self.pool = pool
        self.gpus = max(int(getattr(ctx.gpubench.profile, "gpu_count", 1) or 1), 1)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.client: StreamingClient | None = None

    def plan(self, setting: Setting, num_prompts: int, warmups: int) -> ServePlan:
        """The ``ServePlan`` of one measurement of a point. Each call builds new requests (a
        draw of its own): a re-measured point that re-sent its prompts would find them in the
        server's prefix cache and skip their prefill, as every point after the first of an
        H200 capacity search did (llama.cpp's log: 1-token prefills), so it would measure
        another workload."""
        given = {
            **self.args,
            "concurrency": setting.concurrency,
            "request_rate": math.inf if setting.request_rate is None else setting.request_rate,
            "input_len": setting.input_len,
            "output_len": setting.output_len,
            "num_prompts": num_prompts,
            "warmups": warmups,
        }
        return build_plan(self.ctx, self.server, ServeOptions.from_keywords(given))

    def measure(self, setting: Setting, plan: ServePlan, bar: Any = None) -> SweepPoint:
        """One point measured at its steady load, with its result."""
        assert self.loop is not None
        if self.client is None:
            self.client = client_for(plan, self.loop, self.pool)
        began = time.monotonic()
        run = run_steady(plan, self.loop, self.client, bar)
        metrics = run_metrics([run], plan.slo_ms, plan.ignore_eos)
        metrics.update(plugin_metrics(self.ctx.config, [run], metrics))
        result = ServeResult(metrics, [run], dict(plan.info))
        figures = self.figures(setting, run, metrics)
        if figures is not None:
            metrics.update(figures.metrics())
        return SweepPoint(
            setting.concurrency,
            setting.request_rate,
            setting.input_len,
            setting.output_len,
            point_metrics(metrics, self.gpus),
            label=setting.label,
            num_prompts=len(plan.specs),
            warmups=len(plan.warm_specs),
            steady=steady_state(run.results, setting.concurrency, run.warmups),
            wall_s=time.monotonic() - began,
            result=result,
            bound=figures.verdict.as_dict() if figures and figures.verdict else None,
        )

    def figures(
        self, setting: Setting, run: RunResult, metrics: Mapping[str, Metric]
    ) -> PointReport | None:
        """The point's own roofline %, energy per output token, GPU busy and bound verdict
        over its window (serving/point_report.py); None without a sampler or a rate."""
        tok_s = metrics.get("output_tok_s")
        if tok_s is None:
            return None
        return point_report(
            self.ctx.gpubench,
            run.results,
            tok_s.value,
            (run.start, run.end),
            setting.concurrency,
            lead=run.warmups,
            stalls=run.stalls,
        )

    def __enter__(self) -> Sweeper:
        self.loop = asyncio.new_event_loop()
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self.loop is not None
        close_loop(self.loop, self.client)


def record_points(gpubench: Any, points: Sequence[SweepPoint], headline: bool = False) -> None:
    """Each point's main metrics under the point's name (``output_tok_s.c4``)."""
    for point in points:
        for name in POINT_METRICS:
            if name in point.metrics:
                m = named(point.metrics[name], point.label)
                recording.write_metric(gpubench, m, headline=headline and name == "output_tok_s")


def record_section(
    ctx: ServeContext,
    key: str,
    info: Mapping[str, Any],
    first: ServePlan,
    points: Sequence[SweepPoint] = (),
) -> None:
    """The entry's ``key`` section (``"sweep"`` or ``"capacity"``), its serving settings from
    the first point's plan, the server's placement, and the validity verdict over the
    measured ``points`` (serving/validity.py)."""
    recording.write_points_section(ctx.gpubench, key, info, first.info)
    recording.write_placement(ctx.gpubench, ctx.request, first.server, first.engine)
    runs = [run for p in points for run in runs_of(p)]
    if runs:
        verdict = serving_validity(ctx.gpubench, runs, first.info, first.server)
        record_validity(ctx, verdict, f"serve_bench.{'sweep' if key == 'sweep' else key}")


def runs_of(point: SweepPoint) -> Sequence[RunResult]:
    """A measured point's runs; none for a point without its result (stored, not measured)."""
    return point.result.runs if point.result is not None else ()


def note_stalls(ctx: ServeContext, kind: str, points: Sequence[SweepPoint], recorded: bool) -> None:
    """The server's stalls over this test's sweep and capacity points: one pooled
    ``server_stall_fraction`` for the entry (not per point: it is a condition, and a
    suffixed name would be gated), and one warning for these points, each point's share
    named."""
    own = [run.stalls for p in points for run in runs_of(p)]
    ctx.point_stalls += own
    pooled = stall_metric(ctx.point_stalls)
    if pooled is None:
        return
    if recorded:
        recording.write_metric(ctx.gpubench, pooled)
    shares = []
    for p in points:
        m = stall_metric([run.stalls for run in runs_of(p)])
        if m is not None:
            shares.append((p.label, m.value))
    message = stall_message(stall_metric(own), own, per_point=shares)
    if message:
        warn_at_caller(ServingWarning(f"{kind}: {message}"))


#: the least time the engine's ceiling may take (its model loads first), in seconds
CEILING_MIN_LIMIT_S = 120.0


def check_engine_ceiling(value: Any) -> bool:
    """``engine_ceiling=`` is True or False; anything else is the user's mistake."""
    if not isinstance(value, bool):
        raise GpubenchError(
            f"engine_ceiling must be True or False, got {value!r}: True runs the engine's own "
            "batched benchmark (llama.cpp's llama-batched-bench) after the sweep"
        )
    return value


def attach_ceiling(ctx: ServeContext, server: Any, points: Sequence[SweepPoint]) -> None:
    """After a concurrency sweep: the engine's own batched benchmark once at the workload's
    shape, with one row per swept concurrency; each point gets ``engine_ceiling_tok_s``
    (the tool's decode tok/s at that many sequences) and ``engine_ceiling_pct`` (its
    output_tok_s as a percentage of it). Where there is none, one note says why."""
    concurrencies = sorted({p.concurrency for p in points if p.concurrency})
    if not points or not concurrencies or any(p.request_rate is not None for p in points):
        ctx.note(f"{ctx.test_name}: no engine ceiling: it is measured for a concurrency sweep")
        return
    shapes = {(p.input_len, p.output_len) for p in points}
    if len(shapes) != 1:
        ctx.note(f"{ctx.test_name}: no engine ceiling: it is measured at one shape per sweep")
        return
    limit_s = max(CEILING_MIN_LIMIT_S, 2 * sum(p.wall_s for p in points))
    found = measure_ceiling(server, concurrencies, shapes.pop(), limit_s)
    if not isinstance(found, Ceiling):
        ctx.note(f"{ctx.test_name}: no engine ceiling: {found}")
        return
    missing = []
    for point in points:
        ceiling = found.decode_tok_s.get(point.concurrency or 0)
        tok_s = point.metrics.get("output_tok_s")
        if ceiling is None or tok_s is None:
            missing.append(point.label)
            continue
        point.metrics.update(ceiling_metrics(ceiling, tok_s.value, point.concurrency or 0))
    if missing:
        ctx.note(f"{ctx.test_name}: no engine ceiling at {', '.join(missing)}: no row for it")


def ceiling_metrics(ceiling_tok_s: float, output_tok_s: float, parallel: int) -> dict[str, Metric]:
    """The two per-point figures; the parallel sequences they were measured at in the spread."""
    spread = {"parallel": float(parallel)}
    return {
        "engine_ceiling_tok_s": Metric(
            "engine_ceiling_tok_s", ceiling_tok_s, "tok/s", True, dict(spread),
            "the engine's own batched benchmark (llama-batched-bench S_TG): decode tokens/s "
            "at this many parallel sequences of the point's shape",
        ),
        "engine_ceiling_pct": Metric(
            "engine_ceiling_pct", 100.0 * output_tok_s / ceiling_tok_s, "%", True, dict(spread),
            "the point's output_tok_s as a percentage of engine_ceiling_tok_s",
        ),
    }  # fmt: skip
