"""The generic ``gpubench`` fixture records through pytest-benchmark, with units and direction."""

from __future__ import annotations

import json

import pytest

# Each round takes exactly 0.02 s of the test clock (pytest_gpubench/testing/fake_clock.py,
# also pytest-benchmark's timer here): the numbers do not depend on the machine's load.
WORKLOAD = """
from pytest_gpubench.testing import fake_clock

def test_workload(gpubench, monkeypatch):
    fake_clock.install(monkeypatch)
    gpubench(fake_clock.advance, 0.02, work=64, unit="samples", rounds=4, warmup_rounds=1)
    gpubench.metric("peak_memory_gib", 1.5, "GiB", higher_is_better=False)
"""
TEST_TIMER = "--benchmark-timer=pytest_gpubench.testing.fake_clock.now"


def test_throughput_and_wall_time_land_in_benchmark_json(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(WORKLOAD)
    result = pytester.runpytest("--benchmark-json=out.json", "--device=cpu", TEST_TIMER)
    result.assert_outcomes(passed=1)
    data = json.loads((pytester.path / "out.json").read_text())
    bench = data["benchmarks"][0]
    assert bench["stats"]["rounds"] == 4
    metrics = bench["extra_info"]["metrics"]
    rate = metrics["samples_per_s"]
    assert rate["unit"] == "samples/s" and rate["higher_is_better"] is True
    assert rate["direction"] == "higher"
    # 64 samples in 0.02 s per round
    assert rate["value"] == pytest.approx(3200, rel=1e-9)
    assert rate["value"] == pytest.approx(64 / bench["stats"]["mean"])
    assert rate["spread"]["rounds"] == 4
    assert rate["spread"]["ci95_low"] <= rate["value"] <= rate["spread"]["ci95_high"]
    wall = metrics["wall_time_s"]
    assert wall["unit"] == "s" and wall["higher_is_better"] is False
    assert wall["value"] == pytest.approx(bench["stats"]["mean"])
    assert metrics["peak_memory_gib"] == {
        "value": 1.5,
        "unit": "GiB",
        "higher_is_better": False,
        "direction": "lower",
        "spread": {},
    }
    gpu = data["machine_info"]["gpu"]
    assert gpu["profile"] == "cpu" and gpu["count"] == 0


def test_results_table_is_printed_at_the_end(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(WORKLOAD)
    result = pytester.runpytest("--device=cpu", TEST_TIMER)
    result.stdout.fnmatch_lines(
        [
            "*= gpubench results on cpu =*",
            "test * metric * value * unit * 95% CI * n * better",
            "*::test_workload * samples_per_s * samples/s * .. * 4 * higher",
            "*::test_workload * wall_time_s * s * .. * 4 * lower",
        ]
    )


def test_warmup_rounds_run_but_are_not_timed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        calls = []

        def test_counts(gpubench):
            gpubench(lambda: calls.append(1), work=1, unit="items", rounds=3, warmup_rounds=2)
            assert len(calls) == 5
            assert gpubench.benchmark.stats.stats.rounds == 3
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            "gpubench(lambda: None, work=0, unit='samples')",
            "gpubench(work=...) must be a positive*",
        ),
        ("gpubench(lambda: None, work=1, unit='tok/s')", "gpubench(unit=...) must be a word*"),
        ("gpubench.metric('x', 1.0, '', True)", "metric 'x' has no unit*"),
        ("gpubench.metric('x', float('nan'), 's', False)", "metric 'x' value is not finite*"),
    ],
)
def test_misuse_is_one_clear_error(pytester: pytest.Pytester, call: str, message: str) -> None:
    pytester.makepyfile(
        f"""
        def test_misuse(gpubench):
            {call}
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    if call.startswith("gpubench("):  # the fixture's call: one line, no traceback into it
        result.stdout.fnmatch_lines([message])
        assert "GpubenchError" not in result.stdout.str()
        assert "gpubench.py:" not in result.stdout.str()
    else:
        result.stdout.fnmatch_lines([f"E *.GpubenchError: {message}"])


def test_a_second_timed_call_in_one_test_is_one_clear_error(pytester: pytest.Pytester) -> None:
    """pytest-benchmark times one call per test; its own error says only FixtureAlreadyUsed."""
    pytester.makepyfile(
        """
        def test_twice(gpubench):
            gpubench(lambda: None, work=1, unit="things", rounds=1, warmup_rounds=0)
            gpubench(lambda: None, work=1, unit="things", rounds=1, warmup_rounds=0)
        """
    )
    result = pytester.runpytest("--device=cpu")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    result.stdout.fnmatch_lines(
        ["gpubench: test_twice already made its timed call: pytest-benchmark keeps one entry*"]
    )
    assert "FixtureAlreadyUsed" not in out and "Traceback" not in out


def test_benchmark_disable_runs_once_and_records_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        calls = []

        def test_disabled(gpubench):
            gpubench(lambda: calls.append(1), work=1, unit="items", rounds=3)
            assert len(calls) == 1
            assert gpubench.metrics == {}
        """
    )
    pytester.runpytest("--benchmark-disable").assert_outcomes(passed=1)
