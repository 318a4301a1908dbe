"""A second Ctrl-C while pytest stops its servers after the first: no traceback, nothing left.

A real pytest run in a subprocess holds a real server process started by ``llm_server``'s
process launcher: the README's example engine with the test suite's stub server as its
binary (a stub: no real engine is needed for a server that is slow to stop), wrapped so that
on SIGTERM it notes the signal and takes 5 s to exit (within the plugin's 10 s grace). Two
real SIGINTs: the first ends the test, the second lands while the teardown waits for that
server. It used to raise KeyboardInterrupt out of the session's finalizer: a traceback
through pytest's hooks, exit -2 and no summary. Now it kills the server at once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from plumbing.leftovers import assert_nothing_left, inner_pytest_argv

# the stub server, stopping slowly: on SIGTERM it writes "server-got-sigterm" and exits 5 s
# later, writing "server-exited" (a server the second Ctrl-C killed never writes it)
SLOW_STOP = (
    "import runpy, signal, sys, time\n"
    "def term(*_):\n"
    "    open('server-got-sigterm', 'w').close()\n"
    "    time.sleep(5)\n"
    "    open('server-exited', 'w').close()\n"
    "    sys.exit(0)\n"
    "signal.signal(signal.SIGTERM, term)\n"
    "sys.argv[0] = 'stub'\n"
    "runpy.run_module('pytest_gpubench.testing.stub_server', run_name='__main__')\n"
)

HOLD = f"""
import sys, time
from pathlib import Path

SLOW_STOP = {SLOW_STOP!r}

def test_hold(llm_server):
    server = llm_server("openai-server", model="my-model", served_name=MARKER,
                        executable=[sys.executable, "-c", SLOW_STOP])
    Path("server-ready").write_text(server.base_url)
    time.sleep(600)
"""


def wait_for(path: Path, proc: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)


def test_a_second_ctrl_c_during_teardown_kills_the_server_without_a_traceback(
    tmp_path: Path, example_engine: str
) -> None:
    marker = f"gbt-second-ctrl-c-{os.getpid()}"
    (tmp_path / "conftest.py").write_text(example_engine)
    (tmp_path / "test_hold.py").write_text(f"MARKER = {marker!r}\n" + HOLD)
    proc = subprocess.Popen(
        inner_pytest_argv("-p", "no:cacheprovider", "--device=cpu", "test_hold.py"),
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        wait_for(tmp_path / "server-ready", proc)
        proc.send_signal(signal.SIGINT)  # the first: the test ends, the teardown starts
        wait_for(tmp_path / "server-got-sigterm", proc)  # the teardown waits for the server
        proc.send_signal(signal.SIGINT)  # the second, during that wait
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    assert "Traceback" not in out and "INTERNALERROR" not in out, out
    assert "Ctrl-C again: stopping the servers now, without their grace period" in out, out
    assert "gpubench servers" in out, out  # the run's own summary still prints
    assert_nothing_left(marker)
    assert not (tmp_path / "server-exited").exists()  # killed, not given its grace
