"""The end-of-run sections: where numbers were measured, deselected tests, -q and -qq."""

from __future__ import annotations

import pytest

TESTS = """
import pytest

@pytest.mark.llm_inference
@pytest.mark.needs_vram(500)
def test_huge(): pass

@pytest.mark.vlm_inference
@pytest.mark.needs_vram(600)
def test_huge_vlm(): pass

def test_bench(gpubench):
    gpubench(lambda: None, work=1, unit="calls", rounds=2)
"""


def test_deselected_tests_are_not_in_the_did_not_fit_table(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_s=TESTS)
    result = pytester.runpytest("--device=cpu", "-m", "llm_inference")
    result.stdout.fnmatch_lines(["*= gpubench: did not fit on cpu =*", "test_s.py::test_huge *"])
    assert "test_huge_vlm" not in result.stdout.str()


def test_a_named_profile_says_where_the_numbers_were_measured(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_s=TESTS)
    result = pytester.runpytest("--device=spark", "-k", "bench")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*= gpubench results measured on the CPU (no GPU), fit judged as spark =*"]
    )


def test_quiet_shortens_the_sections(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_s=TESTS)
    normal = pytester.runpytest("--device=cpu")
    assert "= gpubench: did not fit on cpu =" in normal.stdout.str()
    assert "pytest-benchmark's table above" in normal.stdout.str()
    quiet = pytester.runpytest("--device=cpu", "-q")
    quiet.stdout.fnmatch_lines(
        ["gpubench: 2 benchmarks did not fit on cpu (run without -q for the table)"]
    )
    assert "pytest-benchmark's table above" not in quiet.stdout.str()
    very = pytester.runpytest("--device=cpu", "-qq")
    very.stdout.fnmatch_lines(["gpubench: 1 benchmark, 2 results on cpu (run without -qq*"])
    assert "= gpubench results" not in very.stdout.str()


def test_an_invalid_result_is_marked_in_its_first_row_and_said_under_the_table() -> None:
    from pytest_gpubench.metrics.core import Metric
    from pytest_gpubench.report.results import results_lines
    from pytest_gpubench.results.record import Recorded

    def entry(nodeid: str, invalid: str = "") -> Recorded:
        metrics = {n: Metric(n, 10.0, "tok/s", True) for n in ("a", "b")}
        return Recorded(nodeid, metrics, ["a", "b"], invalid=invalid)

    lines = results_lines([entry("t.py::ok"), entry("t.py::bad", "the GPU throttled")])
    assert lines[0].split() == [
        "test",
        "metric",
        "value",
        "unit",
        "95%",
        "CI",
        "n",
        "better",
        "valid",
    ]
    rows = [line.split() for line in lines[2:6]]
    assert [r[-1] for r in rows] == ["higher", "higher", "invalid", "higher"]
    assert lines[6:] == ["invalid: t.py::bad: the GPU throttled"]
    # no column while every result is valid
    assert "valid" not in results_lines([entry("t.py::ok")])[0]
