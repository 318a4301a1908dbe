"""The server's own stalls during a run, from the log lines it wrote meanwhile.

``serve_bench`` notes the size of the server's log file before a measured run and reads what
was added after it; the engine (``Engine.log_stalls``, ``pytest_gpubench.engines.stalls``)
finds the time its main loop spent blocking every request. The result is the metric

    server_stall_fraction = stalled seconds / seconds the run's log lines span

(both from the server's clock), with the seconds and the count in its spread, and a
``ServingWarning`` naming the cause and the setting that turns it off once it passes
``STALL_WARN_FRACTION``: a result that is bound by a server setting, not by the GPU, should
say so. Servers the plugin did not start (no log file) and engines whose log says nothing of
the kind record nothing.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_gpubench.engines.stalls import Stall, StallReport
from pytest_gpubench.metrics.bound import STALL_METRIC, STALL_SHARE
from pytest_gpubench.metrics.core import Metric
from pytest_gpubench.serving.metrics import metric

#: a stall that takes 5% of the server's time costs ~5% of throughput, more than a timing's
#: noise on a quiet GPU box; the H200's default llama-server stalled 6% of the time at one
#: user (a ~120 ms copy per ~1.7 s request) and 59% of a capacity test
STALL_WARN_FRACTION = STALL_SHARE


def _log_path(server: Any) -> Path | None:
    path = getattr(server, "log_path", None)
    return Path(path) if path else None


def log_mark(server: Any) -> int | None:
    """Where the server's log ends now (bytes), or None without a log file."""
    path = _log_path(server)
    if path is None:
        return None
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def read_stalls(server: Any, engine: Any, mark: int | None) -> StallReport | None:
    """The engine's stalls in the log written since ``mark``; None when there is no log, no
    engine that reads one, or nothing in it (an engine's parser never fails a benchmark)."""
    ask = getattr(engine, "log_stalls", None)
    path = _log_path(server)
    if mark is None or ask is None or path is None:
        return None
    try:
        with open(path, "rb") as f:
            f.seek(mark)
            text = f.read().decode("utf-8", errors="replace")
        return ask(text)
    except Exception:
        return None


def stall_metric(reports: Sequence[StallReport | None]) -> Metric | None:
    """``server_stall_fraction`` over the runs (rounds) that have a report: their stalled
    seconds over the seconds their log lines span; None when none has one."""
    found = [r for r in reports if r is not None]
    if not found:
        return None
    span = sum(r.span_s for r in found)
    seconds = sum(r.seconds for r in found)
    steps = sum(s.steps for r in found for s in r.stalls)
    slow = sum(s.slow for r in found for s in r.stalls)
    fraction = min(1.0, seconds / span) if span > 0 else 0.0
    return metric(
        STALL_METRIC,
        fraction,
        {
            "stalled_s": round(seconds, 3),
            "span_s": round(span, 3),
            "steps": float(steps),
            "slow_steps": float(slow),
        },
    )


def stall_message(
    stalled: Metric | None,
    reports: Sequence[StallReport | None],
    per_point: Sequence[tuple[str, float]] = (),
) -> str | None:
    """One warning when the server stalled at least ``STALL_WARN_FRACTION`` of the run (or of
    a sweep's points, each point's share in ``per_point``): how long, of what, and the setting
    that turns it off."""
    if stalled is None or stalled.value < STALL_WARN_FRACTION:
        return None
    causes: dict[str, list[Stall]] = {}
    for r in reports:
        for s in r.stalls if r is not None else ():
            causes.setdefault(s.cause, []).append(s)
    parts = []
    for cause, stalls in causes.items():
        seconds = sum(s.seconds for s in stalls)
        slow = sum(s.slow for s in stalls)
        steps = f"{seconds:.1f} s, {slow} copies and evictions of 1 ms or more"
        parts.append(f"{cause}: {steps}; {stalls[0].advice}")
    spread = stalled.spread
    points = (
        " (per point: " + ", ".join(f"{label} {share:.0%}" for label, share in per_point) + ")"
        if per_point
        else ""
    )
    return (
        f"the server stalled {stalled.value:.0%} of the run ({spread['stalled_s']:.1f} of "
        f"{spread['span_s']:.1f} s in its own log){points}, every request waiting, so these "
        f"numbers measure that stall, not the hardware: {'; '.join(parts)}"
    )
