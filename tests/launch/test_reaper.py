"""The run record, its watchdog and the next run's sweep, with plain processes (sh, sleep) in the
place of an engine's tree: what is killed, what is never killed, and the one line reported.

The real engines (vLLM's EngineCore and Worker, llama-server, a container) under a SIGKILLed
pytest are in tests/integration/test_lifecycle.py; torchrun's ranks in
tests/distributed/test_torchrun.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

import pytest_gpubench
from pytest_gpubench.launch import reaper

SRC = str(Path(pytest_gpubench.__file__).resolve().parents[1])

# An "owner" stands in for pytest: it records a session (a shell with two sleeping children in
# a session of its own), says which pids it has, and waits to be killed.
OWNER = """
import json, os, subprocess, sys, time
from pathlib import Path
from pytest_gpubench.launch.reaper import RunRecord

record = RunRecord(Path(sys.argv[1]))
key = record.new_key()
tag = record.tag(key) if sys.argv[4] == "tag" else {}
env = {**os.environ, **tag}
tree = subprocess.Popen(["sh", "-c", sys.argv[2]], start_new_session=True, env=env)
record.add_session(tree.pid, f"fake server pid {tree.pid}", key)
time.sleep(float(sys.argv[3]))  # let the watchdog see the tree
Path(sys.argv[1], "owner.json").write_text(json.dumps(
    {"tree": tree.pid, "watchdog": record.watchdog_pid, "record": str(record.path)}))
time.sleep(600)
"""
TWO_SLEEPS = "sleep 301 & sleep 302 & wait"


def _start_owner(
    tmp_path: Path,
    leftovers: list,
    script: str = TWO_SLEEPS,
    settle_s: float = 0,
    children: int = 2,
    tag: bool = True,
):
    runs = tmp_path / "runs"
    runs.mkdir()
    env = {**os.environ, "PYTHONPATH": SRC}
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(runs), script, str(settle_s), "tag" if tag else "-"],
        env=env,
    )
    leftovers.append(psutil.Process(owner.pid))  # killed with what it left if a test fails
    deadline = time.monotonic() + 30
    while not (runs / "owner.json").exists():
        assert owner.poll() is None and time.monotonic() < deadline, "the owner did not start"
        time.sleep(0.05)
    info = json.loads((runs / "owner.json").read_text())
    root = psutil.Process(info["tree"])
    leftovers.append(root)
    while len(root.children()) < children:
        assert time.monotonic() < deadline, "the fake server did not start its children"
        time.sleep(0.02)
    tree = [root, *root.children(recursive=True)]
    leftovers += tree
    return owner, runs, info, tree


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc)
        except psutil.Error:
            pass
    return out


def _wait_gone(procs: list[psutil.Process], timeout: float) -> float:
    start = time.monotonic()
    while _alive(procs):
        assert time.monotonic() - start < timeout, f"still running: {_alive(procs)}"
        time.sleep(0.05)
    return time.monotonic() - start


@pytest.fixture
def leftovers():
    """Processes a test expects to be killed: killed at the end whatever happened."""
    procs: list[psutil.Process] = []
    yield procs
    for proc in _alive(procs):
        proc.kill()


def _fake_server(leftovers: list) -> list[psutil.Process]:
    """A shell with two sleeping children in a session of its own: [sh, sleep, sleep]."""
    sh = subprocess.Popen(["sh", "-c", TWO_SLEEPS], start_new_session=True)
    root = psutil.Process(sh.pid)
    leftovers.append(root)
    deadline = time.monotonic() + 10
    while len(root.children()) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    leftovers += root.children()
    return [root, *root.children()]


def test_sigkilled_owner_its_watchdog_stops_the_whole_session(tmp_path, leftovers) -> None:
    owner, runs, info, tree = _start_owner(tmp_path, leftovers)
    leftovers += tree
    assert sorted(p.name() for p in tree) == ["sh", "sleep", "sleep"]
    watchdog = psutil.Process(info["watchdog"])
    assert os.getsid(watchdog.pid) == watchdog.pid  # its own session: Ctrl-C does not reach it
    owner.kill()
    owner.wait()
    _wait_gone([*tree, watchdog], timeout=10)  # SIGTERM at once; SIGKILL 3 s later for refusers
    assert not Path(info["record"]).exists()
    line = reaper.sweep(runs)
    assert line is not None and line.startswith(
        f"gpubench: cleaned up after a killed pytest run (pid {owner.pid}, started "
    )
    assert (
        f"its watchdog stopped fake server pid {info['tree']} (3 processes: sh, sleep x2)" in line
    )
    assert reaper.sweep(runs) is None  # reported once


def test_watchdog_killed_too_the_next_sweep_stops_the_session(tmp_path, leftovers) -> None:
    owner, runs, info, tree = _start_owner(tmp_path, leftovers)
    leftovers += tree
    os.kill(info["watchdog"], signal.SIGKILL)
    owner.kill()
    owner.wait()
    time.sleep(1.5)
    assert len(_alive(tree)) == 3  # nothing else would ever stop them
    line = reaper.sweep(runs)
    assert line is not None and f"(pid {owner.pid}, started " in line
    assert f"stopped fake server pid {info['tree']} (3 processes: sh, sleep x2)" in line
    assert not _alive(tree)
    assert not list(runs.glob("*.json")) or [p.name for p in runs.glob("*.json")] == ["owner.json"]


@pytest.mark.parametrize("how", ["environment-tag", "snapshot"])
def test_a_process_that_left_the_session_and_its_parent_is_still_stopped(
    tmp_path, leftovers, how
) -> None:
    """A daemon (a new session, its parent gone: as a rank torchrun started, once torchrun
    died) is found by the tag its environment inherited, even the instant it escaped; and
    without the tag (a process started with a clean environment) by the watchdog's snapshots
    of pids and start times, once it has been alive for a snapshot."""
    marker = f"{os.getpid()}.{time.time_ns() % 10**6}"
    if how == "environment-tag":
        daemon, settle = f"(setsid sleep {marker} &); exec sleep 304", 0.0
    else:
        daemon, settle = f"(setsid sleep {marker} & sleep 2) & exec sleep 304", 4.0
    owner, _, info, tree = _start_owner(
        tmp_path, leftovers, daemon, settle_s=settle, children=0, tag=how == "environment-tag"
    )
    deadline = time.monotonic() + 10
    while True:
        escaped = [
            p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", marker]
        ]
        leftovers += escaped
        if (escaped and escaped[0].ppid() != info["tree"]) or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert len(escaped) == 1 and os.getsid(escaped[0].pid) == escaped[0].pid
    assert escaped[0].ppid() != info["tree"]  # re-parented: no longer in the tree either
    assert escaped[0].pid not in {p.pid for p in tree}
    owner.kill()
    owner.wait()
    _wait_gone([*tree, *escaped], timeout=10)


def test_a_live_runs_record_is_never_swept_and_a_normal_end_removes_it(tmp_path, leftovers):
    record = reaper.RunRecord(tmp_path)
    tree = _fake_server(leftovers)
    key = record.add_session(tree[0].pid, "fake server")
    watchdog = psutil.Process(record.watchdog_pid)
    assert record.path is not None and record.path.exists()
    assert reaper.sweep(tmp_path) is None  # this process is alive: its record is left alone
    assert len(_alive(tree)) == 3
    for proc in tree:
        proc.kill()
    record.remove(key)
    assert not record.path.exists()  # nothing recorded: no file
    record.close()
    _wait_gone([watchdog], timeout=5)
    assert not list(tmp_path.iterdir())


def _dead_record(directory: Path, entries: dict, **head) -> Path:
    """A record of a run whose pytest is dead (a pid that exited)."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    data = {
        "version": 1,
        "pytest": {"pid": gone.pid, "start": time.time() - 60},
        **reaper.machine(),
        **head,
        "entries": entries,
    }
    path = directory / f"{gone.pid}-1.json"
    path.write_text(json.dumps(data))
    return path


def test_a_reused_pid_is_never_killed(tmp_path, leftovers) -> None:
    """The record names the session leader's start time: a process that got the same pid later
    (here: a live process whose start time differs) is not the one the run started."""
    procs = _fake_server(leftovers)
    leader = procs[0].pid
    began = reaper.start_time(leader)
    path = _dead_record(
        tmp_path, {"1": {"kind": "session", "pid": leader, "start": began - 5, "what": "x"}}
    )
    seen = path.with_name(path.name.replace(".json", ".seen.json"))
    seen.write_text(json.dumps({"1": [[p.pid, began - 5] for p in procs]}))
    assert reaper.sweep(tmp_path) is None
    assert len(_alive(procs)) == 3
    assert not path.exists() and not seen.exists()  # the record is gone: nothing of it runs


def test_records_of_another_boot_or_pid_namespace_kill_nothing(tmp_path, leftovers) -> None:
    procs = _fake_server(leftovers)
    entry = {"kind": "session", "pid": procs[0].pid, "start": reaper.start_time(procs[0].pid)}
    other_ns = _dead_record(tmp_path, {"1": {**entry, "what": "a"}}, pidns="pid:[1]")
    assert reaper.sweep(tmp_path) is None
    assert other_ns.exists()  # not ours to judge: left for a run in that namespace
    other_ns.unlink()
    _dead_record(tmp_path, {"1": {**entry, "what": "b"}}, boot="another-boot")
    assert reaper.sweep(tmp_path) is None
    assert len(_alive(procs)) == 3 and not list(tmp_path.iterdir())


def test_containers_in_a_dead_record_are_removed_by_the_sweep(tmp_path, monkeypatch) -> None:
    removed = []

    def remove(ident: str) -> str | None:
        removed.append(ident)
        return {"c1": None, "c2": "gone"}.get(ident, "daemon unreachable")

    monkeypatch.setattr(reaper, "remove_container", remove)
    _dead_record(
        tmp_path,
        {
            "1": {"kind": "container", "id": "c1", "name": "c1", "what": "llamacpp container c1"},
            "2": {"kind": "container", "id": "c2", "name": "c2", "what": "gone already"},
            "3": {"kind": "container", "id": "c3", "name": "c3", "what": "vllm container c3"},
        },
    )
    line = reaper.sweep(tmp_path)
    assert removed == ["c1", "c2", "c3"]
    assert line is not None
    assert "removed llamacpp container c1; could NOT remove vllm container c3 (daemon " in line
    assert "gone already" not in line


def test_the_next_pytest_run_prints_one_line_even_with_q(
    pytester: pytest.Pytester, monkeypatch, leftovers
) -> None:
    procs = _fake_server(leftovers)
    leader = procs[0].pid
    monkeypatch.setenv("GPUBENCH_CACHE", str(pytester.path / "cache"))
    runs = pytester.path / "cache" / "runs"
    runs.mkdir(parents=True)
    entry = {"kind": "session", "pid": leader, "start": reaper.start_time(leader)}
    _dead_record(runs, {"1": {**entry, "what": f"vllm server pid {leader}"}})
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest_subprocess("-q")
    result.assert_outcomes(passed=1)
    lines = [line for line in result.outlines if line.startswith("gpubench: cleaned up")]
    assert len(lines) == 1, result.outlines
    assert f"stopped vllm server pid {leader} (3 processes: sh, sleep x2)" in lines[0]
    assert not _alive(procs)
    again = pytester.runpytest_subprocess("-q")
    assert not [line for line in again.outlines if "cleaned up" in line]


def test_a_record_that_cannot_be_written_never_fails_a_start(tmp_path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    record = reaper.RunRecord(blocked / "runs")  # under a file: mkdir fails
    proc = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        assert record.add_session(proc.pid, "x") is not None
        assert record.problem and "cannot write the run record" in record.problem
        assert record.watchdog_pid is None
    finally:
        proc.kill()
        proc.wait()
    record.close()
