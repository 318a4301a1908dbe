"""The suite without torch or matplotlib: its modules that need them skip, none errors.

The test modules below call ``plumbing.ci.require_module`` at their top level. They are
collected in a pytest subprocess where torch and matplotlib cannot be imported: a ``-p``
plugin puts ``None`` in ``sys.modules`` for them, which makes ``import torch`` raise
ImportError exactly as on a machine without the package (a stand-in for uninstalling them,
which this shared environment cannot do).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
NEEDS_TORCH_OR_MATPLOTLIB = [
    "report/test_charts.py",
    "workloads/test_decode_loop.py",
    "workloads/test_detection_data.py",
    "workloads/test_flops.py",
    "workloads/test_workload_errors.py",
    "workloads/test_workload_flops_energy.py",
    "workloads/test_workloads_run.py",
    "distributed/test_multinode.py",
    "distributed/test_torchrun.py",
]
HIDE = """
import sys

for name in ("torch", "matplotlib"):
    sys.modules[name] = None  # `import torch` now raises ImportError
"""


def collect_without_torch(pytester: pytest.Pytester, monkeypatch, *args: str):
    pytester.makepyfile(hide_torch=HIDE)
    path = os.pathsep.join(filter(None, [str(pytester.path), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", path)
    files = [str(TESTS / name) for name in NEEDS_TORCH_OR_MATPLOTLIB]
    # --noconftest: tests/conftest.py imports datasets, which would find torch hidden midway
    return pytester.runpytest_subprocess(
        "-p", "hide_torch", "--noconftest", "--collect-only", "-rs",
        "-p", "no:cacheprovider", f"--rootdir={TESTS.parent}", *args, *files,
    )  # fmt: skip


def test_modules_needing_torch_or_matplotlib_skip_without_them(
    pytester: pytest.Pytester, monkeypatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("PYTHONPATH", str(TESTS))  # `plumbing`, as tests/conftest.py gives it
    result = collect_without_torch(pytester, monkeypatch)
    out = result.stdout.str()
    assert "error" not in out.lower(), out
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED, out
    result.stdout.fnmatch_lines(
        [
            "collected 0 items / 9 skipped",
            "SKIPPED [[]1[]] *: charts need the report extra (matplotlib: *",
            "SKIPPED [[]5[]] *: the workloads need torch *(torch: *",
            "SKIPPED [[]1[]] *: FLOP counting needs torch *(torch: *",
            "SKIPPED [[]2[]] *: distributed benchmarks need torch *(torch: *",
        ]
    )


def test_under_ci_a_missing_component_fails_instead(pytester: pytest.Pytester, monkeypatch):
    """CI provisions every component: there, the same modules fail, and say why."""
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    result = collect_without_torch(pytester, monkeypatch)
    assert result.ret == pytest.ExitCode.INTERRUPTED, result.stdout.str()
    result.stdout.fnmatch_lines(["*CI=true and FLOP counting needs torch*"])
