"""Checks that a pytest run left nothing running: for the plugin's own tests and for users who
test their own server set-ups. Also how to run an inner pytest that Ctrl-C really interrupts.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time

import psutil
import pytest


def servers_with(marker: str) -> list[psutil.Process]:
    """Live processes whose command line contains ``marker`` (a unique served name)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmd = proc.info.get("cmdline") or []
        if proc.info.get("status") != psutil.STATUS_ZOMBIE and marker in " ".join(cmd):
            found.append(proc)
    return found


def containers_with(client, marker: str) -> list:
    out = []
    for c in client.containers.list(all=True, filters={"label": "pytest-gpubench"}):
        if marker in " ".join(c.attrs.get("Args") or []):
            out.append(c)
    return out


def assert_nothing_left(marker: str, docker_client=None, wait_s: float = 5.0) -> None:
    """No process (and no container) serving ``marker`` outlives the inner pytest run."""
    deadline = time.monotonic() + wait_s
    while True:
        procs = [p for p in servers_with(marker) if p.pid != os.getpid()]
        conts = containers_with(docker_client, marker) if docker_client is not None else []
        if not procs and not conts:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"left behind: processes {[p.pid for p in procs]}, containers {conts}")
        time.sleep(0.2)


def process_tree(pid: int) -> list[psutil.Process]:
    """Every live descendant of ``pid`` (say, a pytest run's servers and what they started),
    without the run's watchdog."""
    try:
        procs = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []
    watchdog = watchdog_of(pid)
    return [p for p in procs if watchdog is None or p.pid != watchdog.pid]


def watchdog_of(pid: int) -> psutil.Process | None:
    """The watchdog process of the run in process ``pid`` (see ``launch.reaper``), if any."""
    from pytest_gpubench.launch.reaper import WATCHDOG_MODULE

    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(pid).children():
            with contextlib.suppress(psutil.Error):
                if WATCHDOG_MODULE in " ".join(child.cmdline()):
                    return child
    return None


def running(procs: list[psutil.Process]) -> list[psutil.Process]:
    """Those of ``procs`` still running (the same processes: a reused pid is not counted)."""
    out = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc)
    return out


def describe(procs: list[psutil.Process]) -> str:
    parts = []
    for proc in procs:
        try:
            parts.append(f"{proc.pid} {proc.name()} ({proc.memory_info().rss >> 20} MB)")
        except psutil.Error:
            parts.append(f"{proc.pid} (gone)")
    return ", ".join(parts) or "none"


def wait_gone(procs: list[psutil.Process], timeout_s: float) -> float:
    """Seconds until none of ``procs`` runs; fails naming the survivors after ``timeout_s``."""
    start = time.monotonic()
    while running(procs):
        if time.monotonic() - start > timeout_s:
            pytest.fail(f"still running {timeout_s:g} s later: {describe(running(procs))}")
        time.sleep(0.1)
    return time.monotonic() - start


def unique_name(request: pytest.FixtureRequest) -> str:
    """A served name unique to this test and process, to find its server by command line."""
    return (
        "gbt-"
        + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40].strip("-")
        + f"-{os.getpid()}"
    )


# The inner pytest runs as ``python -c`` with SIGINT reset to raise KeyboardInterrupt: a child
# started from a non-interactive shell inherits SIGINT ignored, and Python then never installs
# its Ctrl-C handler (so the Ctrl-C tests would test nothing).
INNER_PYTEST = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "import pytest; sys.exit(pytest.main(sys.argv[1:]))"
)


def inner_pytest_argv(*args: str) -> list[str]:
    return [sys.executable, "-c", INNER_PYTEST, *args]


def failure_lines(result: pytest.RunResult, test: str) -> list[str]:
    """The non-blank lines pytest printed for ``test``'s failure, up to the next section: one
    line means the user saw the message alone, no traceback into the plugin."""
    out = result.stdout.str()
    section = out[out.index(f"_ {test} _") :].splitlines()[1:]
    return [line for line in section[: [ln[:1] for ln in section].index("=")] if line.strip()]
