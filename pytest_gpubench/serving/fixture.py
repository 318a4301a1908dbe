"""The ``serve_bench`` fixture: a ``ServeBench`` with the run's serving settings."""

from __future__ import annotations

import pytest

from pytest_gpubench.bench.gpubench import GpuBench
from pytest_gpubench.serving.bench import ServeBench
from pytest_gpubench.state import state


@pytest.fixture
def serve_bench(gpubench: GpuBench, request: pytest.FixtureRequest) -> ServeBench:
    """Benchmark an OpenAI-compatible server; see ``ServeBench.__call__``."""
    settings = state(request.config).settings
    return ServeBench(
        gpubench,
        request,
        max_error_rate=settings.max_error_rate,
        progress_mode=settings.progress,
    )
