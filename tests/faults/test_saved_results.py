"""Faults that must never damage stored results: a failed benchmark, Ctrl-C, SIGTERM.

Real pytest runs (pytester, and real subprocesses for the signals), a real streaming server
(the stub, because a real engine cannot be made to fail every request on demand), real files.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from plumbing.leftovers import inner_pytest_argv

# One serving benchmark against the stub: FAIL_EVERY=1 makes the server fail every request,
# so serve_bench records its metrics and then fails the test on the error rate.
SERVING = """
import os
from pytest_gpubench.testing.stub_server import start_stub_server

def test_serve(serve_bench):
    args = ["--fail-every", os.environ["FAIL_EVERY"]] if os.environ.get("FAIL_EVERY") else []
    with start_stub_server(*args, engine="llamacpp") as server:
        serve_bench(server, input_len=8, output_len=16, num_prompts=10, concurrency=2)
"""


def entry(path: Path, nodeid: str) -> dict:
    doc = json.loads(path.read_text())
    return {b["fullname"]: b for b in doc["benchmarks"]}[nodeid]


def test_a_failed_benchmark_keeps_its_good_entry(pytester: pytest.Pytester, monkeypatch) -> None:
    pytester.makepyfile(test_serving=SERVING)
    monkeypatch.delenv("FAIL_EVERY", raising=False)
    good = pytester.runpytest_subprocess("--device=cpu", "--gpubench-save-baseline=b.json")
    good.assert_outcomes(passed=1)
    before = entry(pytester.path / "b.json", "test_serving.py::test_serve")
    assert "output_tok_s" in before["extra_info"]["metrics"]

    monkeypatch.setenv("FAIL_EVERY", "1")
    bad = pytester.runpytest_subprocess("--device=cpu", "--gpubench-save-baseline=b.json")
    bad.assert_outcomes(failed=1)
    bad.stdout.fnmatch_lines(
        ["*kept the stored entry: this run failed: test_serving.py::test_serve"]
    )
    assert entry(pytester.path / "b.json", "test_serving.py::test_serve") == before


def test_a_failed_benchmark_without_an_entry_is_not_saved(
    pytester: pytest.Pytester, monkeypatch
) -> None:
    pytester.makepyfile(test_serving=SERVING)
    monkeypatch.setenv("FAIL_EVERY", "1")
    bad = pytester.runpytest_subprocess("--device=cpu", "--gpubench-save-baseline=b.json")
    bad.assert_outcomes(failed=1)
    bad.stdout.fnmatch_lines(["*not saved: this run failed: test_serving.py::test_serve"])
    assert not (pytester.path / "b.json").exists()


# test_fast finishes, then test_slow is interrupted in its first round.
INTERRUPTED = """
import time
from pathlib import Path

def test_fast(gpubench):
    gpubench(lambda: time.sleep(0.01), work=1, unit="things", rounds=3)

def test_slow(gpubench):
    def one():
        Path("slow-started").touch()
        time.sleep(120)
    gpubench(one, work=1, unit="things", rounds=3)
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupt_saves_what_finished(tmp_path: Path, sig: signal.Signals) -> None:
    (tmp_path / "test_interrupted.py").write_text(INTERRUPTED)
    # SIGINT reset in the child: started from a background job, it would inherit SIGINT
    # ignored, and Ctrl-C would then never reach it (seen here under scripts/under_load.sh)
    proc = subprocess.Popen(
        inner_pytest_argv("-p", "no:cacheprovider", "--device=cpu",
                          "--gpubench-save-baseline=b.json", "--benchmark-json=pb.json",
                          "test_interrupted.py"),
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not (tmp_path / "slow-started").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
        time.sleep(0.05)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    assert "Traceback" not in out and "INTERNALERROR" not in out, out
    assert "gpubench results on cpu" in out  # the end-of-run summary still prints
    assert (
        "not saved: this run did not finish it (interrupted): test_interrupted.py::test_slow" in out
    )
    saved = json.loads((tmp_path / "b.json").read_text())
    assert [b["fullname"] for b in saved["benchmarks"]] == ["test_interrupted.py::test_fast"]
    # pytest-benchmark's own JSON survives the interrupt too
    ours = json.loads((tmp_path / "pb.json").read_text())
    assert [b["fullname"] for b in ours["benchmarks"]] == ["test_interrupted.py::test_fast"]


# a sweep whose requests stream for 10 s each: Ctrl-C lands with four of them in flight
SWEEP_IN_FLIGHT = """
from pathlib import Path
from pytest_gpubench.testing.stub_server import start_stub_server

def test_sweep(serve_bench):
    with start_stub_server("--tokens-per-s", "10") as server:
        Path("stub-url").write_text(server.base_url)
        serve_bench.sweep(server, concurrency=[4], input_len=8, output_len=100)
"""


def test_ctrl_c_in_a_sweep_cancels_its_requests_quietly(tmp_path: Path) -> None:
    """Ctrl-C with requests in flight: the run ends interrupted, saves nothing and prints no
    "Task was destroyed but it is pending!" per request (the loop used to be closed over them:
    32 such lines after a Ctrl-C in the H200 capacity test, run here on the tiny GGUF)."""
    import httpx

    (tmp_path / "test_sweep_in_flight.py").write_text(SWEEP_IN_FLIGHT)
    proc = subprocess.Popen(
        inner_pytest_argv("-p", "no:cacheprovider", "--device=cpu",
                          "--gpubench-save-baseline=b.json", "test_sweep_in_flight.py"),
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    deadline = time.monotonic() + 120
    url = tmp_path / "stub-url"
    while True:  # until the stub has taken the measured requests (4 warm-ups come first)
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
        if url.exists():
            with contextlib.suppress(httpx.HTTPError):
                text = httpx.get(url.read_text() + "/metrics", timeout=2).text
                sent = re.search(r"^stub:requests_total (\S+)", text, re.MULTILINE)
                if sent and float(sent.group(1)) >= 5:
                    break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    assert "Task was destroyed" not in out, out
    assert "Traceback" not in out and "INTERNALERROR" not in out, out
    assert not (tmp_path / "b.json").exists()
