"""The one bridge into pytest-benchmark.

Every metric a benchmark produces goes into ``benchmark.extra_info["metrics"][name]`` as
``{value, unit, higher_is_better, direction, spread}``, so ``--benchmark-json``,
``--benchmark-autosave`` and our baselines all carry the same data; the GPU goes into
``machine_info["gpu"]``. That section's shape and every other ``extra_info`` section's, each
with its writer and reader, are in ``results/sections.py``. The run also keeps its own list
of what was recorded for the terminal results table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from pytest_gpubench.devices.select import SelectedDevice
from pytest_gpubench.metrics.bound import Verdict
from pytest_gpubench.metrics.core import Metric
from pytest_gpubench.results.sections import METRICS, write_metric

METRICS_KEY = METRICS  # the name before sections.py


@dataclass
class Recorded:
    nodeid: str
    metrics: dict[str, Metric] = field(default_factory=dict)
    headline: list[str] = field(default_factory=list)  # names shown in the terminal table
    notes: list[str] = field(default_factory=list)  # e.g. "GPU telemetry off (...)"
    bound: Verdict | None = None  # what bounded the result (metrics/bound.py)
    gpu: str = ""  # under --gpubench-gpu-per-worker: the GPU it ran on, "1 (gw1)"
    invalid: str = ""  # why the result cannot be trusted (metrics/validity.py); "" if valid


RECORDS = pytest.StashKey[dict[str, Recorded]]()


def record_metric(
    request: pytest.FixtureRequest, benchmark: Any, metric: Metric, *, headline: bool = False
) -> None:
    """Store ``metric`` in the test's pytest-benchmark result and in the run's records."""
    write_metric(benchmark.extra_info, metric)
    records = request.config.stash.setdefault(RECORDS, {})
    entry = records.setdefault(request.node.nodeid, Recorded(request.node.nodeid))
    entry.metrics[metric.name] = metric
    if headline and metric.name not in entry.headline:
        entry.headline.append(metric.name)


def record_note(request: pytest.FixtureRequest, note: str) -> None:
    records = request.config.stash.setdefault(RECORDS, {})
    entry = records.setdefault(request.node.nodeid, Recorded(request.node.nodeid))
    if note not in entry.notes:
        entry.notes.append(note)


def record_bound(request: pytest.FixtureRequest, verdict: Verdict) -> None:
    """Keep the test's bound verdict for the results table."""
    records = request.config.stash.setdefault(RECORDS, {})
    entry = records.setdefault(request.node.nodeid, Recorded(request.node.nodeid))
    entry.bound = verdict


def record_invalid(request: pytest.FixtureRequest, reasons: str) -> None:
    """Keep why the test's result is invalid, for the results table."""
    records = request.config.stash.setdefault(RECORDS, {})
    entry = records.setdefault(request.node.nodeid, Recorded(request.node.nodeid))
    entry.invalid = reasons


def forget(config: pytest.Config, nodeid: str) -> None:
    """Drop what ``nodeid`` recorded (our records and pytest-benchmark's result), before the
    test is measured again: only the last measurement of a test is kept."""
    config.stash.get(RECORDS, {}).pop(nodeid, None)
    session = getattr(config, "_benchmarksession", None)
    if session is not None:
        session.benchmarks[:] = [b for b in session.benchmarks if b.fullname != nodeid]


def records(config: pytest.Config) -> list[Recorded]:
    return list(config.stash.get(RECORDS, {}).values())


def gpu_machine_info(device: SelectedDevice) -> dict[str, Any]:
    """Stable facts only (no clocks, temperature or used memory): pytest-benchmark warns
    when machine_info differs between a run and the run it is compared with."""
    det = device.detection
    return {
        "name": det.gpus[0].name if det.gpus else "none",
        "count": len(det.gpus),
        "names": [g.name for g in det.gpus],
        "memory_gib": [g.memory_gib for g in det.gpus],
        "compute_capability": [g.compute_capability for g in det.gpus],
        "driver": det.driver,
        "cuda": det.cuda,
        "profile": device.name,
    }
