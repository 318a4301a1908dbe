"""How the suite treats a test whose real component (an engine, Docker, chromium, torch, an
extra) is missing: outside CI it skips with the reason; under ``CI=true`` it fails, because
CI provisions every such component (.ci/run installs the test extra, .ci/provision the
engines, Docker and chromium) and a green CI must mean they really ran.

Tests CI deliberately does not run say so with ``not_in_ci(reason, runs_when=...,
how_to_run=...)``: they are marked ``not_in_ci`` (``pytest -m not_in_ci --collect-only``
lists them) and skip, in CI too, with "not covered in CI: <reason>; <how to run it>".
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import ModuleType
from typing import TypeVar

import pytest

F = TypeVar("F", bound=Callable[..., object])
CI = os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str) -> None:
    """Skip for ``reason``; under CI=true fail instead."""
    if CI:
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    # at a test module's top level too (require_module), where a plain skip is a collection
    # error: without torch the suite must report skips
    pytest.skip(reason, allow_module_level=True)


def require_module(name: str, reason: str) -> ModuleType:
    """``pytest.importorskip`` that fails under CI=true (works at module level too)."""
    try:
        return __import__(name, fromlist=["_"])
    except ImportError as exc:
        unavailable(f"{reason} ({name}: {exc})")
        raise  # unreachable: unavailable() always raises


def not_in_ci(reason: str, *, runs_when: bool, how_to_run: str) -> Callable[[F], F]:
    """Mark a test CI does not cover: marked ``not_in_ci``, and skipped unless ``runs_when``
    (CI sets nothing that makes it true), saying why and how to run it."""
    skip = pytest.mark.skipif(not runs_when, reason=f"not covered in CI: {reason}; {how_to_run}")
    marker = pytest.mark.not_in_ci(reason=reason)

    def mark(test: F) -> F:
        return marker(skip(test))

    return mark
