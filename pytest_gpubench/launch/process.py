"""Local processes: the server in its own process group, its output piped into the log.

Its own session (``setsid``) keeps a terminal's Ctrl-C from reaching the server before the
plugin has stopped it in order, and lets ``killpg`` reach every worker it forked (vLLM starts
an engine-core process). ``PR_SET_PDEATHSIG`` makes the kernel kill the server itself the
moment pytest dies, even by SIGKILL; what the server started is stopped then by the run's
watchdog, or by the next run's sweep (``reaper``), because each server's session is recorded.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import psutil

from pytest_gpubench.engines.base import Engine
from pytest_gpubench.launch import reaper
from pytest_gpubench.launch.base import DEFAULT_GRACE_S, StartRequest, shell_join
from pytest_gpubench.launch.cleanup import REGISTRY, STOP_NOW
from pytest_gpubench.launch.groups import stop_group
from pytest_gpubench.launch.logs import ServerLog

PR_SET_PDEATHSIG = 1


def _prctl():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()  # resolved before any fork: nothing may be loaded in the child


def _child_setup() -> None:
    os.setsid()
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)


class ProcessHandle:
    def __init__(
        self,
        proc: subprocess.Popen,
        display: str,
        log: ServerLog,
        what: str = "server",
        record_key: str | None = None,
    ) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.ident = f"pid {proc.pid}"
        self.display_command = display
        self.log = log
        self._stopped = False
        self._start = reaper.start_time(proc.pid)
        self._tag = reaper.RUN.tag(record_key)[reaper.ENV_TAG] if record_key else None
        self.record_key = reaper.RUN.add_session(proc.pid, f"{what} pid {proc.pid}", record_key)
        if reaper.RUN.problem:
            log.note(f"{reaper.RUN.problem}: a SIGKILLed pytest may leave this server's workers")
        self._reader = threading.Thread(
            target=log.pump,
            args=(iter(proc.stdout.readline, b""),),
            name=f"gpubench-log-{proc.pid}",
            daemon=True,
        )
        self._reader.start()

    def poll(self) -> int | None:
        return self.proc.poll()

    def _group_members(self) -> list[psutil.Process]:
        """The server, every descendant (including ones that left its process group) and every
        process still in its session (including ones whose parent died: vLLM's EngineCore when
        the API server was killed)."""
        found = {}
        try:
            root = psutil.Process(self.pid)
            found = {p.pid: p for p in [root, *root.children(recursive=True)]}
        except psutil.Error:
            pass
        if self._start is not None:
            for pid in reaper.session_tree(self.pid, self._start, tag=self._tag):
                if pid not in found:
                    with contextlib.suppress(psutil.Error):
                        found[pid] = psutil.Process(pid)
        return list(found.values())

    def stop(self, grace_s: float = DEFAULT_GRACE_S) -> int | None:
        if self._stopped:
            return self.proc.returncode
        members = self._group_members()
        stop_group(self.proc, grace_s, STOP_NOW)
        for member in members:  # stragglers that changed process group
            with contextlib.suppress(psutil.Error):
                member.kill()
        psutil.wait_procs(members, timeout=5)
        code = self.proc.wait(timeout=10)
        self._reader.join(timeout=5)
        self._stopped = True
        REGISTRY.discard(self)
        reaper.RUN.remove(self.record_key)
        self.log.note(f"stopped {self.ident}, exit status {code}")
        return code


class ProcessLauncher:
    """Runs the engine's executable on this machine."""

    name = "process"

    def resolve_executable(self, engine: Engine, explicit: str | Sequence[str] | None) -> list[str]:
        return engine.local_executable(explicit)

    def model_source(self, engine: Engine, source: str) -> str:
        return source

    def bind_host(self, host: str) -> str:
        return host

    def server_port(self, engine: Engine, host_port: int) -> int:
        return host_port

    def start(self, request: StartRequest) -> ProcessHandle:
        argv = [*request.executable, *request.argv]
        key = reaper.RUN.new_key()  # its tag marks the server and all it starts as this run's
        env = {**os.environ, **request.env, **request.secret_env, **reaper.RUN.tag(key)}
        display = shell_join(request.log.redactor.argv(argv))
        cwd = Path(request.extra.get("cwd") or os.getcwd())
        request.log.note(f"command: {display}")
        env_names = sorted({*request.env, *request.secret_env})
        if env_names:
            request.log.note(f"environment set: {', '.join(env_names)} (values not logged)")
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                preexec_fn=_child_setup,
            )
        except OSError as exc:
            from pytest_gpubench.errors import GpubenchError

            raise GpubenchError(f"cannot start {request.engine.name}: {display}: {exc}") from None
        handle = ProcessHandle(proc, display, request.log, f"{request.engine.name} server", key)
        REGISTRY.add(handle)
        request.log.note(f"started {handle.ident}")
        return handle
