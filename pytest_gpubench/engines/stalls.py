"""Time a server's own log shows it stalled: work in its main loop that blocks every request.

A throughput or TTFT figure can be bound by neither the GPU nor the harness but by something
the server does between steps. On the H200 (2026-12-01, docs/h200.md) llama-server's host
prompt cache did that: on every new request its main loop copied idle slots' KV state to host
memory (~120 ms for a 1,000-token prompt of the 8B) and, once the 8 GiB cache was full,
evicted entries to make room (~127 ms each). Its log showed 205.7 s of such stalls in a
350.2 s run; output fell from 301 tok/s at 4 users to 158 at 8, where the same server with the
cache off made 372.

Each engine module holds its own parser (``llamacpp.stalls_from_log``), with where its format
was read; each is pure (the log text written during one run in, a ``StallReport`` or None out)
and tolerant: no timestamped lines, nothing claimed. The engines call them from
``Engine.log_stalls``; nothing here switches on engine names.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stall:
    """One cause of stalls in one run: how long in all, in how many logged steps (``slow``:
    those of ``BLOCKING_S`` or more), and what turns it off."""

    cause: str
    seconds: float
    steps: int
    slow: int
    advice: str


@dataclass(frozen=True)
class StallReport:
    """The stalls in the log lines one run wrote, and the time those lines span (the same
    clock, so their ratio needs no alignment with the client's)."""

    span_s: float
    stalls: tuple[Stall, ...]

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.stalls)


#: a step counted in ``Stall.slow``: most "saving prompt" lines find the prompt cached
#: already ("prompt is already in the cache, skipping") and take microseconds
BLOCKING_S = 0.001
