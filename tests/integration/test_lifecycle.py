"""Start-up failures and tear-down that cannot be skipped, with a real llama-server.

Each test runs an inner pytest (a real run of a user's test file) and then checks from outside
that no server process or container is left and that the user was shown what happened.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from plumbing.leftovers import (
    assert_nothing_left,
    containers_with,
    inner_pytest_argv,
    process_tree,
    running,
    unique_name,
    wait_gone,
    watchdog_of,
)

SERVE = """
import os, pathlib, time
import pytest

MODEL = {model!r}
NAME = {name!r}
HOW = {how!r}

def test_benchmark(llm_server):
    server = llm_server(engine="llamacpp", model=MODEL, served_name=NAME, **HOW)
    pathlib.Path("server.txt").write_text(server.base_url)
    {body}
"""


def _serve_file(pytester, tiny_model, name: str, body: str = "pass", **how) -> None:
    pytester.makepyfile(
        SERVE.format(model=str(tiny_model.gguf_path), name=name, how=how, body=body)
    )


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    return unique_name(request)


@pytest.fixture(params=["process", "docker"])
def launcher(request: pytest.FixtureRequest, llama_server_bin):
    """(how, docker client or None) for each launcher; Docker needs the locally made image."""
    if request.param == "process":
        return {}, None
    image = request.getfixturevalue("llama_image")
    daemon = request.getfixturevalue("docker_daemon")
    return {"launcher": "docker", "image": image}, daemon.client


def test_server_stopped_at_end_of_run_and_log_path_printed(
    pytester: pytest.Pytester, tiny_model, llama_server_bin, name, launcher
) -> None:
    how, client = launcher
    _serve_file(pytester, tiny_model, name, **how)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*- gpubench servers -*", f"llamacpp '{name}' (*) http://127.0.0.1:* log: *.log"]
    )
    log = Path(result.stdout.str().split("log: ")[-1].split()[0])
    assert log.is_file() and "ready at http://127.0.0.1:" in log.read_text()
    assert_nothing_left(name, client)


def test_exception_in_benchmark_still_stops_server(
    pytester: pytest.Pytester, tiny_model, llama_server_bin, name
) -> None:
    _serve_file(pytester, tiny_model, name, body="raise RuntimeError('benchmark blew up')")
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*RuntimeError: benchmark blew up*", "*gpubench llamacpp server log*"]
    )
    assert_nothing_left(name)


def test_failing_fixture_still_stops_server(
    pytester: pytest.Pytester, tiny_model, llama_server_bin, name
) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.fixture
        def warmed_server(llm_server):
            llm_server(engine="llamacpp", model={str(tiny_model.gguf_path)!r}, served_name={name!r})
            raise RuntimeError("fixture failed after starting the server")

        def test_uses_it(warmed_server):
            pass
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture failed after starting the server*"])
    assert_nothing_left(name)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_signal_to_pytest_stops_server(
    pytester: pytest.Pytester, tiny_model, llama_server_bin, name, launcher, sig
) -> None:
    how, client = launcher
    _serve_file(pytester, tiny_model, name, body="time.sleep(600)", **how)
    proc = subprocess.Popen(
        inner_pytest_argv("-p", "no:randomly"),
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        ready = pytester.path / "server.txt"
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "the inner run never got its server"
            time.sleep(0.1)
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2, out  # pytest's "interrupted"
    assert "KeyboardInterrupt" in out or "SIGTERM" in out, out
    summary = out.split("gpubench servers")[-1]
    assert f"llamacpp '{name}' ({how.get('launcher', 'process')})" in summary, out
    assert "log: " in summary and "llama_server: model loaded" in summary, out  # the log tail
    assert_nothing_left(name, client)


def test_server_never_ready_shows_command_exit_and_log_tail(
    pytester: pytest.Pytester, name, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real process that never serves (a stand-in for an engine stuck loading a model)."""
    stuck = (
        "import os, time; print('loading weights... token', os.environ['HF_TOKEN'], flush=True);"
        " time.sleep(600)"
    )
    monkeypatch.setenv("HF_TOKEN", "hf_plantedNeverLeak0123")
    pytester.makepyfile(
        f"""
        import sys

        def test_slow(llm_server):
            llm_server(engine="llamacpp", model="any.gguf", served_name={name!r},
                       executable=[sys.executable, "-c", {stuck!r}], ready_timeout=3)
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=0, failed=1)
    result.stdout.fnmatch_lines(
        [
            f"*llamacpp server for '{name}' was not ready within 3 s*",
            "*command: * -c * --alias " + name + " *",
            "*log: *.log",
            "*last 1 log lines:*",
            "*loading weights... token ****",
        ]
    )
    assert "hf_plantedNeverLeak0123" not in result.stdout.str()
    assert_nothing_left(name)


def test_server_exits_during_startup_shows_exit_status_and_log_tail(
    pytester: pytest.Pytester, llama_server_bin, name
) -> None:
    bad = pytester.path / "corrupt.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 64)
    pytester.makepyfile(
        f"""
        def test_bad_model(llm_server):
            llm_server(engine="llamacpp", model={str(bad)!r}, served_name={name!r})
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            f"*llamacpp server for '{name}' exited with status * before it was ready*",
            "*command: *llama-server --model *corrupt.gguf*",
            "*last * log lines:*",
        ]
    )
    assert "failed to load model" in result.stdout.str() or "error" in result.stdout.str().lower()
    assert_nothing_left(name)


def test_server_dying_mid_benchmark_errors_that_test_and_restarts_for_the_next(
    pytester: pytest.Pytester, tiny_model, llama_server_bin, name
) -> None:
    pytester.makepyfile(
        f"""
        import os, signal

        def serve(llm_server):
            return llm_server(engine="llamacpp", model={str(tiny_model.gguf_path)!r},
                              served_name={name!r})

        def test_1_server_killed(llm_server):
            server = serve(llm_server)
            os.kill(server.handle.pid, signal.SIGKILL)
            server.handle.proc.wait()

        def test_2_gets_fresh_server(llm_server):
            server = serve(llm_server)
            assert server.alive()
            server.check()
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_1_server_killed*",
            f"*llamacpp server for '{name}' died during the test (exit status -9)*",
            "*last * log lines:*",
        ]
    )
    assert result.stdout.str().count(f"llamacpp '{name}' (process)") == 2  # started twice
    assert_nothing_left(name)


def test_port_already_taken_is_a_clear_error(
    pytester: pytest.Pytester, llama_server_bin, name
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        pytester.makepyfile(
            f"""
            def test_fixed_port(llm_server):
                llm_server(engine="llamacpp", model="x.gguf", served_name={name!r}, port={port})
            """
        )
        result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [f"*port {port} on 127.0.0.1 is already in use by pid * (python*): stop what holds it*"]
    )
    assert "Traceback" not in result.stdout.str()
    assert_nothing_left(name)


def test_switching_model_stops_the_previous_server(
    pytester: pytest.Pytester, tiny_model, llama_server_bin, name
) -> None:
    pytester.makepyfile(
        f"""
        MODEL = {str(tiny_model.gguf_path)!r}

        def test_a(llm_server):
            pytest_a = llm_server(engine="llamacpp", model=MODEL, served_name={name + "-a"!r})
            again = llm_server(engine="llamacpp", model=MODEL, served_name={name + "-a"!r})
            assert again is pytest_a
            b = llm_server(engine="llamacpp", model=MODEL, served_name={name + "-b"!r})
            assert not pytest_a.alive() and b.alive()

        def test_b_reuses(llm_server):
            b = llm_server(engine="llamacpp", model=MODEL, served_name={name + "-b"!r})
            assert b.alive()
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(passed=2)
    assert result.stdout.str().count(f"'{name}-b' (process)") == 1  # reused, not restarted
    assert_nothing_left(name)


KILLED = """
import pathlib, time

def test_serves_until_killed(llm_server):
    server = llm_server(**{how!r})
    pathlib.Path("server.txt").write_text(server.base_url)
    time.sleep(600)
"""


@pytest.fixture(params=["llamacpp", "llamacpp-docker", "vllm"])
def engine_how(request: pytest.FixtureRequest, tiny_model, name):
    """(llm_server's arguments, docker client or None) for each engine this machine runs."""
    if request.param == "vllm":
        python = request.getfixturevalue("vllm_python")
        return {
            "engine": "vllm", "model": str(tiny_model.hf_dir), "served_name": name,
            "executable": str(python), "options": {"context": 1024, "dtype": "bfloat16"},
            "env": {"VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1"},
        }, None  # fmt: skip
    how = {"engine": "llamacpp", "model": str(tiny_model.gguf_path), "served_name": name}
    if request.param == "llamacpp":
        return {**how, "executable": str(request.getfixturevalue("llama_server_bin"))}, None
    image = request.getfixturevalue("llama_image")
    daemon = request.getfixturevalue("docker_daemon")
    return {**how, "launcher": "docker", "image": image}, daemon.client


@pytest.mark.parametrize("watchdog", ["watchdog-alive", "watchdog-killed-too"])
def test_sigkilled_pytest_leaves_no_process_of_the_engine(
    pytester: pytest.Pytester, engine_how, name, watchdog
) -> None:
    """SIGKILL runs no Python code at all. The kernel's PDEATHSIG kills the server process
    itself; vLLM's EngineCore and Worker (re-parented to init), a container, are stopped by the
    run's watchdog within seconds, or, if the watchdog was killed as well, by the next run's
    sweep, which says so in one line."""
    how, client = engine_how
    pytester.makepyfile(test_serve=KILLED.format(how=how))
    pytester.mkpydir("later").joinpath("test_later.py").write_text("def test_x(): pass\n")
    with open(pytester.path / "inner.log", "w") as out:
        proc = subprocess.Popen(
            inner_pytest_argv("-p", "no:randomly", "test_serve.py"),
            cwd=pytester.path, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    tree: list = []
    try:
        deadline = time.monotonic() + 300
        while not (pytester.path / "server.txt").exists():
            log = (pytester.path / "inner.log").read_text()
            assert proc.poll() is None and time.monotonic() < deadline, log
            time.sleep(0.2)
        tree = process_tree(proc.pid)
        guard = watchdog_of(proc.pid)
        assert guard is not None
        server = [p for p in tree if p.ppid() == proc.pid]
        names = sorted(p.name() for p in tree)
        if how["engine"] == "vllm":  # the shape this is about: more than the API server
            assert {"VLLM::EngineCore", "VLLM::Worker"} <= set(names), names
        if watchdog == "watchdog-killed-too":
            guard.kill()  # a zombie until its parent goes: not waited for
        proc.kill()
        proc.wait()
        killed = time.monotonic()
        if watchdog == "watchdog-alive":
            took = wait_gone([*tree, guard], timeout_s=20)
            assert_nothing_left(name, client, wait_s=20)
            print(f"{names}: all gone {took:.1f} s after SIGKILL (the watchdog)")
        elif how["engine"] == "vllm":
            time.sleep(3)
            assert {p.name() for p in running(tree)} >= {"VLLM::EngineCore", "VLLM::Worker"}
        elif client is not None:
            assert containers_with(client, name)
        later = pytester.runpytest_subprocess("-q", "later")
        later.assert_outcomes(passed=1)
        line = "\n".join(x for x in later.outlines if x.startswith("gpubench: cleaned up"))
        assert running(tree) == []
        assert_nothing_left(name, client, wait_s=0)
        print(f"next run {time.monotonic() - killed:.1f} s after SIGKILL: {line}")
        owner = f"(pid {proc.pid}, started "
        if how["engine"] == "vllm":
            # the API server is there too when the watchdog looks before PDEATHSIG has landed
            assert owner in line and re.search(
                rf"vllm server pid {server[0].pid} \([34] processes: "
                r"VLLM::EngineCore, VLLM::Worker, python( x2)?\)",
                line,
            ), line
            assert ("its watchdog stopped" in line) == (watchdog == "watchdog-alive")
        elif client is not None:
            assert owner in line and "removed llamacpp server container gpubench-llamacpp-" in line
            assert ("its watchdog removed" in line) == (watchdog == "watchdog-alive")
        else:
            assert owner not in line  # PDEATHSIG stopped llama-server: nothing was left
    finally:
        if proc.poll() is None:
            proc.kill()
        for leftover in running(tree):
            leftover.kill()
        if client is not None:
            for container in containers_with(client, name):
                container.remove(force=True)
