"""An in-process GPU result's validity verdict (bench/validity.py): the GPU's throttle reasons
over the timed rounds, through the stand-in NVML (tests/fakes/nvml: no GPU here), whose every
sample reads the clock event reasons ``FAKE_NVML_CLOCK_REASONS`` sets (0x20: NVML's
software thermal slowdown bit, nvmlClocksEventReasonSwThermalSlowdown)."""

from __future__ import annotations

import json

import pytest

TEST_TIMER = "--benchmark-timer=pytest_gpubench.testing.fake_clock.now"

WORK = """
from pytest_gpubench.testing import fake_clock

def test_work(gpubench, monkeypatch):
    fake_clock.install(monkeypatch)
    gpubench(fake_clock.advance, 0.6, work=10, unit="samples", rounds=2, warmup_rounds=0)
"""


def run(pytester, fake_nvml, monkeypatch, reasons: str, *args: str):
    fake_nvml("NVIDIA H100 80GB HBM3|81559|9.0")
    monkeypatch.setenv("FAKE_NVML_CLOCK_REASONS", reasons)
    pytester.makepyfile(WORK)
    result = pytester.runpytest_subprocess("--benchmark-json=out.json", TEST_TIMER, *args)
    return result, pytester.path / "out.json"


def test_an_unthrottled_gpu_result_is_valid(pytester, fake_nvml, monkeypatch) -> None:
    result, out = run(pytester, fake_nvml, monkeypatch, "0")
    result.assert_outcomes(passed=1)
    extra = json.loads(out.read_text())["benchmarks"][0]["extra_info"]
    assert extra["validity"] == {"valid": True, "reasons": []}
    result.stdout.no_fnmatch_line("invalid: *")


def test_a_throttled_gpu_result_is_invalid_and_shown(pytester, fake_nvml, monkeypatch) -> None:
    result, out = run(pytester, fake_nvml, monkeypatch, "0x20")
    result.assert_outcomes(passed=1)
    extra = json.loads(out.read_text())["benchmarks"][0]["extra_info"]
    assert extra["validity"]["valid"] is False
    assert extra["validity"]["reasons"] == [
        "the GPU throttled (thermal (software) 100% of the samples)"
    ]
    result.stdout.fnmatch_lines(["invalid: test_*.py::test_work: the GPU throttled*"])


@pytest.mark.parametrize("reasons, outcome", [("0x20", "failed"), ("0", "passed")])
def test_fail_invalid_fails_only_an_invalid_result(
    pytester, fake_nvml, monkeypatch, reasons: str, outcome: str
) -> None:
    result, _ = run(pytester, fake_nvml, monkeypatch, reasons, "--gpubench-fail-invalid")
    result.assert_outcomes(**{outcome: 1})
    if outcome == "failed":
        result.stdout.fnmatch_lines(["*the result is invalid: the GPU throttled*"])
        result.stdout.no_fnmatch_line("*Traceback*")
