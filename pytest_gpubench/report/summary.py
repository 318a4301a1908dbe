"""The plugin's end-of-run sections, as (title, lines), shortened under -q and -qq.

One place decides what a run prints after its tests, so the terminal hook only writes it out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pytest_gpubench.devices.select import SelectedDevice
from pytest_gpubench.report.fit_report import did_not_fit_lines
from pytest_gpubench.report.results import results_lines
from pytest_gpubench.results.record import Recorded
from pytest_gpubench.selection.fit import Verdict

Section = tuple[str, list[str]]


def measured_on(device: SelectedDevice) -> str:
    """Where the numbers were measured: the detected hardware, and the profile judged against
    when it is not that hardware (``--device=spark`` on a CPU machine)."""
    if not device.mismatch:
        return f"on {device.name}"
    gpus = device.detection.gpus
    here = f"{len(gpus)}x {gpus[0].name}" if len(gpus) > 1 else gpus[0].name if gpus else ""
    return f"measured on {here or 'the CPU (no GPU)'}, fit judged as {device.name}"


def results_section(
    recorded: Sequence[Recorded],
    device: SelectedDevice,
    verbosity: int,
    gpus: Mapping[str, Mapping[str, Any]] | None = None,
    xdist: bool = False,
) -> list[Section]:
    """``gpus``: under --gpubench-gpu-per-worker, each xdist worker's GPU; ``xdist``: the
    workers' results, with no pytest-benchmark table above (it prints none under -n)."""
    table = results_lines(recorded)
    if not table:
        return []
    title = f"gpubench results {measured_on(device)}"
    if gpus:
        pinned = ", ".join(f"{w} GPU {g['index']} {g['name']}" for w, g in sorted(gpus.items()))
        title += f", one GPU per worker ({pinned})"
    if verbosity <= -2:
        count = sum(len(r.headline) for r in recorded)
        where = measured_on(device)
        n = len(recorded)
        text = f"gpubench: {n} benchmark{'s' if n != 1 else ''}, {count} results {where}"
        return [("", [text + " (run without -qq for the table)"])]
    note = [
        "(pytest-benchmark's table above times whole rounds in seconds; this one gives each "
        "benchmark's own metrics per unit of work)"
    ]
    return [(title, table + ([] if verbosity < 0 or xdist else note))]


def did_not_fit_section(
    verdicts: Iterable[Verdict], device: SelectedDevice, verbosity: int
) -> list[Section]:
    verdicts = list(verdicts)
    lines = did_not_fit_lines(verdicts)
    if not lines:
        return []
    if verbosity < 0:
        misses = sum(v.did_not_fit for v in verdicts)
        return [("", [f"gpubench: {misses} benchmarks did not fit on {device.name} "
                      "(run without -q for the table)"])]  # fmt: skip
    return [(f"gpubench: did not fit on {device.name}", lines)]
