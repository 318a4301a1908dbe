"""Aggregate: from a plan's runs to a ``ServeResult`` - metrics, recording, the checks.

The serving metrics of the runs (``serving/metrics.py``), the stall share, the metrics
plugins add (``pytest_gpubench_serving_metrics``), what is recorded (``serving/recording.py``)
and the checks: warnings for a run that measured something other than what was asked, and the
failed test when more requests failed than allowed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.metrics.core import Metric
from pytest_gpubench.metrics.stats import mean_ci
from pytest_gpubench.selection.markers import model_of
from pytest_gpubench.serving import recording
from pytest_gpubench.serving.client import RequestResult
from pytest_gpubench.serving.context import ServeContext
from pytest_gpubench.serving.datasets import late_trace_message, turn_metrics
from pytest_gpubench.serving.decode_batch import decode_batch
from pytest_gpubench.serving.metrics import error_summary, result_rows, serving_metrics
from pytest_gpubench.serving.plan import ServePlan
from pytest_gpubench.serving.run import RunResult
from pytest_gpubench.serving.stalls import STALL_METRIC, stall_message, stall_metric
from pytest_gpubench.serving.validity import record_validity, serving_validity
from pytest_gpubench.serving.warn import ServingWarning, warn_at_caller


def repeated_prompts_message(cached: Metric | None, workload: Mapping[str, Any]) -> str | None:
    """A warning when the server took more of a random-text workload's prompt tokens from its
    prefix cache than its shared prefix explains (10 points of slack: chat templates and BOS
    tokens are shared too): the prompts had been sent before, so TTFT and throughput are
    those of cached prompts. None when the server reports no cache numbers, or for workloads
    whose prompts repeat by design (a preset, a prompts file, a dataset, a trace's blocks)."""
    if cached is None:
        return None
    if any(workload.get(k) for k in ("preset", "prompts_file", "dataset", "trace_file")):
        return None
    prefix = int(workload.get("prefix_len") or 0)
    shared = prefix / (prefix + int(workload.get("input_len") or 1))
    if cached.value <= shared + 0.1:
        return None
    return (
        f"the server took {cached.value:.0%} of the prompt tokens from its prefix cache "
        f"(its own report; the shared prefix explains {shared:.0%}): these prompts were sent "
        "to it before (another client, or a run of the same seed and nonce), so TTFT and "
        "throughput are those of cached prompts; restart the server or change seed="
    )


@dataclass
class ServeResult:
    """What ``serve_bench`` measured; metric values by name, plus the raw per-request data."""

    metrics: dict[str, Metric]
    runs: list[RunResult]
    workload: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> float:
        return self.metrics[name].value

    @property
    def results(self) -> list[RequestResult]:
        return [r for run in self.runs for r in run.results]

    @property
    def completed(self) -> int:
        return sum(r.ok for r in self.results)

    @property
    def failed(self) -> int:
        return sum(not r.ok for r in self.results)

    @property
    def error_rate(self) -> float:
        n = len(self.results)
        return self.failed / n if n else 0.0

    @property
    def short_outputs(self) -> int:
        m = self.metrics.get("short_outputs")
        return int(m.value) if m else 0

    @property
    def requests_used(self) -> int:
        return len(self.results)

    @property
    def stopped_by(self) -> str:
        return self.runs[-1].stopped_by if self.runs else ""


def run_metrics(
    runs: Sequence[RunResult], slo_ms: Mapping[str, float], ignore_eos: bool
) -> dict[str, Metric]:
    """The serving metrics of ``runs`` (rounds, or one sweep point's run)."""
    results = [r for run in runs for r in run.results]
    duration = sum(run.duration for run in runs)
    if len(runs) >= 2:
        ci: tuple[float, float] | None = mean_ci([run.output_tok_s for run in runs])
    else:
        ci = runs[0].throughput_ci if runs else None
    server: dict[str, float] = {}
    for run in runs:  # totals add up over rounds; means are averaged
        for k, v in run.server.items():
            server[k] = server.get(k, 0.0) + v
    for k in list(server):
        if k != "server_output_tokens":
            server[k] /= sum(1 for run in runs if k in run.server)
    metrics = serving_metrics(
        results,
        duration,
        slo=slo_ms,
        expect_full_output=ignore_eos,
        throughput_ci=ci,
        server=server,
        lead=[r for run in runs for r in run.warmups],
        windows=[(run.start, run.end) for run in runs],
    )
    stalled = stall_metric([run.stalls for run in runs])
    if stalled is not None:
        metrics[STALL_METRIC] = stalled
    if "output_tok_s" in metrics:
        m = metrics["output_tok_s"]
        spread = dict(m.spread)
        spread["rounds"] = len(runs)
        metrics["output_tok_s"] = Metric(
            m.name, m.value, m.unit, m.higher_is_better, spread, m.description
        )
    return metrics


def plugin_metrics(
    config: pytest.Config, runs: Sequence[RunResult], builtin: Mapping[str, Metric]
) -> dict[str, Metric]:
    """What plugins' ``pytest_gpubench_serving_metrics`` add (see hookspec.py)."""
    results = [r for run in runs for r in run.results]
    duration = sum(run.duration for run in runs)
    out: dict[str, Metric] = {}
    for found in config.hook.pytest_gpubench_serving_metrics(results=results, duration_s=duration):
        for name, m in (found or {}).items():
            if not isinstance(m, Metric) or m.name != name:
                raise GpubenchError(
                    f"pytest_gpubench_serving_metrics returned {name!r}: {m!r}; return "
                    "{name: Metric(name, value, unit, higher_is_better)}"
                )
            if name in builtin or name in out:
                raise GpubenchError(
                    f"pytest_gpubench_serving_metrics: metric {name!r} is already recorded; "
                    "give the plugin's metric its own name"
                )
            out[name] = m
    return out


def check_result(
    result: ServeResult, max_error_rate: float, ignore_eos: bool, stalls: bool = True
) -> None:
    """The run's warnings and its error-rate failure; a sweep point leaves its stalls to
    the sweep's one warning (``stalls=False``)."""
    m = result.metrics
    short = result.short_outputs
    if short and ignore_eos:
        asked = int(m["short_outputs"].spread["asked_tokens"])
        got = int(m["short_outputs"].spread["got_tokens"])
        warn_at_caller(
            ServingWarning(
                f"{short} of {result.completed} requests produced fewer output tokens than "
                f"asked ({got} of {asked} tokens in all): the server ignored ignore_eos/"
                "max_tokens, so throughput is not for the requested workload"
            ),
        )
    mismatched = int(m["token_count_mismatches"].value) if "token_count_mismatches" in m else 0
    if mismatched:
        warn_at_caller(
            ServingWarning(
                f"{mismatched} of {result.completed} requests had no usage from the server or "
                "reported fewer tokens than the text chunks received; their output counts "
                "are the client's chunk count"
            ),
        )
    cached = repeated_prompts_message(m.get("cached_prompt_fraction"), result.workload)
    if cached:
        warn_at_caller(ServingWarning(cached))
    reports = [run.stalls for run in result.runs]
    stalled = stall_message(m.get(STALL_METRIC), reports) if stalls else None
    if stalled:
        warn_at_caller(ServingWarning(stalled))
    if result.error_rate > max_error_rate:
        pytest.fail(
            f"serve_bench: {result.failed} of {len(result.results)} requests failed "
            f"(error rate {result.error_rate:.1%} > allowed {max_error_rate:.1%}): "
            f"{error_summary(result.results)}",
            pytrace=False,
        )


def aggregate(
    ctx: ServeContext, plan: ServePlan, runs: list[RunResult], recorded: bool
) -> ServeResult:
    """The result of ``plan``'s rounds: metrics, recorded when timed (not under
    --benchmark-disable), and the checks that warn or fail the test."""
    metrics = run_metrics(runs, plan.slo_ms, plan.ignore_eos)
    metrics.update(turn_metrics([r for run in runs for r in run.results]))
    metrics.update(plugin_metrics(ctx.config, runs, metrics))
    info = {
        **plan.info,
        "requests_used": sum(len(r.results) for r in runs),
        "stopped_by": runs[-1].stopped_by if runs else None,
        "slo_ms": plan.slo_ms or None,
    }
    if plan.info.get("multi_turn"):
        info["turns_not_sent"] = sum(run.turns_not_sent for run in runs)
    result = ServeResult(metrics, runs, info)
    late = late_trace_message(result.results, plan.load.concurrency)
    if late:
        warn_at_caller(ServingWarning(late))
    if recorded:
        recording.write_metrics(ctx.gpubench, metrics)
        recording.write_serving(ctx.gpubench, info)
        recording.write_requests(ctx.gpubench, result_rows(result.results))
        record_per_token(ctx, result)
        recording.write_placement(ctx.gpubench, ctx.request, plan.server, plan.engine)
        record_validity(ctx, serving_validity(ctx.gpubench, runs, info, plan.server))
    check_result(result, plan.max_error_rate, plan.ignore_eos)
    return result


def record_per_token(ctx: ServeContext, result: ServeResult) -> None:
    """Energy per output token over the timed rounds, and the decode roofline at the batch
    the server actually ran (serving/decode_batch.py) when the test names its model."""
    gpubench = ctx.gpubench
    ok = [r for r in result.results if r.ok]
    tokens = sum(r.output_tokens for r in ok)
    energy = gpubench.telemetry.get("energy_j")
    if energy and tokens:
        recording.write_metric(
            gpubench,
            Metric(
                "energy_per_output_token_j",
                energy / tokens,
                "J/tok",
                False,
                {},
                "NVML energy over the timed rounds / output tokens",
            ),
            headline=True,
        )
        recording.write_metric(
            gpubench, Metric("output_tokens_per_j", tokens / energy, "tok/J", True)
        )
    measured = decode_batch(ok)
    marked = model_of(ctx.request.node)  # parsed at collection
    on_gpu = "gpu_util_pct" in gpubench.telemetry  # a CPU run serves a tiny stand-in
    if measured is None or marked is None or not on_gpu:
        return
    recording.write_decode_batch(
        gpubench,
        mean_batch=measured.batch,
        decode_tok_s=measured.tokens_per_s,
        context=measured.context,
        decoding_s=measured.decoding_s,
    )
    gpubench.roofline_decode(measured.tokens_per_s, batch=measured.batch, context=measured.context)
