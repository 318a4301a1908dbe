"""The ``gpubench`` fixture: a ``GpuBench`` for this test, on the run's device."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_gpubench.bench.gpubench import GpuBench
from pytest_gpubench.results.document import drop_empty
from pytest_gpubench.state import state


@pytest.fixture
def gpubench(benchmark: Any, request: pytest.FixtureRequest) -> GpuBench:
    """Time a workload and record its metrics; see ``GpuBench``."""
    run = state(request.config)
    return GpuBench(benchmark, request, run.device.profile, run.ceilings)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session):
    """Before pytest-benchmark writes anything (its own JSON and storage, our baseline): drop
    the results an interrupt left without a single round, which its JSON writer fails on, so
    Ctrl-C keeps what finished and exits with pytest's own status."""
    state(session.config).baselines.unfinished += drop_empty(session.config)
    return (yield)
