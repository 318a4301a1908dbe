"""The ``gpubench`` fixture: a ``GpuBench`` for this test, on the run's device."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_gpubench.bench.gpubench import GpuBench
from pytest_gpubench.state import state


@pytest.fixture
def gpubench(benchmark: Any, request: pytest.FixtureRequest) -> GpuBench:
    """Time a workload and record its metrics; see ``GpuBench``."""
    run = state(request.config)
    return GpuBench(benchmark, request, run.device.profile, run.ceilings)
