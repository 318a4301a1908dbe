"""The validity verdict of an in-process ``gpubench`` result (metrics/validity.py).

Of the verdict's facts, an in-process run has the GPU's: NVML's throttle reasons and the GPU's
compute processes over the timed rounds. The client and token facts belong to serving runs
(serving/validity.py), and a serving test's GPU work runs in its server, so serve_bench judges
those results itself. Only where NVML watched the GPU; a CPU run records no verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psutil
import pytest

from pytest_gpubench.bench.telemetry import Sampler
from pytest_gpubench.metrics.validity import ValidityFacts, judge_validity
from pytest_gpubench.results.record import record_invalid
from pytest_gpubench.results.sections import write_validity


def our_processes() -> set[int]:
    """This process and every process it started (a launched server, DataLoader workers)."""
    me = psutil.Process()
    return {me.pid, *(p.pid for p in me.children(recursive=True))}


def judge_rounds(
    request: pytest.FixtureRequest,
    benchmark: Any,
    sampler: Sampler,
    spans: Sequence[tuple[float, float]],
) -> None:
    """Record the verdict over the timed rounds' ``spans`` (monotonic seconds); an invalid
    one is shown in the results table and fails the test under --gpubench-fail-invalid."""
    if not sampler.telemetry.gpu:
        return
    shares, others = sampler.telemetry.conditions(list(spans), our_processes())
    validity = judge_validity(ValidityFacts(throttle_share=shares, other_gpu_processes=others))
    write_validity(benchmark.extra_info, validity)
    if validity.valid:
        return
    record_invalid(request, "; ".join(validity.reasons))
    if request.config.getoption("gpubench_fail_invalid", default=None):
        pytest.fail(
            f"the result is invalid: {'; '.join(validity.reasons)} (--gpubench-fail-invalid)",
            pytrace=False,
        )
