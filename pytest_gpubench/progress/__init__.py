"""Progress of long work (server start-up, serving requests, workload steps, builds), shown on
the terminal the way pytest users expect, and logged.

Where the lines go is the plugin's decision, made once per run: ``install`` (from
``pytest_configure``) gives a sink that writes through pytest's terminal reporter with
capture suspended, so the line shows under pytest's default capture (the old check of
``sys.__stderr__.isatty()`` never did: under capture a user on a terminal saw nothing). A
progress line is written on a line of its own and erased when the work ends, so a ``-v``
line is rewritten whole by pytest rather than overwritten. It is off when the output is not
a terminal, under ``-q``, or with ``--gpubench-progress=off``. ``say`` writes a permanent
line instead (a finished sweep point, say): on a terminal and in a piped log alike, since a
long search that is killed must leave what it measured where the user looks; off under
``-q`` and with ``--gpubench-progress=off``. Every start and end is logged
through ``logging`` (logger ``pytest_gpubench``) either way, so ``--log-cli-level=INFO`` and
``caplog`` see the plugin's work.

Library code (launch, serving, workloads) only calls ``task(...)``; it never imports pytest's
reporter or the plugin.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("pytest_gpubench")

#: the least time between two redraws of a line: a progress bar must not cost the benchmark
REDRAW_S = 0.2


@dataclass
class Sink:
    """Writes one transient line at a time to a terminal."""

    write: Callable[[str], None]  # text without a newline, at the start of the line
    suspended: Callable[[], contextlib.AbstractContextManager[Any]]  # capture off meanwhile
    newline: Callable[[], None]  # end whatever line pytest had begun (the -v test id)
    width: int = 80
    live: bool = True  # transient lines (a terminal); False: only ``say``'s permanent lines


_sink: Sink | None = None
_open: list[Task] = []  # innermost last: what ``note`` updates


def install(sink: Sink | None) -> None:
    """Where progress lines go for this run (None: nowhere; log lines still go out)."""
    global _sink
    _sink = sink


@dataclass
class Task:
    """One piece of long work: ``update`` it, and it redraws at most every REDRAW_S."""

    label: str
    total: float | None = None
    unit: str = ""
    done: float = 0.0
    detail: str = ""
    start: float = field(default_factory=time.monotonic)
    drawn_at: float = 0.0
    on_screen: bool = False

    def update(self, advance: float = 0.0, detail: str | None = None) -> None:
        self.done += advance
        if detail is not None:
            self.detail = detail
        now = time.monotonic()
        if now - self.drawn_at >= REDRAW_S:
            self.drawn_at = now
            self._draw()

    def text(self, width: int = 80) -> str:
        """The line as tqdm formats a meter (count, bar, elapsed, rate), then the detail."""
        from tqdm import tqdm

        elapsed = time.monotonic() - self.start
        if self.total is None and not self.unit:  # waiting, not counting: the time is the news
            meter = f"gpubench: {self.label} [{tqdm.format_interval(elapsed)}]"
            return f"{meter} {self.detail}" if self.detail else meter
        done: float = int(self.done) if float(self.done).is_integer() else self.done
        meter = tqdm.format_meter(
            done,
            self.total,
            elapsed,
            ncols=width if self.total else None,
            prefix=f"gpubench: {self.label}",
            unit=self.unit or "it",
        )
        return f"{meter} {self.detail}" if self.detail else meter

    def _draw(self) -> None:
        sink = _sink
        if sink is None or not sink.live:
            return
        with sink.suspended():
            if not self.on_screen:
                sink.newline()
                self.on_screen = True
            line = self.text(sink.width - 1)[: sink.width - 1]
            sink.write("\r" + line.ljust(sink.width - 1))

    def close(self) -> None:
        sink = _sink
        if sink is not None and sink.live and self.on_screen:
            with sink.suspended():
                sink.write("\r" + " " * (sink.width - 1) + "\r")


@contextlib.contextmanager
def task(label: str, total: float | None = None, unit: str = "") -> Iterator[Task]:
    """``with task("starting vllm server") as t: ... t.update(1, detail=...)``; logs the
    start and the end with the time it took."""
    t = Task(label, total, unit)
    log.info("%s ...", label)
    _open.append(t)
    try:
        yield t
    finally:
        _open.remove(t)
        t.close()
        log.info("%s: %.1f s", label, time.monotonic() - t.start)


def say(line: str) -> None:
    """A permanent line, ``gpubench: <line>``, written above any open progress line (which is
    redrawn after it) and logged at INFO."""
    log.info("%s", line)
    sink = _sink
    if sink is None:
        return
    with sink.suspended():
        sink.newline()
        if sink.live and any(t.on_screen for t in _open):
            sink.write("\r" + " " * (sink.width - 1) + "\r")
        sink.write(f"gpubench: {line}\n")
    for t in _open:
        t.drawn_at = 0.0  # redraw on the next update


def note(detail: str) -> None:
    """Show ``detail`` on the innermost open task's line (a training step inside a timed
    round); nothing when no task is open."""
    if _open:
        _open[-1].update(detail=detail)
