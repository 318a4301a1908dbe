"""Baselines: save, merge, regression verdicts per test, pytest-benchmark compatibility."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.results import atomic, baseline

# Two benchmarks whose headline metric comes from the environment, so a run can plant an
# exact regression; gpubench.time gives pytest-benchmark a real (tiny) timed round.
METRIC_TESTS = """
import os

def _bench(gpubench, env, default):
    gpubench.time(lambda: None, rounds=1, warmup_rounds=0)
    gpubench.metric("tok_s", float(os.environ.get(env, default)), "tok/s", True, headline=True)
    gpubench.metric("ttft_ms", 50.0, "ms", False)

def test_a(gpubench):
    _bench(gpubench, "TOK_A", "100")

def test_b(gpubench):
    _bench(gpubench, "TOK_B", "100")
"""


def saved(pytester: pytest.Pytester, name: str = "cpu") -> dict:
    return json.loads((pytester.path / "baselines" / f"{name}.json").read_text())


@pytest.fixture
def with_baseline(pytester: pytest.Pytester, monkeypatch) -> pytest.Pytester:
    monkeypatch.delenv("TOK_A", raising=False)
    monkeypatch.delenv("TOK_B", raising=False)
    pytester.makepyfile(test_metrics=METRIC_TESTS)
    result = pytester.runpytest("--device=cpu", "--gpubench-save-baseline")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["gpubench baseline saved: *baselines/cpu.json"])
    return pytester


def test_saved_baseline_has_schema_device_environment_metrics(with_baseline) -> None:
    doc = saved(with_baseline)
    assert doc["gpubench"]["schema"] == 1 and doc["gpubench"]["kind"] == "measured"
    assert doc["gpubench"]["device"]["profile"] == "cpu"
    assert doc["gpubench"]["device"]["gpu"] == "none (CPU)"
    env = doc["gpubench"]["environment"]
    assert env["plugin_version"] and env["python"] and "pytest-benchmark" in env["packages"]
    bench = {b["fullname"]: b for b in doc["benchmarks"]}["test_metrics.py::test_a"]
    assert bench["extra_info"]["gpubench"]["key"] == "test_metrics.py::test_a"
    assert bench["extra_info"]["gpubench"]["date"].startswith("20")
    assert bench["extra_info"]["metrics"]["tok_s"]["value"] == 100.0
    assert bench["stats"]["rounds"] == 1  # pytest-benchmark's own statistics stay
    loaded = baseline.load(with_baseline.path / "baselines" / "cpu.json")
    assert loaded.entries["test_metrics.py::test_b"].metrics["ttft_ms"].unit == "ms"


def test_save_merges_with_entries_already_there(with_baseline, monkeypatch) -> None:
    monkeypatch.setenv("TOK_A", "120")
    with_baseline.runpytest(
        "--device=cpu", "--gpubench-save-baseline", "-k", "test_a"
    ).assert_outcomes(passed=1, deselected=1)
    entries = baseline.load(with_baseline.path / "baselines" / "cpu.json").entries
    assert entries["test_metrics.py::test_a"].metrics["tok_s"].value == 120.0
    assert entries["test_metrics.py::test_b"].metrics["tok_s"].value == 100.0
    assert len(saved(with_baseline)["benchmarks"]) == 2


def test_planted_20_percent_regression_fails_that_test_only(with_baseline, monkeypatch) -> None:
    monkeypatch.setenv("TOK_A", "80")  # -20%: beyond the 10% default, and still so on re-run
    monkeypatch.setenv("TOK_B", "92")  # -8%: within it
    result = with_baseline.runpytest("--device=cpu", "--gpubench-baseline")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*performance regression against *baselines/cpu.json:",
            "*tok_s 80 vs baseline 100 tok/s (-20.0%, tolerance 10%, confirmed by 1 re-run: "
            "-20.0%, then -20.0%)",
            "FAILED test_metrics.py::test_a*",
        ]
    )
    assert "FAILED test_metrics.py::test_b" not in result.stdout.str()


def test_latency_rise_is_a_regression_and_drop_an_improvement(pytester, monkeypatch) -> None:
    pytester.makepyfile(
        test_lat="""
        import os

        def test_lat(gpubench):
            gpubench.time(lambda: None, rounds=1, warmup_rounds=0)
            gpubench.metric("ttft_ms", float(os.environ.get("TTFT", "50")), "ms", False)
        """
    )
    monkeypatch.delenv("TTFT", raising=False)
    pytester.runpytest("--device=cpu", "--gpubench-save-baseline").assert_outcomes(passed=1)
    monkeypatch.setenv("TTFT", "60")
    worse = pytester.runpytest("--device=cpu", "--gpubench-baseline")
    worse.assert_outcomes(failed=1)
    worse.stdout.fnmatch_lines(["*ttft_ms 60 vs baseline 50 ms (+20.0%, tolerance 10%, confirmed*"])
    monkeypatch.setenv("TTFT", "40")
    better = pytester.runpytest("--device=cpu", "--gpubench-baseline")
    better.assert_outcomes(passed=1)
    better.stdout.fnmatch_lines(
        [
            "gpubench baseline *cpu.json: 1 compared, 0 regressed, 1 metric(s) improved, "
            "0 without a baseline entry",
            "  improved: test_lat.py::test_lat: ttft_ms 40 vs baseline 50 ms (-20.0%*",
        ]
    )


def test_tolerance_marker_and_ini(with_baseline, monkeypatch) -> None:
    monkeypatch.setenv("TOK_A", "85")  # -15%: within its marker's 15%, beyond the 10% default
    monkeypatch.setenv("TOK_B", "85")
    with_baseline.makeconftest(
        """
        import pytest

        def pytest_collection_modifyitems(items):
            for item in items:
                if item.name == "test_a":
                    item.add_marker(pytest.mark.gpubench_tolerance(tok_s=0.15))
        """
    )
    result = with_baseline.runpytest("--device=cpu", "--gpubench-baseline")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["FAILED test_metrics.py::test_b*"])
    with_baseline.makeini("[pytest]\ngpubench_tolerance = 0.2\n")
    with_baseline.runpytest("--device=cpu", "--gpubench-baseline").assert_outcomes(passed=2)


def test_a_change_the_spreads_explain_is_noise_not_regression(pytester, monkeypatch) -> None:
    pytester.makepyfile(
        test_noisy="""
        import os

        def test_noisy(gpubench):
            gpubench.time(lambda: None, rounds=1, warmup_rounds=0)
            v = float(os.environ.get("V", "100"))
            gpubench.metric("tok_s", v, "tok/s", True,
                            spread={"ci95_low": v - 15, "ci95_high": v + 15})
        """
    )
    monkeypatch.delenv("V", raising=False)
    pytester.runpytest("--device=cpu", "--gpubench-save-baseline").assert_outcomes(passed=1)
    # -15%, but +-15 at 95% on both sides explains up to 2 standard errors = 24%
    monkeypatch.setenv("V", "85")
    result = pytester.runpytest("--device=cpu", "--gpubench-baseline")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["  worse but within noise: *tok_s 85 vs baseline 100*the runs' spreads explain 24%)"]
    )
    monkeypatch.setenv("V", "60")  # -40%: beyond the 30% the spreads explain
    pytester.runpytest("--device=cpu", "--gpubench-baseline").assert_outcomes(failed=1)


def test_missing_entries_are_reported_not_fatal(with_baseline) -> None:
    with_baseline.makepyfile(
        test_new="""
        def test_new(gpubench):
            gpubench.time(lambda: None, rounds=1, warmup_rounds=0)
            gpubench.metric("tok_s", 1.0, "tok/s", True)
        """
    )
    result = with_baseline.runpytest("--device=cpu", "--gpubench-baseline")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["  no baseline entry: test_new.py::test_new"])


def test_pytest_benchmark_compare_works_on_the_baseline_as_is(pytester) -> None:
    pytester.makepyfile(
        test_sleep="""
        import os
        from pytest_gpubench.testing import fake_clock

        def test_sleep(gpubench, monkeypatch):
            fake_clock.install(monkeypatch)  # a nap is exactly DELAY s on the test clock
            delay = float(os.environ.get("DELAY", "0.01"))
            gpubench(fake_clock.advance, delay, work=1, unit="naps", rounds=3, warmup_rounds=0)
        """
    )
    timer = "--benchmark-timer=pytest_gpubench.testing.fake_clock.now"
    os.environ.pop("DELAY", None)
    pytester.runpytest("--device=cpu", "--gpubench-save-baseline", timer).assert_outcomes(passed=1)
    path = str(pytester.path / "baselines" / "cpu.json")
    same = pytester.runpytest(
        "--device=cpu", f"--benchmark-compare={path}", "--benchmark-compare-fail=mean:400%", timer
    )
    assert same.ret == 0
    assert "Comparing against benchmarks from: " in same.stderr.str()
    assert "(NOW)" in same.stdout.str()
    os.environ["DELAY"] = "0.1"
    try:
        slower = pytester.runpytest(
            "--device=cpu",
            f"--benchmark-compare={path}",
            "--benchmark-compare-fail=mean:400%",
            timer,
        )
    finally:
        os.environ.pop("DELAY", None)
    assert slower.ret != 0
    assert "Performance has regressed" in slower.stdout.str() + slower.stderr.str()


def test_autosave_is_stored_per_gpu(pytester) -> None:
    pytester.makepyfile(
        """
        def test_x(gpubench):
            gpubench(lambda: None, work=1, unit="calls", rounds=1)
        """
    )
    pytester.runpytest("--device=cpu", "--benchmark-autosave").assert_outcomes(passed=1)
    # one folder level, as pytest-benchmark lays it out: <os>-<python>-<bits>-<hardware>
    saved_files = list((pytester.path / ".benchmarks").glob("*/*.json"))
    assert len(saved_files) == 1
    assert saved_files[0].parent.name.endswith("bit-cpu")


def test_pytest_benchmarks_own_cli_finds_autosaved_runs(pytester) -> None:
    """`pytest-benchmark list` and `compare` with no flags show both runs; the second run's
    comparison with the first raises no machine_info warning (stable facts only)."""
    pytester.makepyfile(
        """
        def test_x(gpubench):
            gpubench(lambda: None, work=1, unit="calls", rounds=2)
        """
    )
    pytester.runpytest_subprocess("--benchmark-autosave").assert_outcomes(passed=1)
    second = pytester.runpytest_subprocess(
        "--device=auto", "--benchmark-autosave", "--benchmark-compare"
    )
    second.assert_outcomes(passed=1)
    assert "machine_info is different" not in second.stdout.str() + second.stderr.str()
    listed = pytester.run("pytest-benchmark", "list")
    names = [line for line in listed.outlines if line.endswith(".json")]
    assert len(names) == 2 and "0001_" in names[0] and "0002_" in names[1], listed.outlines
    compared = pytester.run("pytest-benchmark", "compare")
    text = compared.stdout.str()
    assert compared.ret == 0 and "test_x (0001" in text and "test_x (0002" in text, text


class TestRefusals:
    def test_baseline_from_another_gpu_is_not_overwritten_unless_forced(self, with_baseline):
        path = with_baseline.path / "baselines" / "cpu.json"
        doc = json.loads(path.read_text())
        doc["gpubench"]["device"]["gpu"] = "NVIDIA H100 80GB HBM3"
        path.write_text(json.dumps(doc))
        refused = with_baseline.runpytest("--device=cpu", "--gpubench-save-baseline")
        assert refused.ret == pytest.ExitCode.USAGE_ERROR
        refused.stderr.fnmatch_lines(
            [
                "ERROR: refusing to overwrite *cpu.json: it was measured on NVIDIA H100 80GB HBM3,"
                " this run is on none (CPU); *--gpubench-force-baseline"
            ]
        )
        assert json.loads(path.read_text()) == doc  # untouched
        forced = with_baseline.runpytest(
            "--device=cpu", "--gpubench-save-baseline", "--gpubench-force-baseline"
        )
        forced.assert_outcomes(passed=2)
        assert saved(with_baseline)["gpubench"]["device"]["gpu"] == "none (CPU)"

    @pytest.mark.parametrize(
        ("mutate", "message"),
        [
            (lambda d: "{not json", "*cpu.json: line 1: not valid JSON*"),
            (
                lambda d: json.dumps({**d, "gpubench": {**d["gpubench"], "schema": 99}}),
                "*cpu.json: gpubench.schema: schema version 99 is not supported*",
            ),
            (
                lambda d: json.dumps(
                    {
                        **d,
                        "benchmarks": [
                            {
                                "fullname": "t",
                                "extra_info": {
                                    "metrics": {"x": {"value": 1, "higher_is_better": True}}
                                },
                            }
                        ],
                    }
                ),
                "*cpu.json: benchmarks[[]0[]].extra_info.metrics.x: metric 'x' has no 'unit'",
            ),
            (lambda d: json.dumps({"hello": 1}), "*cpu.json: top level: not a pytest-benchmark*"),
        ],
    )
    def test_malformed_baseline_names_file_and_field(self, with_baseline, mutate, message):
        path = with_baseline.path / "baselines" / "cpu.json"
        path.write_text(mutate(json.loads(path.read_text())))
        result = with_baseline.runpytest("--device=cpu", "--gpubench-baseline")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([f"ERROR: {message}"])

    def test_missing_baseline_says_how_to_make_one(self, pytester) -> None:
        result = pytester.runpytest("--device=spark", "--gpubench-baseline")
        result.stderr.fnmatch_lines(
            ["ERROR: baseline *baselines/spark.json does not exist; record one with*"]
        )

    def test_optional_value_flag_swallowing_a_folder_is_caught(self, pytester) -> None:
        pytester.mkdir("tests")
        result = pytester.runpytest("--gpubench-baseline", "tests")
        result.stderr.fnmatch_lines(
            ["ERROR: --gpubench-baseline took 'tests' (a folder) as its value; write*"]
        )


class TestAtomicWrite:
    """A crash while writing leaves the old file whole and no temporary file behind.

    The crash is simulated by raising inside the write (at fsync, and at the final rename),
    the two points where a real interruption would land.
    """

    @pytest.mark.parametrize("where", ["fsync", "replace"])
    def test_crash_keeps_old_file(self, tmp_path: Path, monkeypatch, where: str) -> None:
        target = tmp_path / "h100.json"
        target.write_text('{"old": true}\n')

        def crash(*args, **kwargs):
            raise KeyboardInterrupt("simulated crash")

        monkeypatch.setattr(atomic.os, where, crash)
        with pytest.raises(KeyboardInterrupt):
            baseline.write_atomic(target, {"new": list(range(100_000))})
        assert target.read_text() == '{"old": true}\n'
        assert [p.name for p in tmp_path.iterdir()] == ["h100.json"]

    def test_successful_write_replaces(self, tmp_path: Path) -> None:
        target = tmp_path / "sub" / "h100.json"
        baseline.write_atomic(target, {"new": 1})
        assert json.loads(target.read_text()) == {"new": 1}


def test_published_reference_is_not_a_regression_baseline(tmp_path: Path, pytester) -> None:
    ref = pytester.path / "ref.json"
    ref.write_text(
        json.dumps(
            {
                "benchmarks": [],
                "gpubench": {"schema": 1, "kind": "published", "device": {"profile": "spark"}},
            }
        )
    )
    result = pytester.runpytest(f"--gpubench-baseline={ref}")
    result.stderr.fnmatch_lines(["ERROR: *ref.json holds published reference figures*"])


def test_load_rejects_unknown_kind(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text(
        json.dumps({"benchmarks": [], "gpubench": {"schema": 1, "kind": "guess", "device": {}}})
    )
    with pytest.raises(GpubenchError, match=r"x.json: gpubench.kind: must be one of"):
        baseline.load(path)
