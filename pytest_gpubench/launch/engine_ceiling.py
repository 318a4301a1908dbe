"""The engine's own batched ceiling: llama.cpp's ``llama-batched-bench`` beside a llama-server
the plugin started, run once at a sweep's shape.

Why: a sweep's output tok/s says how fast the server served, not how far that is from what the
engine itself can decode at the same batch; llama.cpp ships a tool that measures exactly that
(n parallel sequences, each a prompt of npp tokens then ntg generated tokens, no HTTP, no
scheduler). Only a server started here as a process has what the tool needs: its executable
(the tool sits beside it) and its model file. Anything else gets a reason, never an error.

The tool runs like every process the plugin starts: its own session (``setsid``) with
``PR_SET_PDEATHSIG`` (launch/process.py), recorded for the reaper while it runs, stopped whole
by launch/groups.py when it passes its time limit or the run is interrupted.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_gpubench.engines import llamacpp
from pytest_gpubench.launch import reaper
from pytest_gpubench.launch.base import shell_join
from pytest_gpubench.launch.cleanup import STOP_NOW
from pytest_gpubench.launch.groups import stop_group
from pytest_gpubench.launch.process import _child_setup

#: seconds between SIGTERM and SIGKILL for the tool (it holds no state worth a long grace)
TOOL_GRACE_S = 5.0


@dataclass(frozen=True)
class Ceiling:
    """Decode tokens/s per number of parallel sequences, as batched-bench measured them."""

    decode_tok_s: dict[int, float]
    command: str


@dataclass(frozen=True)
class ToolRun:
    returncode: int | None  # None: it could not start, or it was stopped at its time limit
    output: str  # stdout and stderr together (the tool's rows and its log lines interleave)
    problem: str = ""


def run_tool(argv: Sequence[str], time_limit_s: float, what: str) -> ToolRun:
    """Run ``argv`` to its end or ``time_limit_s``, in a session of its own the reaper knows."""
    key = reaper.RUN.new_key()
    env = {**os.environ, **reaper.RUN.tag(key)}
    try:
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, env=env, text=True, errors="replace",
            preexec_fn=_child_setup,
        )  # fmt: skip
    except OSError as exc:
        return ToolRun(None, "", f"{what} could not start: {exc}")
    record = reaper.RUN.add_session(proc.pid, f"{what} pid {proc.pid}", key)
    try:
        out, _ = proc.communicate(timeout=time_limit_s)
        return ToolRun(proc.returncode, out or "")
    except subprocess.TimeoutExpired:
        stop_group(proc, TOOL_GRACE_S)
        out, _ = proc.communicate()
        return ToolRun(None, out or "", f"{what} passed its time limit of {time_limit_s:g} s")
    except BaseException:  # Ctrl-C, SIGTERM: the tool does not outlive the run
        stop_group(proc, TOOL_GRACE_S, STOP_NOW)
        raise
    finally:
        reaper.RUN.remove(record)


def why_no_ceiling(server: Any) -> str | None:
    """Why ``server`` has no ceiling to measure; None when it has one."""
    engine = getattr(getattr(server, "engine", None), "name", None)
    if engine != "llamacpp":
        return f"engine {engine or 'unknown'} ships no batched benchmark the plugin runs"
    args = getattr(getattr(getattr(server, "handle", None), "proc", None), "args", None)
    if getattr(server, "launcher", None) != "process" or not isinstance(args, list) or not args:
        return "the server was not started here as a process, so its llama-server is not known"
    source = str(getattr(server, "source", "") or "")
    if not (source.endswith(".gguf") and Path(source).is_file()):
        return f"its model {source!r} is not a local GGUF file"
    if llamacpp.batched_bench_beside(str(args[0])) is None:
        return f"no {llamacpp.BATCHED_BENCH} beside {args[0]}"
    return None


def measure_ceiling(
    server: Any, parallel: Sequence[int], shape: tuple[int, int], time_limit_s: float
) -> Ceiling | str:
    """batched-bench's decode tok/s at ``parallel`` sequences of ``shape`` (prompt, output
    tokens) for ``server``'s model and flags; else one line saying why there is none."""
    why = why_no_ceiling(server)
    if why is not None:
        return why
    args = [str(a) for a in server.handle.proc.args]
    binary = llamacpp.batched_bench_beside(args[0])
    assert binary is not None
    argv = llamacpp.batched_bench_argv(binary, server.source, shape, parallel, args[1:])
    display = shell_join(argv)
    log = getattr(server, "log", None)
    if log is not None:
        log.note(f"engine ceiling: {display}")
    done = run_tool(argv, time_limit_s, llamacpp.BATCHED_BENCH)
    if log is not None:
        log.note(f"engine ceiling: exit status {done.returncode} {done.problem}".rstrip())
    if done.problem:
        return done.problem
    if done.returncode != 0:
        tail = done.output.strip().splitlines()[-1:] or ["no output"]
        return f"{llamacpp.BATCHED_BENCH} exited with status {done.returncode}: {tail[0]}"
    rows = llamacpp.parse_batched_bench(done.output, shape)
    if not rows:
        return f"{llamacpp.BATCHED_BENCH} printed no result row for {shape[0]} in / {shape[1]} out"
    return Ceiling(rows, display)
