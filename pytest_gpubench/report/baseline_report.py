"""Terminal lines about baselines: where one was saved, improvements, missing entries."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_gpubench.devices.select import SelectedDevice
from pytest_gpubench.results.baseline import from_document
from pytest_gpubench.results.baseline_run import BaselineRun
from pytest_gpubench.results.document import document
from pytest_gpubench.selection.fit import Verdict


def baseline_lines(run: BaselineRun, saved: str) -> list[str]:
    lines = [f"gpubench: no result for {nodeid}: {why}" for nodeid, why in run.lost.items()]
    if run.compare is not None:
        improved = [
            (nodeid, f)
            for nodeid, found in run.findings.items()
            for f in found
            if f.verdict == "improvement"
        ]
        noisy = [
            (nodeid, f)
            for nodeid, found in run.findings.items()
            for f in found
            if f.verdict == "noise"
        ]
        regressed = sum(
            any(f.verdict == "regression" for f in found) for found in run.findings.values()
        )
        lines.append(
            f"gpubench baseline {run.compare.path}: {len(run.findings)} compared, "
            f"{regressed} regressed, {len(improved)} metric(s) improved, "
            f"{len(run.missing)} without a baseline entry"
        )
        lines += [f"  improved: {nodeid}: {f.message}" for nodeid, f in improved]
        lines += [f"  worse but within noise: {nodeid}: {f.message}" for nodeid, f in noisy]
        lines += [
            f"  inconclusive: {nodeid}: {f.message}"
            for nodeid, found in run.findings.items()
            for f in found
            if f.verdict == "inconclusive"
        ]
        lines += [f"  no baseline entry: {nodeid}" for nodeid in run.missing]
    if saved:
        lines.append(f"gpubench baseline saved: {saved}")
    if run.save_error:
        lines.append(f"gpubench baseline NOT saved, the stored file is unchanged: {run.save_error}")
    if run.save_path is not None:
        if not saved and not run.kept and not run.save_error:
            lines.append(f"gpubench baseline not saved ({run.save_path}): no benchmark passed")
        for nodeid, why in sorted(run.kept.items()):
            what = "kept the stored entry" if nodeid in run.had_entry else "not saved"
            lines.append(f"  {what}: {why}: {nodeid}")
    return lines


def comparison_lines(
    config: pytest.Config, run: BaselineRun, device: SelectedDevice, verdicts: dict[str, Verdict]
) -> list[str]:
    """This run (first column) against the --gpubench-compare-to devices."""
    from pytest_gpubench.report.compare import (  # pandas: only here
        comparison_frame,
        shared_rows,
        to_text,
    )

    doc = document(config, run.engines, device, verdicts, shipped=run.shipped)
    if doc is None:
        return ["no benchmark ran, nothing to compare"]
    current = from_document(Path(f"this run ({device.name})"), doc)
    current.device["profile"] = f"this run ({device.name})"
    # the rows this run shares with a reference, as `pytest-gpubench compare` shows by default:
    # a one-test run against a reference of 190 rows is one row, not 190 "not run" ones
    frame = comparison_frame([current, *run.compare_to])
    shared = shared_rows(frame)
    if shared.empty:
        return ["no benchmark of this run is in the compared files"]
    return to_text(shared)
