"""The ``serve_bench`` fixture: a ``ServeBench`` with the run's serving settings."""

from __future__ import annotations

import pytest

from pytest_gpubench.bench.gpubench import GpuBench
from pytest_gpubench.serving.bench import ServeBench
from pytest_gpubench.serving.placement import ESTIMATE
from pytest_gpubench.state import state


@pytest.fixture
def serve_bench(gpubench: GpuBench, request: pytest.FixtureRequest) -> ServeBench:
    """Benchmark an OpenAI-compatible server; see ``ServeBench.__call__``."""
    run = state(request.config)
    settings = run.settings
    verdict = run.verdicts.get(request.node.nodeid)
    request.node.stash[ESTIMATE] = verdict.need if verdict is not None else None
    return ServeBench(
        gpubench,
        request,
        max_error_rate=settings.max_error_rate,
        progress_mode=settings.progress,
        nonce=run.prompt_nonce,
    )
