"""Shared test helpers. Plugin behaviour is tested through real pytest runs (``pytester``)."""

from __future__ import annotations

import contextlib
import os
import textwrap
from pathlib import Path

import numpy  # noqa: F401
import pytest
import scipy.stats  # noqa: F401

with contextlib.suppress(ImportError):  # without the test extra, the tests needing it skip
    import datasets  # noqa: F401  (pyarrow refuses its extension types twice: ArrowKeyError)

# C extensions imported for the first time inside an in-process pytester run are dropped from
# sys.modules when the run ends, and numpy refuses to load twice in one process (pyarrow, under
# datasets, likewise): import them here, before any inner run, so every run shares them.

FAKE_NVML = Path(__file__).parent / "fakes" / "nvml"


@pytest.fixture
def fake_nvml(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """Put a stand-in ``pynvml`` first on the path of pytester's subprocess runs.

    A stub, because these machines have no GPU: NVML cannot report one here. The stand-in
    answers from ``FAKE_NVML_GPUS`` ("name|memory_mib|cc;...", memory "NA" = Not Supported),
    which is what the real library's calls return on such a machine.
    """

    def use(gpus: str) -> None:
        # prepended, so the inner run still imports this checkout's plugin, not an installed one
        path = os.environ.get("PYTHONPATH")
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(FAKE_NVML), path])))
        monkeypatch.setenv("FAKE_NVML_GPUS", gpus)

    return use


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture(scope="session")
def stub_server():
    """A fast local streaming server (a stub: see pytest_gpubench/testing/stub_server.py)."""
    from pytest_gpubench.testing.stub_server import start_stub_server

    with start_stub_server("--timings") as server:
        yield server


@pytest.fixture
def start_stub():
    """Start stubs with given behaviour flags (e.g. "--fail-every", "3"); all stopped after."""
    import contextlib

    from pytest_gpubench.testing.stub_server import start_stub_server

    with contextlib.ExitStack() as stack:
        yield lambda *args, **kw: stack.enter_context(start_stub_server(*args, **kw))


@pytest.fixture(scope="session")
def example_engine() -> str:
    """The documentation's example engine module (docs/extending/example-engine.md), as a
    conftest.py text: the test suite's stub server standing in for an OpenAI-compatible binary."""
    import re

    page = Path(__file__).resolve().parents[1] / "docs" / "extending" / "example-engine.md"
    found = re.search(
        r"<!-- example engine -->\n```python\n(# conftest\.py\n.*?)```\n", page.read_text(), re.S
    )
    assert found, f"{page} lost its example engine block"
    return found.group(1)
