"""The ``serve_bench`` fixture's object: benchmark an OpenAI-compatible server as a test.

``serve_bench(server, **workload)`` is a thin facade over the serving steps, each a module:
``options`` (the keywords as values: ``Load``, ``Limits``, ``Requests``, ``Client``, built once),
``plan`` (every request built before any clock starts), ``measure`` (rounds through
``gpubench.time`` - pytest-benchmark's ``benchmark.pedantic`` - so each round is one fixed
workload and ``--benchmark-compare-fail`` works as users expect; warm-ups in the untimed
``setup``), ``aggregate`` (metrics with unit and direction, recording, the warnings and the
error-rate failure), and beside them ``sweep``, ``capacity`` and ``depth``. The test's run
context (draws, progress, stalls so far) is one ``ServeContext``.

``server`` is anything with ``base_url`` (``http://host:port``, no ``/v1``) and ``model``,
optionally ``engine.name`` - the ``llm_server`` fixture's servers, or an external one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from pytest_gpubench.bench.gpubench import GpuBench
from pytest_gpubench.errors import usage_errors_fail
from pytest_gpubench.metrics.core import Metric
from pytest_gpubench.serving import capacity as capacity_search
from pytest_gpubench.serving import sweep as sweeps
from pytest_gpubench.serving.aggregate import (
    ServeResult,
    ServingWarning,
    aggregate,
    repeated_prompts_message,
)
from pytest_gpubench.serving.arguments import check_depth_sweep
from pytest_gpubench.serving.client import IDLE_TIMEOUT_S
from pytest_gpubench.serving.context import ServeContext
from pytest_gpubench.serving.depth import run_depth_sweep
from pytest_gpubench.serving.measure import run_rounds
from pytest_gpubench.serving.metrics import SERVING_METRICS
from pytest_gpubench.serving.options import Limits, ServeOptions, signature
from pytest_gpubench.serving.plan import ServePlan, ServerLike, build_plan, engine_of
from pytest_gpubench.serving.points import CapacityResult, PointSizes, SweepPoint, SweepResult
from pytest_gpubench.serving.recording import HEADLINE
from pytest_gpubench.serving.registry import collect_plugins
from pytest_gpubench.serving.schedule import SHAPES
from pytest_gpubench.serving.sources import SOURCES
from pytest_gpubench.serving.tokens import Tokenizer

__all__ = [
    "HEADLINE",
    "ServeBench",
    "ServePlan",
    "ServeResult",
    "ServerLike",
    "ServingWarning",
    "engine_of",
    "repeated_prompts_message",
]

#: the hooks through which a conftest registers serving's extension points (hookspec.py)
PLUGIN_HOOKS = {
    "pytest_gpubench_register_request_sources": SOURCES,
    "pytest_gpubench_register_load_shapes": SHAPES,
}


class ServeBench:
    """``serve_bench``: the run's serving defaults and this test's ``ServeContext``."""

    result_type = ServeResult  # what one run returns

    def __init__(
        self,
        gpubench: GpuBench,
        request: pytest.FixtureRequest,
        *,
        max_error_rate: float = 0.0,
        progress_mode: str = "auto",
        nonce: int | None = None,
    ) -> None:
        """``max_error_rate`` and ``progress_mode`` are the run's defaults
        (--gpubench-max-error-rate, --gpubench-progress); each call may override the first.
        ``nonce`` (one per pytest run) changes the random prompts' text, not their lengths,
        so a long-lived server has not cached this run's prompts from an earlier run."""
        self.ctx = ServeContext(gpubench, request, max_error_rate, progress_mode, nonce)
        config = getattr(request, "config", None)
        if config is not None:
            collect_plugins(config, PLUGIN_HOOKS)  # type: ignore[arg-type]

    @property
    def max_error_rate(self) -> float:
        return self.ctx.max_error_rate

    @usage_errors_fail("serve_bench")
    def __call__(self, server: ServerLike, **options: Any) -> ServeResult:
        """One measurement of ``server``; the keywords are the fields of ``Load``, ``Limits``,
        ``Requests`` and ``Client`` (serving/options.py), e.g. ``input_len``, ``output_len``,
        ``num_prompts``, ``concurrency``, ``warmups``, ``slo``. ``timeout_s`` bounds each
        request; ``idle_timeout_s`` (None: off) ends a stream that has started and then sends
        nothing for that long, as a failed request. ``dataset``, ``multi_turn`` and
        ``trace_file``: workloads from real data (serving/datasets.py); ``source``: a
        registered request source (serving/sources.py)."""
        plan = build_plan(self.ctx, server, ServeOptions.from_keywords(options))
        runs, times = run_rounds(self.ctx, plan)
        return aggregate(self.ctx, plan, runs, recorded=bool(times))

    __call__.__signature__ = signature()  # type: ignore[attr-defined]  # help(): the keywords

    @usage_errors_fail("serve_bench.sweep")
    def sweep(
        self,
        server: ServerLike,
        *,
        concurrency: int | Sequence[int] | None = 1,
        request_rate: float | Sequence[float] = math.inf,
        shapes: Sequence[tuple[int, int]] | None = None,
        prompts_per_user: int = 4,
        min_prompts: int = 8,
        num_prompts: int | None = None,
        warmups: int | None = None,
        stop_at_saturation: bool = True,
        saturation_tolerance: float = 0.1,
        time_budget_s: float | None = None,
        engine_ceiling: bool = False,
        **workload: Any,
    ) -> SweepResult:
        """One point per concurrency, request rate or ``(input_len, output_len)`` shape (the
        one argument given as a list), each with its own warm-ups (default one per stream)
        and ``prompts_per_user`` requests per stream (or ``num_prompts`` at every point);
        stops after the first point that saturates, or before a point that would take the
        sweep past ``time_budget_s`` seconds (estimated from the points measured; the first
        always runs). ``workload`` is any other ``serve_bench`` argument. Returns a
        ``SweepResult`` whose ``.points`` carry ``.concurrency``, ``.request_rate``,
        ``.input_len``, ``.output_len``, ``.metrics``. ``engine_ceiling=True`` (a llama.cpp
        server started here) adds each point's share of the engine's own batched ceiling."""
        sizes = PointSizes(prompts_per_user, min_prompts, num_prompts, warmups)
        return sweeps.run_sweep(
            self.ctx,
            server,
            (concurrency, request_rate, shapes),
            sizes,
            (stop_at_saturation, saturation_tolerance),
            time_budget_s,
            workload,
            engine_ceiling,
        )

    @usage_errors_fail("serve_bench.stored_points")
    def stored_points(self, path: Any, key: str) -> list[SweepPoint]:
        """The sweep points stored in ``path`` (a baseline or pytest-benchmark JSON of ours)
        for the benchmark whose key contains ``key``: ``capacity(known=...)`` starts from them
        when the sweep ran before (``serving.capacity.stored_points``)."""
        return capacity_search.stored_points(path, key)

    @usage_errors_fail("serve_bench.capacity")
    def capacity(
        self,
        server: ServerLike,
        slo: Mapping[str, float],
        *,
        percentile: int = 90,
        max_concurrency: int = 64,
        min_concurrency: int = 1,
        remeasure: int = 1,
        prompts_per_user: int = 4,
        min_prompts: int = 8,
        num_prompts: int | None = None,
        warmups: int | None = None,
        time_budget_s: float | None = None,
        known: Any = None,
        **workload: Any,
    ) -> CapacityResult:
        """The highest concurrency (from ``min_concurrency`` to ``max_concurrency``) whose
        ``percentile`` of every SLO metric (``ttft_ms``, ``tpot_ms``, ``e2el_ms``) is within
        its limit: bracket by doubling, bisect, re-measure either side of the boundary
        ``remeasure`` more times. With ``time_budget_s`` the search stops before a point that
        would pass it (estimated from the points measured) and answers with what it has:
        ``.stopped_by == "time_budget"``, the capacity the highest concurrency that passed so
        far and ``.upper`` the lowest that failed. ``known`` (a ``serve_bench.sweep`` result
        of the same workload, or its points) starts the search from those points' verdicts
        instead of measuring the bracket again; the boundary is still re-measured. Records
        ``capacity_users``; returns a ``CapacityResult`` (``.max_concurrency``, ``.points``
        in the order measured, the known ones not among them)."""
        ask = capacity_search.CapacityAsk.check(
            slo, percentile, (min_concurrency, max_concurrency), remeasure, time_budget_s
        )
        sizes = PointSizes(prompts_per_user, min_prompts, num_prompts, warmups)
        return capacity_search.run_capacity(self.ctx, server, ask, sizes, known, workload)

    @usage_errors_fail("serve_bench.depth_sweep")
    def depth_sweep(
        self,
        server: ServerLike,
        depths: Sequence[int] = (0, 1024, 4096),
        *,
        output_len: int = 64,
        requests_per_depth: int = 3,
        endpoint: str = "completions",
        tokenizer: Tokenizer | str | Path | None = None,
        seed: int = 42,
        timeout_s: float = 3600.0,
        max_error_rate: float | None = None,
        idle_timeout_s: float | None = IDLE_TIMEOUT_S,
    ) -> dict[int, dict[str, Metric]]:
        """Single-user decode speed and TTFT as the prompt grows (llama-bench's ``-d``).

        Records ``decode_tok_s.d<depth>``, ``prefill_tok_s.d<depth>`` and
        ``ttft_ms.d<depth>`` per depth; one pytest-benchmark round is the whole sweep.
        """
        check_depth_sweep(locals())
        limits = Limits(timeout_s, idle_timeout_s, None, max_error_rate)
        shape = (output_len, requests_per_depth, endpoint, seed)
        return run_depth_sweep(self.ctx, server, depths, shape, tokenizer, limits)


assert set(HEADLINE) <= set(SERVING_METRICS)
