"""Fixtures for the in-process workloads, and the hook that turns CUDA OOM into "did not fit".

Each ``*_workload`` fixture checks its optional extra first (a missing one skips the test with
the pip command that installs it), then returns a builder: call it with settings to override
the seed's defaults, and ``.run(gpubench)`` the result. torch is imported only here, lazily,
so the plugin itself loads without it.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import pytest

from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.state import state
from pytest_gpubench.workloads import memory
from pytest_gpubench.workloads.extras import MissingExtra, require


def _require(extra: str) -> None:
    try:
        require(extra)
    except MissingExtra as exc:
        pytest.skip(str(exc))


def _settings(config: pytest.Config) -> Any:
    return state(config).settings


def _builder(cls: Any, settings_cls: Any, defaults: dict[str, Any]) -> Callable[..., Any]:
    def build(**overrides: Any) -> Any:
        known = set(settings_cls.__dataclass_fields__)
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise GpubenchError(
                f"{cls.__name__} has no setting {', '.join(unknown)}; "
                f"settings: {', '.join(sorted(known))}"
            )
        settings = settings_cls(**{**defaults, **overrides})
        _skip_full_size_without_gpu(cls.__name__, settings)
        return cls(settings)

    return build


def _skip_full_size_without_gpu(name: str, settings: Any) -> None:
    """A full-size workload is sized for a GPU: on a machine without CUDA it would run for
    hours on the CPU, so it is skipped unless ``device="cpu"`` is asked for explicitly."""
    if settings.size != "full" or settings.device:
        return
    import torch

    if not torch.cuda.is_available():
        pytest.skip(
            f"did not fit: full-size {settings.model} ({name}) is sized for a GPU and this "
            "machine has no CUDA device; its size='tiny' variant runs on CPU "
            "(or pass device='cpu' to run the full size anyway)"
        )


@pytest.fixture
def finetune_workload(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """``finetune_workload(**settings)`` -> ``Finetune``; see ``FinetuneSettings``."""
    _require("training")
    from pytest_gpubench.workloads.finetune import Finetune, FinetuneSettings

    return _builder(Finetune, FinetuneSettings, {"weights": _settings(request.config).weights})


@pytest.fixture
def generate_workload(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """``generate_workload(**settings)`` -> ``Generate``; see ``GenerateSettings``."""
    _require("torch")
    from pytest_gpubench.workloads.generate import Generate, GenerateSettings

    return _builder(Generate, GenerateSettings, {"weights": _settings(request.config).weights})


@pytest.fixture
def detection_workload(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """``detection_workload(**settings)`` -> ``Detection``; see ``DetectionSettings``."""
    _require("training")
    from pytest_gpubench.workloads.detection import Detection, DetectionSettings

    return _builder(Detection, DetectionSettings, {"weights": _settings(request.config).weights})


@pytest.fixture
def diffusion_workload(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """``diffusion_workload(**settings)`` -> ``Diffusion``; see ``DiffusionSettings``.

    ``--gpubench-images N`` sets how many images are measured (default: the seed's 100).
    """
    _require("diffusion")
    from pytest_gpubench.workloads.diffusion import Diffusion, DiffusionSettings

    settings = _settings(request.config)
    defaults: dict[str, Any] = {"weights": settings.weights}
    if settings.images:
        defaults["images"] = settings.images
    return _builder(Diffusion, DiffusionSettings, defaults)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Drop the resident model at the end of the run."""
    from pytest_gpubench.workloads import resident

    resident.release()


def _handle_oom() -> Generator[None, Any, Any]:
    """Run the wrapped phase; an out-of-memory error becomes a skip saying it did not fit."""
    message = None
    try:
        return (yield)
    except BaseException as exc:
        if not memory.is_oom(exc):
            raise
        message = memory.did_not_fit_message(exc)
        exc.__traceback__ = None  # its frames hold the tensors that filled the memory
    from pytest_gpubench.workloads import resident

    resident.release()  # the resident model goes too: the next benchmark starts empty
    pytest.skip(message)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, Any, Any]:
    return (yield from _handle_oom())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    return (yield from _handle_oom())
