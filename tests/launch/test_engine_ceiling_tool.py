"""The engine-ceiling tool's process (launch/engine_ceiling.py): a real shell whose child
sleeps past the time limit is stopped whole, with everything it started, and leaves no
record for the reaper."""

from __future__ import annotations

import time

import psutil

from pytest_gpubench.launch import reaper
from pytest_gpubench.launch.engine_ceiling import run_tool


def test_a_tool_past_its_time_limit_is_stopped_with_its_children() -> None:
    # the run's record may hold other tests' live servers (a session's pool): compare with them
    before = dict(reaper.RUN._entries)
    began = time.monotonic()
    done = run_tool(["sh", "-c", "echo started; sleep 60 & echo $!; wait"], 1.0, "slow tool")
    assert time.monotonic() - began < 20
    assert done.returncode is None
    assert done.problem == "slow tool passed its time limit of 1 s"
    lines = done.output.split()
    assert lines[0] == "started"
    child = int(lines[1])  # the backgrounded sleep: in the tool's session, so stopped too
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == "zombie"
    assert reaper.RUN._entries == before  # the tool's own entry is gone


def test_a_tool_that_cannot_start_is_a_reason_not_an_error() -> None:
    done = run_tool(["/nonexistent/llama-batched-bench"], 5.0, "llama-batched-bench")
    assert done.returncode is None and done.problem.startswith(
        "llama-batched-bench could not start"
    )
