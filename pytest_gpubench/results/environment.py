"""The environment recorded with a baseline: versions that change results."""

from __future__ import annotations

import importlib.metadata as md
import platform
from collections.abc import Mapping
from typing import Any

from pytest_gpubench import __version__
from pytest_gpubench.engines import registry

# Packages whose versions change in-process results; every registered engine adds its own
# (``Engine.packages``). Recorded with every baseline when installed.
BASE_PACKAGES = (
    "torch",
    "transformers",
    "diffusers",
    "accelerate",
    "trl",
    "pytest-benchmark",
)


def tracked_packages() -> tuple[str, ...]:
    return registry.tracked_packages(BASE_PACKAGES)


def environment(engines: Mapping[str, str]) -> dict[str, Any]:
    """Plugin, Python and package versions, and ``engines``: the version each server engine
    that ran reported (``{"llamacpp": "b6543-..."}``)."""
    packages = {}
    for name in tracked_packages():
        try:
            packages[name] = md.version(name)
        except md.PackageNotFoundError:
            continue
    return {
        "plugin_version": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": packages,
        "engines": dict(engines),
    }
