"""Every GPU result carries a bound verdict, recorded and shown (bench/gpubench.py)."""

from __future__ import annotations

import json

import pytest

from pytest_gpubench.bench.telemetry import Sample, Telemetry

TEST_TIMER = "--benchmark-timer=pytest_gpubench.testing.fake_clock.now"

# Rounds on the test clock: each takes exactly `seconds` of it and no CPU time, so the
# thread is idle while the (stand-in) GPU is or is not busy, whatever the machine does.
WORK = """
from pytest_gpubench.testing import fake_clock

def test_work(gpubench, monkeypatch):
    fake_clock.install(monkeypatch)
    gpubench(fake_clock.advance, {seconds}, work=10, unit="samples", rounds=2, warmup_rounds=0)
    {extra}
"""


@pytest.fixture
def bench_run(pytester, fake_nvml, monkeypatch):
    def go(util: int, seconds: float, extra: str = "pass"):
        fake_nvml("NVIDIA H100 80GB HBM3|81559|9.0")
        monkeypatch.setenv("FAKE_NVML_UTIL", str(util))
        pytester.makepyfile(WORK.format(seconds=seconds, extra=extra))
        result = pytester.runpytest_subprocess("--benchmark-json=out.json", TEST_TIMER)
        result.assert_outcomes(passed=1)
        bench = json.loads((pytester.path / "out.json").read_text())["benchmarks"][0]
        return result, bench["extra_info"]

    return go


def test_a_busy_gpu_result_is_gpu_bound_with_no_warning(bench_run) -> None:
    result, extra = bench_run(util=87, seconds=0.6)
    assert extra["bound"]["bound"] == "gpu"
    assert "host_thread_busy_pct" in extra["metrics"]
    result.stdout.fnmatch_lines(["*test * metric * bound*", "*::test_work *samples_per_s* gpu"])
    result.stdout.no_fnmatch_line("*BoundWarning*")


def test_a_starved_gpu_is_flagged_in_results_table_and_warnings(bench_run) -> None:
    """20% busy while the thread that ran the work used no CPU (the test clock moves, the
    thread sleeps): it waited on something else, so the verdict is host."""
    result, extra = bench_run(util=20, seconds=0.6)
    assert extra["bound"]["bound"] == "host"
    assert extra["metrics"]["host_thread_busy_pct"]["value"] < 50
    result.stdout.fnmatch_lines(
        [
            "*BoundWarning: test_*.py::test_work: host-bound*",
            "bound: test_*.py::test_work: host-bound: GPU busy 20% (< 60%)*",
        ]
    )


def test_waiting_for_batches_makes_it_data_bound(bench_run) -> None:
    _, extra = bench_run(util=20, seconds=0.6, extra="gpubench.data_wait_s = 0.6")
    assert extra["bound"]["bound"] == "data"
    assert extra["metrics"]["data_wait_pct"]["value"] == pytest.approx(50.0)


def test_short_timed_work_is_unknown(bench_run) -> None:
    _, extra = bench_run(util=87, seconds=0.2)
    assert extra["bound"]["bound"] == "unknown"


def test_a_cpu_run_carries_no_verdict(pytester) -> None:
    pytester.makepyfile(WORK.format(seconds=0.6, extra="pass"))
    result = pytester.runpytest_subprocess("--benchmark-json=out.json", TEST_TIMER, "--device=cpu")
    result.assert_outcomes(passed=1)
    extra = json.loads((pytester.path / "out.json").read_text())["benchmarks"][0]["extra_info"]
    assert "bound" not in extra
    result.stdout.no_fnmatch_line("* bound*")


def test_energy_and_utilisation_cover_the_timed_rounds_only() -> None:
    """Two 1 s rounds with 5 s of set-up between them at 100 W; the counter counts the gap too,
    and the window over both rounds must not: 200 J, not 700 J."""
    samples = [
        Sample(t=float(t), power_w=100.0, energy_j=100.0 * t, util_pct=util)
        for t, util in [(0, 90), (0.5, 90), (1, 90), (3, 0), (6, 90), (6.5, 90), (7, 90)]
    ]
    tel = Telemetry(gpu=True, samples=samples)
    out = tel.windows([(0.0, 1.0), (6.0, 7.0)])
    assert out["energy_j"] == pytest.approx(200.0)
    assert out["duration_s"] == pytest.approx(2.0)
    assert out["gpu_util_pct"] == pytest.approx(90.0)  # the idle sample at t=3 is outside
    assert tel.window(0.0, 7.0)["energy_j"] == pytest.approx(700.0)


DECODE = """
import pytest
from pytest_gpubench.testing import fake_clock

@pytest.mark.model("meta-llama/Llama-3.1-8B-Instruct", quant="bf16")
def test_decode(gpubench, monkeypatch):
    fake_clock.install(monkeypatch)
    gpubench(fake_clock.advance, 0.6, work=10, unit="tokens", rounds=2, warmup_rounds=0)
    gpubench.roofline_decode({tok_s}, context=512)
"""


@pytest.mark.parametrize(("tok_s", "expected"), [(50.0, "kernel"), (120.0, "gpu")])
def test_a_busy_gpu_far_from_its_decode_bound_is_not_gpu_bound(
    pytester, fake_nvml, monkeypatch, tok_s: float, expected: str
) -> None:
    """87% busy (stand-in NVML) on an H100 whose bound for 8B bf16 at context 512 is ~220
    tok/s: 50 tok/s is under half of it, 120 tok/s over half."""
    fake_nvml("NVIDIA H100 80GB HBM3|81559|9.0")
    monkeypatch.setenv("FAKE_NVML_UTIL", "87")
    pytester.makepyfile(DECODE.format(tok_s=tok_s))
    result = pytester.runpytest_subprocess("--benchmark-json=out.json", TEST_TIMER)
    result.assert_outcomes(passed=1)
    extra = json.loads((pytester.path / "out.json").read_text())["benchmarks"][0]["extra_info"]
    pct = extra["metrics"]["roofline_pct"]["value"]
    assert (pct < 50) == (expected == "kernel")
    bound = extra["bound"]
    assert bound["bound"] == expected
    assert f"decode at {pct:.3g}% of the bandwidth bound (batch 1, context 512)" in bound["reason"]
    if expected == "kernel":
        result.stdout.fnmatch_lines(["*BoundWarning: test_*.py::test_decode: kernel-bound*"])
    else:
        result.stdout.no_fnmatch_line("*BoundWarning*")
