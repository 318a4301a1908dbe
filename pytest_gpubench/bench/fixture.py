"""The ``gpubench`` fixture: a ``GpuBench`` for this test, on the run's device."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pytest_gpubench.bench.gpubench import GpuBench
from pytest_gpubench.results.document import drop_empty
from pytest_gpubench.state import state


@pytest.fixture
def gpubench(benchmark: Any, request: pytest.FixtureRequest) -> Iterator[GpuBench]:
    """Time a workload and record its metrics; see ``GpuBench``. After the test, the result
    gets its bound verdict (metrics/bound.py)."""
    run = state(request.config)
    bench = GpuBench(benchmark, request, run.device.profile, run.ceilings)
    yield bench
    bench.judge_bound()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session):
    """Before pytest-benchmark writes anything (its own JSON and storage, our baseline): drop
    the results an interrupt left without a single round, which its JSON writer fails on, so
    Ctrl-C keeps what finished and exits with pytest's own status."""
    state(session.config).baselines.unfinished += drop_empty(session.config)
    return (yield)
