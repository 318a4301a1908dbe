"""Progress on a terminal under pytest's default capture, and the plugin's log lines.

The terminal is a real pseudo-terminal (``pty``): pytest decides whether it writes to a
terminal by asking the file it writes to, so only a pty shows what a user at one sees.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

BENCH = """
import time

import pytest


def test_rounds(gpubench):
    gpubench(lambda: time.sleep(0.3), work=1, unit="things", rounds=3, warmup_rounds=0)


@pytest.mark.model("meta-llama/Llama-3.1-8B-Instruct", engine="openai-server")
def test_served(llm_server, serve_bench):
    server = llm_server("openai-server", model="my-model")
    serve_bench(server, input_len=8, output_len=8, num_prompts=12, concurrency=1)
"""


def run_on_a_terminal(cwd: Path, *args: str) -> str:
    """pytest with its stdout and stderr on a pty; everything it wrote, control codes kept."""
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd, stdin=child, stdout=child, stderr=child, close_fds=True,
        env={**os.environ, "COLUMNS": "120", "TERM": "xterm"},
    )  # fmt: skip
    os.close(child)
    chunks = []
    deadline = time.monotonic() + 300
    exited = False
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 0.5)
        if ready:
            try:
                data = os.read(main, 65536)
            except OSError:  # the child side closed and everything was read
                break
            if not data:
                break
            chunks.append(data)
        elif exited:
            break  # exited and nothing more to read for 0.5 s
        else:
            exited = proc.poll() is not None
    proc.wait(timeout=60)
    os.close(main)
    return re.sub(r"\x1b\[[0-9;]*m", "", b"".join(chunks).decode(errors="replace"))


@pytest.fixture
def project(tmp_path: Path, example_engine: str) -> Path:
    (tmp_path / "conftest.py").write_text(example_engine)  # the stub server as an engine
    (tmp_path / "test_long.py").write_text(BENCH)
    return tmp_path


def test_a_terminal_shows_server_start_serving_and_rounds(project: Path) -> None:
    out = run_on_a_terminal(project, "--device=cpu")
    assert "2 passed" in out, out[-3000:]
    assert "gpubench: starting openai-server server for my-model [" in out
    assert re.search(r"gpubench: test_rounds: +\d+%\|.*\| [123]/3", out), out[-3000:]
    assert re.search(r"gpubench: openai-server my-model: +\d+%\|.*\| \d+/12", out)
    # each progress line is erased when its work ends: the final screen shows results only
    assert "\r" + " " * 100 in out


def test_verbose_lines_stay_whole(project: Path) -> None:
    out = run_on_a_terminal(project, "--device=cpu", "-v")
    # pytest rewrites the test's line whole after the progress line, so the outcome is on it
    assert re.search(r"test_long\.py::test_rounds PASSED", out), out[-3000:]
    assert re.search(r"test_long\.py::test_served PASSED", out), out[-3000:]


def test_no_progress_when_not_a_terminal_or_quiet(project: Path) -> None:
    piped = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--device=cpu"],
        cwd=project, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert "2 passed" in piped.stdout
    assert "gpubench: starting" not in piped.stdout + piped.stderr
    quiet = run_on_a_terminal(project, "--device=cpu", "-q")
    assert "2 passed" in quiet and "gpubench: starting" not in quiet


def test_log_cli_shows_the_plugins_log_lines(project: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--device=cpu",
         "--log-cli-level=INFO"],
        cwd=project, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert "2 passed" in run.stdout
    assert re.search(
        r"INFO +pytest_gpubench.*starting openai-server server for my-model", run.stdout
    )
    assert re.search(r"INFO +pytest_gpubench.*test_rounds: [0-9.]+ s", run.stdout)
