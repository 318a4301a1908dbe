"""pytest-xdist: ``pytest -n 2`` gives what a serial run gives, saved and printed once.

Real pytest runs through ``pytester`` with two real xdist workers (subprocesses); the only
stand-in is NVML (tests/fakes/nvml), for the GPUs these machines do not have.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytest.importorskip("xdist")

# four benchmarks with fixed headline numbers (TOK_<i> plants a change), one that never fits
TESTS = """
import os
import pytest

@pytest.mark.parametrize("i", range(4))
def test_a(gpubench, i):
    gpubench.time(lambda: None, rounds=1, warmup_rounds=0)
    value = float(os.environ.get(f"TOK_{i}", 100 + i))
    gpubench.metric("tok_s", value, "tok/s", True, headline=True)
    gpubench.metric("ttft_ms", 50.0, "ms", False)

@pytest.mark.needs_vram(1000)
def test_huge(gpubench):
    pass
"""


def section(out: str, title: str) -> list[str]:
    """The table rows (one per test) of the section whose separator line contains ``title``."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if title in line and line.startswith("="))
    rest = lines[start + 1 :]
    end = next((i for i, line in enumerate(rest) if line.startswith("=")), len(rest))
    return [line for line in rest[:end] if "::" in line]


def saved(pytester: pytest.Pytester) -> dict:
    return json.loads((pytester.path / "baselines" / "cpu.json").read_text())


def test_results_and_did_not_fit_tables_match_a_serial_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_m=TESTS)
    serial = pytester.runpytest("--device=cpu", "-p", "no:cacheprovider")
    serial.assert_outcomes(passed=4, skipped=1)
    parallel = pytester.runpytest("--device=cpu", "-p", "no:cacheprovider", "-n", "2")
    parallel.assert_outcomes(passed=4, skipped=1)
    one, two = serial.stdout.str(), parallel.stdout.str()
    assert two.count("gpubench results on cpu") == 1
    assert section(two, "gpubench results") == section(one, "gpubench results")
    assert len(section(two, "gpubench results")) == 4, two
    assert section(two, "did not fit") == section(one, "did not fit")
    assert "2 pytest-xdist workers share cpu" in two


def test_save_under_xdist_stores_every_result_once_and_compares_next_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_m=TESTS)
    first = pytester.runpytest("--device=cpu", "-n", "2", "--gpubench-save-baseline")
    first.assert_outcomes(passed=4, skipped=1)
    assert first.stdout.str().count("gpubench baseline saved:") == 1
    doc = saved(pytester)
    names = [b["fullname"] for b in doc["benchmarks"]]
    assert sorted(names) == [f"test_m.py::test_a[{i}]" for i in range(4)]
    by_name = {b["fullname"]: b for b in doc["benchmarks"]}
    assert by_name["test_m.py::test_a[2]"]["extra_info"]["metrics"]["tok_s"]["value"] == 102.0
    assert {b["extra_info"]["gpu"]["worker"] for b in doc["benchmarks"]} == {"gw0", "gw1"}
    assert doc["gpubench"]["skipped"]["test_m.py::test_huge"]["did_not_fit"] is True

    # the next -n 2 run compares against it; a planted -30% on one test fails that test only
    monkeypatch.setenv("TOK_1", "70")
    second = pytester.runpytest("--device=cpu", "-n", "2", "--gpubench-baseline")
    second.assert_outcomes(passed=3, failed=1, skipped=1)
    second.stdout.fnmatch_lines(
        [
            "*gpubench baseline *cpu.json: 4 compared, 1 regressed, 0 metric(s) improved, "
            "0 without a baseline entry",
            "FAILED test_m.py::test_a?1? - performance regression*",
        ]
    )
    # saving again under -n 2 replaces entries, never doubles them
    monkeypatch.delenv("TOK_1")
    pytester.runpytest("--device=cpu", "-n", "2", "--gpubench-save-baseline").assert_outcomes(
        passed=4, skipped=1
    )
    assert len(saved(pytester)["benchmarks"]) == 4


SERVED = """
import pytest

@pytest.mark.xdist_group("one")
def test_one(llm_server):
    llm_server("openai-server", model="model-one")

@pytest.mark.xdist_group("two")
def test_two(llm_server):
    llm_server("openai-server", model="model-two")
"""


def test_workers_servers_get_their_own_ports_and_log_files(
    pytester: pytest.Pytester, example_engine: str
) -> None:
    pytester.makeconftest(example_engine)
    pytester.makepyfile(test_served=SERVED)
    result = pytester.runpytest(
        "--device=cpu", "-n", "2", "--dist", "loadgroup", "--gpubench-log-dir=logs"
    )
    result.assert_outcomes(passed=2)
    out = result.stdout.str()
    lines = [line for line in out.splitlines() if "openai-server 'model-" in line]
    assert len(lines) == 2 and out.count("gpubench servers") == 1, out
    workers = {re.match(r"\[(gw\d)\]", line).group(1) for line in lines}
    ports = {re.search(r"127\.0\.0\.1:(\d+)", line).group(1) for line in lines}
    logs = {re.search(r"log: (\S+)", line).group(1) for line in lines}
    assert workers == {"gw0", "gw1"} and len(ports) == 2 and len(logs) == 2, lines
    for line in lines:
        worker, port = re.match(r"\[(gw\d)\]", line).group(1), int(line.split(":")[2].split()[0])
        assert port % 2 == int(worker[2:])  # each worker draws from its own ports
        log = re.search(r"log: (\S+)", line).group(1)
        assert f"-{worker}-" in log and "model-" in Path(log).read_text()


PINNED = """
import os
import pytest

from pytest_gpubench.bench.telemetry import Sampler

def _bench(gpubench):
    gpubench.time(lambda: None, rounds=1, warmup_rounds=0)
    gpubench.benchmark.extra_info["seen"] = os.environ["CUDA_VISIBLE_DEVICES"]
    gpubench.benchmark.extra_info["telemetry_gpu"] = Sampler().gpu_index
    gpubench.metric("tok_s", 1.0, "tok/s", True, headline=True)

# first: xdist's first round sends these alternately to gw0 and gw1, so both measure some
@pytest.mark.parametrize("i", range(4))
def test_small(gpubench, i):
    _bench(gpubench)

@pytest.mark.parametrize("i", range(4))
@pytest.mark.needs_vram(20)
def test_pinned(gpubench, i):
    _bench(gpubench)
"""

TWO_GPUS = "NVIDIA GeForce RTX 4090|24564|8.9;NVIDIA GeForce RTX 5070 Ti|16303|12.0"


def test_gpu_per_worker_pins_each_worker_and_judges_fit_on_its_gpu(
    pytester: pytest.Pytester, fake_nvml, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 20 GiB benchmark fits the 4090 (GPU 0, worker gw0), not the 5070 Ti (GPU 1, gw1)."""
    fake_nvml(TWO_GPUS)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    pytester.makepyfile(test_p=PINNED)
    result = pytester.runpytest_subprocess(
        "--device=auto", "-n", "2", "--gpubench-gpu-per-worker", "--gpubench-save-baseline",
        "-rs", "-p", "no:cacheprovider",
    )  # fmt: skip
    out = result.stdout.str()
    assert "gpubench: one GPU per worker" in out, out
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("skipped", 0) == 8, out
    doc = json.loads((pytester.path / "baselines" / "rtx4090+rtx5070ti.json").read_text())
    for bench in doc["benchmarks"]:  # each on its worker's GPU, telemetry read from that GPU
        gpu = bench["extra_info"]["gpu"]
        assert gpu["index"] == int(gpu["worker"][2:]), gpu
        assert (
            bench["extra_info"]["seen"]
            == str(gpu["index"])
            == str(bench["extra_info"]["telemetry_gpu"])
        )
        assert gpu["profile"] == ["rtx4090", "rtx5070ti"][gpu["index"]]
        if "test_pinned" in bench["fullname"]:  # 20 GiB: ran on the 4090 alone
            assert gpu["worker"] == "gw0" and "4090" in gpu["name"]
    skipped = doc["gpubench"]["skipped"]
    assert len(doc["benchmarks"]) + len(skipped) == 8
    assert {b["extra_info"]["gpu"]["worker"] for b in doc["benchmarks"]} == {"gw0", "gw1"}
    for why in skipped.values():  # what was skipped, was judged against the 5070 Ti alone
        assert why["did_not_fit"] and why["available_gib"] < 16, why
    if doc["benchmarks"]:
        assert re.search(r"gw0 GPU 0 NVIDIA GeForce RTX 4090", out), out


def test_gpu_per_worker_refuses_more_workers_than_gpus(
    pytester: pytest.Pytester, fake_nvml
) -> None:
    fake_nvml(TWO_GPUS)
    pytester.makepyfile(test_p="def test_x(): pass")
    result = pytester.runpytest_subprocess("--device=auto", "-n", "3", "--gpubench-gpu-per-worker")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*-n 3 starts 3 workers but rtx4090+rtx5070ti has 2 GPUs*"])
    alone = pytester.runpytest_subprocess("--device=auto", "--gpubench-gpu-per-worker")
    alone.stderr.fnmatch_lines(["*--gpubench-gpu-per-worker needs pytest-xdist workers*"])


def test_n_without_pytest_xdist_says_what_to_install(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pytest-xdist is installed here: the run blocks its plugin and hides the package."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "xdist" else real(name, *a)
    )
    pytester.makepyfile(test_p="def test_x(): pass")
    result = pytester.runpytest("-p", "no:xdist", "-p", "no:xdist.looponfail", "-n", "2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*-n needs pytest-xdist, which is not installed: pip install*"])


def test_plan_under_xdist_collects_on_the_controller(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_m=TESTS)
    result = pytester.runpytest("--device=cpu", "-n", "2", "--gpubench-plan")
    result.stdout.fnmatch_lines(["plan for cpu *: 4 of 5 benchmarks would run"])


# two benchmarks, then one that kills its worker outright, then two more (a new worker's)
CRASHING = """
import os
import pytest

@pytest.mark.parametrize("i", range(2))
def test_before(gpubench, i):
    gpubench.time(lambda: None, rounds=1, warmup_rounds=0)
    gpubench.metric("tok_s", 100.0 + i, "tok/s", True, headline=True)

def test_crash(gpubench):
    gpubench.time(lambda: None, rounds=1, warmup_rounds=0)
    gpubench.metric("tok_s", 1.0, "tok/s", True, headline=True)
    os._exit(1)

@pytest.mark.parametrize("i", range(2))
def test_after(gpubench, i):
    gpubench.time(lambda: None, rounds=1, warmup_rounds=0)
    gpubench.metric("tok_s", 200.0 + i, "tok/s", True, headline=True)
"""


def test_a_crashed_worker_loses_only_the_test_it_was_running(pytester: pytest.Pytester) -> None:
    """``os._exit`` in a worker: what it finished before is in the table and the baseline (it
    was sent at session end, which that worker never reached), and the summary names the test
    whose result was lost."""
    pytester.makepyfile(test_m=CRASHING)
    result = pytester.runpytest("--device=cpu", "-n", "1", "--gpubench-save-baseline")
    result.assert_outcomes(passed=4, failed=1)
    out = result.stdout.str()
    finished = ["test_m.py::test_before[0]", "test_m.py::test_before[1]",
                "test_m.py::test_after[0]", "test_m.py::test_after[1]"]  # fmt: skip
    rows = section(out, "gpubench results")
    assert [row.split()[0] for row in rows] == finished, out
    assert "gpubench: no result for test_m.py::test_crash: worker 'gw0' crashed" in out, out
    doc = saved(pytester)
    values = {
        b["fullname"]: b["extra_info"]["metrics"]["tok_s"]["value"] for b in doc["benchmarks"]
    }
    assert values == dict(zip(finished, [100.0, 101.0, 200.0, 201.0], strict=True))
