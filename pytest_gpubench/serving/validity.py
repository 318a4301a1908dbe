"""The validity verdict of a serving result: the facts ``metrics/validity.py`` judges, read
from what the run measured, recorded beside the bound verdict.

- the load client's CPU: this process's CPU seconds over the timed wall seconds
  (``gpubench.process_s`` / ``timed_s``; the server is another process, so only the client and
  pytest count), on runs with GPU telemetry only: a CPU run's server is a stand-in sharing the
  host's cores with the client (the suite's stub answers faster than any client reads), and
  such a result claims no GPU's number, as it carries no bound verdict either;
- output tokens: what the result counted (the server's ``usage`` per request, the client's
  chunk count where it sent none, and the chunks of failed requests) against the server's own
  token counter over the same runs (its Prometheus endpoint, ``server_output_tokens``), where
  the engine has one;
- the GPU's throttle reasons and its other compute processes over the runs' windows
  (``Telemetry.conditions``); other processes only where the plugin started the server as a
  process of its own, whose process tree is then known (a Docker or external server's
  processes cannot be told from a stranger's);
- the prompt-cache share the server reported against the shared-prefix share a random-text
  workload declared (presets, prompt files, datasets and traces repeat prompts by design).

An invalid result is shown as such (the results table), is not saved as a baseline unless
``--gpubench-save-invalid`` (results/baseline_run.py) and fails its test under
``--gpubench-fail-invalid``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import psutil
import pytest

from pytest_gpubench.metrics.validity import Validity, ValidityFacts, judge_validity
from pytest_gpubench.serving import recording
from pytest_gpubench.serving.context import ServeContext
from pytest_gpubench.serving.run import RunResult

#: workload keys whose prompts repeat by design: their cache hits are no surprise
REPEATING = ("preset", "prompts_file", "dataset", "trace_file")


def token_counts(runs: Sequence[RunResult]) -> tuple[float, float | None]:
    """(tokens the result counted, tokens the server's counter saw) over ``runs``; the
    server's None unless every run read its counter."""
    results = [r for run in runs for r in run.results]
    client = sum(r.output_tokens for r in results if r.ok)
    client += sum(r.client_output_chunks for r in results if not r.ok)
    counted = [run.server.get("server_output_tokens") for run in runs]
    if not counted or any(c is None for c in counted):
        return float(client), None
    return float(client), float(sum(c for c in counted if c is not None))


def cache_shares(
    runs: Sequence[RunResult], workload: Mapping[str, Any]
) -> tuple[float | None, float | None]:
    """(prompt-cache share the server reported, the share the workload declared)."""
    if any(workload.get(k) for k in REPEATING):
        return None, None
    cache = [r.prompt_cache for run in runs for r in run.results if r.ok and r.prompt_cache]
    total = sum(c[1] for c in cache)
    if not total:
        return None, None
    prefix = int(workload.get("prefix_len") or 0)
    declared = prefix / (prefix + int(workload.get("input_len") or 1))
    return sum(c[0] for c in cache) / total, declared


def gpu_conditions(
    gpubench: Any, runs: Sequence[RunResult], server: Any
) -> tuple[dict[str, float], list[str]]:
    """Throttle shares and foreign GPU processes over the runs' windows (none without a
    sampler); foreign processes only for a server the plugin started as a process."""
    sampler = getattr(gpubench, "sampler", None)
    if sampler is None or not sampler.telemetry.gpu:
        return {}, []
    offset = time.monotonic() - time.perf_counter()  # 0 on Linux, where both are one clock
    spans = [(run.start + offset, run.end + offset) for run in runs]
    me = psutil.Process(os.getpid())
    ours = {me.pid, *(p.pid for p in me.children(recursive=True))}
    shares, others = sampler.telemetry.conditions(spans, ours)
    if getattr(server, "launcher", None) != "process":
        others = []
    return shares, others


def serving_validity(
    gpubench: Any, runs: Sequence[RunResult], workload: Mapping[str, Any], server: Any
) -> Validity:
    """The verdict over ``runs`` (one call's rounds, or a sweep's points)."""
    client, counted = token_counts(runs)
    shares, others = gpu_conditions(gpubench, runs, server)
    cached, declared = cache_shares(runs, workload)
    timed = float(getattr(gpubench, "timed_s", 0.0) or 0.0)
    sampler = getattr(gpubench, "sampler", None)
    on_gpu = sampler is not None and sampler.telemetry.gpu
    return judge_validity(
        ValidityFacts(
            client_cpu_s=float(gpubench.process_s) if timed > 0 and on_gpu else None,
            wall_s=timed or None,
            client_tokens=client,
            server_tokens=counted,
            throttle_share=shares,
            other_gpu_processes=others,
            cached_fraction=cached,
            declared_cached_fraction=declared,
        )
    )


def record_validity(ctx: ServeContext, validity: Validity, what: str = "serve_bench") -> None:
    """Record the verdict (joined with one this test recorded before: a capacity search
    after its sweep) and, under --gpubench-fail-invalid, fail an invalid result."""
    before = recording.read_validity(ctx.gpubench)
    if before is not None and not before.valid:
        reasons = tuple(dict.fromkeys(before.reasons + validity.reasons))
        validity = Validity(False, reasons)
    recording.write_validity(ctx.gpubench, ctx.request, validity)
    if not validity.valid and ctx.config.getoption("gpubench_fail_invalid", default=None):
        pytest.fail(
            f"{what}: the result is invalid: {'; '.join(validity.reasons)} "
            "(--gpubench-fail-invalid)",
            pytrace=False,
        )
