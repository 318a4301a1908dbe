"""Extension points, as pytest-benchmark's ``hookspec.py``: implement these in a conftest.py
or a plugin to add engines, device profiles and serving metrics without editing the plugin.

Engines and profiles are collected once, in ``pytest_configure``; serving metrics after every
``serve_bench`` run. See docs/extending/ for a whole example engine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_gpubench.engines import Engine
    from pytest_gpubench.metrics.core import Metric
    from pytest_gpubench.serving.client import RequestResult
    from pytest_gpubench.serving.schedule import LoadShape
    from pytest_gpubench.serving.sources import RequestSource


def pytest_gpubench_register_engines(register: Callable[..., Engine]) -> None:
    """Call ``register(engine)`` (``replace=True`` to override a built-in) for each engine
    this plugin adds; it is then usable by name in ``llm_server``, the ``model`` marker's
    ``engine=``, ``pytest-gpubench fit --engine`` and the serving metrics. Registrations last
    for this pytest run."""


def pytest_gpubench_add_profiles(config: pytest.Config) -> Mapping[str, Mapping[str, Any]] | None:
    """Device profiles to add or override, shaped like the ``[profiles.NAME]`` tables of a
    profiles TOML file: ``{"rtx6000pro": {"memory_gib": 96, "source": "datasheet"}}``. The
    user's own profile file (``--gpubench-profiles``) is applied after, so it wins."""


def pytest_gpubench_serving_metrics(
    results: Sequence[RequestResult], duration_s: float
) -> Mapping[str, Metric] | None:
    """Extra metrics from one ``serve_bench`` run's per-request results (every round), recorded
    beside the built-in ones with their unit and direction; a name the plugin already records
    is an error, so a plugin cannot silently redefine a built-in metric."""


def pytest_gpubench_register_request_sources(register: Callable[..., RequestSource]) -> None:
    """Call ``register(source)`` for each request source this plugin adds (an object with
    ``name``, ``needs_tokenizer(workload)`` and ``draw(draw)``: serving/sources.py); a test
    then sends its requests with ``serve_bench(server, source="name", ...)``. Asked the first
    time a test of the run uses ``serve_bench``; registrations last for this pytest run."""


def pytest_gpubench_register_load_shapes(register: Callable[..., LoadShape]) -> None:
    """Call ``register(shape)`` for each load shape this plugin adds (an object with ``name``
    and ``offsets(load)``, the seconds after the start each request is due:
    serving/schedule.py); a test uses it as ``serve_bench(server, arrival="name", ...)``."""
