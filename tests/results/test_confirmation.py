"""A suspected regression is re-measured before it fails the test (real pytest runs)."""

from __future__ import annotations

import json

import pytest

# tok_s comes from a list in the environment, one value per measurement of the test, so a
# run can be slow once and then normal (noise) or slow every time (a real regression).
# SETUPS counts how often the module- and function-scoped fixtures were set up.
TESTS = """
import os
from pathlib import Path

import pytest

@pytest.fixture(scope="module")
def server():
    Path("module-setups").write_text(str(int(Path("module-setups").read_text() or 0) + 1)
                                     if Path("module-setups").exists() else "1")
    return "shared"

@pytest.fixture
def per_test():
    with open("function-setups", "a") as f:
        f.write("x")

def test_speed(gpubench, server, per_test):
    values = os.environ.get("TOK", "100").split(",")
    done = Path("measured")
    n = len(done.read_text()) if done.exists() else 0
    done.write_text("x" * (n + 1))
    gpubench.time(lambda: None, rounds=1, warmup_rounds=0)
    gpubench.metric("tok_s", float(values[min(n, len(values) - 1)]), "tok/s", True,
                    headline=True)
"""


@pytest.fixture
def baseline(pytester: pytest.Pytester, monkeypatch) -> pytest.Pytester:
    monkeypatch.delenv("TOK", raising=False)
    pytester.makepyfile(test_speed=TESTS)
    pytester.runpytest("--device=cpu", "--gpubench-save-baseline").assert_outcomes(passed=1)
    for name in ("measured", "module-setups", "function-setups"):
        (pytester.path / name).unlink(missing_ok=True)
    return pytester


def test_a_slow_measurement_the_rerun_clears_passes(baseline, monkeypatch) -> None:
    monkeypatch.setenv("TOK", "70,100")  # -30% once, then as before
    result = baseline.runpytest("--device=cpu", "--gpubench-baseline", "--benchmark-json=b.json")
    result.assert_outcomes(passed=1)  # one outcome: the first attempt is not reported
    result.stdout.fnmatch_lines(
        [
            "  worse but within noise: test_speed.py::test_speed: tok_s 100 vs baseline 100 "
            "tok/s (+0.0%, tolerance 10%, not confirmed by 1 re-run: -30.0%, then +0.0%)",
        ]
    )
    assert (baseline.path / "measured").read_text() == "xx"
    # the re-run kept the module's fixtures (a started server) and redid the test's own
    assert (baseline.path / "module-setups").read_text() == "1"
    assert (baseline.path / "function-setups").read_text() == "xx"
    # pytest-benchmark holds the re-run's result only
    doc = json.loads((baseline.path / "b.json").read_text())
    assert len(doc["benchmarks"]) == 1
    assert doc["benchmarks"][0]["extra_info"]["metrics"]["tok_s"]["value"] == 100


def test_a_slowdown_every_rerun_confirms_fails(baseline, monkeypatch) -> None:
    monkeypatch.setenv("TOK", "80")
    result = baseline.runpytest("--device=cpu", "--gpubench-baseline", "--gpubench-confirm-runs=2")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*tok_s 80 vs baseline 100 tok/s (-20.0%, tolerance 10%, confirmed by 2 re-runs: "
         "-20.0%, then -20.0%, then -20.0%)"]
    )  # fmt: skip
    assert (baseline.path / "measured").read_text() == "xxx"


def test_without_reruns_a_suspect_fails_at_once(baseline, monkeypatch) -> None:
    monkeypatch.setenv("TOK", "70,100")
    result = baseline.runpytest("--device=cpu", "--gpubench-baseline", "--gpubench-confirm-runs=0")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*tok_s 70 vs baseline 100 tok/s (-30.0%, *not re-measured)"])
    assert (baseline.path / "measured").read_text() == "x"


def test_within_tolerance_nothing_is_rerun(baseline, monkeypatch) -> None:
    monkeypatch.setenv("TOK", "95")
    baseline.runpytest("--device=cpu", "--gpubench-baseline").assert_outcomes(passed=1)
    assert (baseline.path / "measured").read_text() == "x"


def test_a_bad_confirm_runs_value_is_one_line(baseline) -> None:
    result = baseline.runpytest("--device=cpu", "--gpubench-confirm-runs=many")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--gpubench-confirm-runs: confirmation re-runs must be a whole*"])


HARNESS = """
import os

def test_mem(gpubench):
    gpubench.time(lambda: None, rounds=1, warmup_rounds=0)
    gpubench.metric("host_mem_peak_gib", float(os.environ.get("MEM", "1.0")), "GiB", False)
    gpubench.metric("tok_s", 100.0, "tok/s", True)
"""


def test_the_pytest_process_memory_is_not_gated_unless_asked(pytester, monkeypatch) -> None:
    pytester.makepyfile(test_mem=HARNESS)
    monkeypatch.delenv("MEM", raising=False)
    pytester.runpytest("--device=cpu", "--gpubench-save-baseline").assert_outcomes(passed=1)
    monkeypatch.setenv("MEM", "1.8")  # +80%, as measured between two unchanged runs here
    pytester.runpytest("--device=cpu", "--gpubench-baseline").assert_outcomes(passed=1)
    pytester.makeconftest(
        """
        import pytest

        def pytest_collection_modifyitems(items):
            for item in items:
                item.add_marker(pytest.mark.gpubench_tolerance(host_mem_peak_gib=0.5))
        """
    )
    pytester.runpytest("--device=cpu", "--gpubench-baseline").assert_outcomes(failed=1)


BUSY = """
import os

def test_busy(gpubench):
    gpubench.time(lambda: None, rounds=1, warmup_rounds=0)
    # stands in for what HostLoad measured (tests/bench/test_hostload.py measures it for real)
    gpubench.metric("host_busy_cores", float(os.environ.get("BUSY", "0")), "cores", False)
    gpubench.metric("tok_s", float(os.environ.get("TOK", "100")), "tok/s", True)
"""


def test_a_slowdown_on_a_busy_host_is_inconclusive(pytester, monkeypatch) -> None:
    pytester.makepyfile(test_busy=BUSY)
    monkeypatch.setenv("BUSY", "0.1")
    monkeypatch.delenv("TOK", raising=False)
    pytester.runpytest("--device=cpu", "--gpubench-save-baseline").assert_outcomes(passed=1)
    monkeypatch.setenv("TOK", "60")
    monkeypatch.setenv("BUSY", "1.5")
    result = pytester.runpytest("--device=cpu", "--gpubench-baseline")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["  inconclusive: test_busy.py::test_busy: tok_s 60 vs baseline 100 tok/s (-40.0%, "
         "tolerance 10%, confirmed by 1 re-run: -40.0%, then -40.0%; host busy: other processes "
         "used 1.5 cores during the run (0.1 at baseline); re-run on a quiet machine)"]
    )  # fmt: skip
    monkeypatch.setenv("BUSY", "0.2")  # quiet again: the same slowdown fails
    pytester.runpytest("--device=cpu", "--gpubench-baseline").assert_outcomes(failed=1)
