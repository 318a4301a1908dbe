"""Server logs: one file per server, written through the redactor, with an in-memory tail.

Files go under ``--gpubench-log-dir`` or the pytest cache (``.pytest_cache/d/gpubench-servers``)
so they outlive the run; errors and the terminal summary print their paths.
"""

from __future__ import annotations

import itertools
import os
import re
import threading
import time
from collections import deque
from pathlib import Path

from pytest_gpubench.launch.secrets import Redactor

TAIL_LINES = 50
#: lines kept from a server's start, in memory, whether or not it has a log file: engines say
#: where they put the model while loading it (llama.cpp's "offloaded 20/33 layers to GPU" came
#: at line ~150 of a 2,000-line verbose log on the H200), and the placement is read from them
HEAD_LINES = 2000
_counter = itertools.count(1)


def log_file(log_dir: Path, engine: str, model: str, launcher: str) -> Path:
    """A new, empty log file of its own for one server start, created here.

    ``<date>-<time>[-<xdist worker>]-<pid>-<counter>-<engine>-<model>-<launcher>.log``: two
    pytest runs started in the same second from one folder count from 1 each, so the pid
    keeps their files apart (one shared file mixed two servers' output, and the stall and
    placement readers, which read the server's file, then saw the other server's lines). The
    file is created exclusively, so a name that exists anyway is never appended to.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", model)[:60]
    stamp = time.strftime("%Y%m%d-%H%M%S")
    # pytest-xdist workers count from 1 each: the worker's name keeps their files apart
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    stamp += f"-{worker}" if worker else ""
    while True:
        path = (
            log_dir / f"{stamp}-{os.getpid()}-{next(_counter):03d}-{engine}-{safe}-{launcher}.log"
        )
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue  # taken (a reused pid, the same second): the next number
        return path


class ServerLog:
    """Appends redacted lines to the log file and keeps the last lines for error messages."""

    def __init__(self, path: Path | None, redactor: Redactor) -> None:
        self.path = path
        self.redactor = redactor
        self._tail: deque[str] = deque(maxlen=TAIL_LINES * 4)
        self._head: list[str] = []
        self._lock = threading.Lock()
        self._fh = open(path, "a", encoding="utf-8", errors="replace") if path else None  # noqa: SIM115

    def write_line(self, line: str, keep: bool = True) -> None:
        line = self.redactor.redact(line.rstrip("\r\n"))
        with self._lock:
            if keep:
                self._tail.append(line)
                if len(self._head) < HEAD_LINES:
                    self._head.append(line)
            if self._fh:
                self._fh.write(line + "\n")
                self._fh.flush()

    def note(self, text: str) -> None:
        """A line from the plugin itself (prefixed ``#``), not counted in the server's tail."""
        self.write_line(f"# gpubench: {text}", keep=False)

    def pump(self, chunks, decode: bool = True) -> None:
        """Copy a stream of bytes (a pipe, Docker's log stream) into the log line by line."""
        pending = ""
        for chunk in chunks:
            text = chunk.decode("utf-8", "replace") if decode else chunk
            pending += text
            *lines, pending = pending.split("\n")
            for line in lines:
                self.write_line(line)
        if pending:
            self.write_line(pending)

    def head(self) -> list[str]:
        """The server's first lines (``HEAD_LINES``), redacted, kept without a log file too."""
        with self._lock:
            return list(self._head)

    def tail(self, n: int = TAIL_LINES) -> list[str]:
        with self._lock:
            return list(self._tail)[-n:]

    def close(self) -> None:
        with self._lock:
            if self._fh:
                self._fh.close()
                self._fh = None
