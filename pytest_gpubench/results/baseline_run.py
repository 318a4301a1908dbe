"""Baselines inside a pytest run: what to compare with, the per-test regression verdict, saving.

plugin.py calls these from its hooks; the file format and the comparison are baseline.py's,
file locations locations.py's, the saved document document.py's.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from pytest_gpubench.devices.profile import ProfileSet
from pytest_gpubench.devices.select import SelectedDevice
from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.metrics.core import HOST_BUSY_CORES, Metric
from pytest_gpubench.results.atomic import check_writable, exclusive_lock, write_error
from pytest_gpubench.results.baseline import (
    Baseline,
    Finding,
    compare_metrics,
    load,
    merge,
    write_atomic,
)
from pytest_gpubench.results.document import document
from pytest_gpubench.results.locations import baseline_file, find_comparison, measured_gpu
from pytest_gpubench.results.sections import extra_in, read_validity
from pytest_gpubench.selection.fit import Verdict
from pytest_gpubench.selection.markers import tolerances
from pytest_gpubench.settings import Settings


@dataclass
class BaselineRun:
    """The baseline state of one pytest run."""

    compare: Baseline | None = None
    save_path: Path | None = None
    findings: dict[str, list[Finding]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    engines: dict[str, str] = field(default_factory=dict)  # engine -> version, by llm_server
    outcomes: dict[str, str] = field(default_factory=dict)  # nodeid -> passed/failed/...
    kept: dict[str, str] = field(default_factory=dict)  # nodeid -> why it was not saved
    had_entry: set[str] = field(default_factory=set)  # of those, the ones the file holds
    unfinished: list[str] = field(default_factory=list)  # results an interrupt left empty
    written: int = 0  # entries the save wrote
    attempts: dict[str, list[list[Finding]]] = field(default_factory=dict)  # per measurement
    rerun: set[str] = field(default_factory=set)  # suspects waiting for their re-measurement
    # pytest-benchmark's results as JSON, sent by the xdist workers (results/workers.py)
    shipped: list[dict] = field(default_factory=list)
    save_error: str = ""  # why the save failed (a full or read-only disk): one line
    lost: dict[str, str] = field(default_factory=dict)  # nodeid -> why its result never came
    save_invalid: bool = False  # --gpubench-save-invalid: invalid results may be saved too

    def note(self, report: pytest.TestReport) -> None:
        """Track each test's outcome from its reports: only a test whose every phase passed
        may replace its baseline entry."""
        nodeid, now = report.nodeid, self.outcomes.get(report.nodeid)
        if report.failed:
            self.outcomes[nodeid] = "failed" if report.when == "call" else "errored"
        elif report.skipped and now is None:
            self.outcomes[nodeid] = "skipped"
        elif report.when == "call" and report.passed and now is None:
            self.outcomes[nodeid] = "passed"

    def take_rerun(self, nodeid: str) -> bool:
        """Whether ``nodeid`` asked to be measured again (and clear the request)."""
        if nodeid in self.rerun:
            self.rerun.discard(nodeid)
            return True
        return False

    def why_not_saved(self, nodeid: str) -> str | None:
        """None when ``nodeid``'s result may be saved, else the reason."""
        outcome = self.outcomes.get(nodeid)
        if outcome == "passed":
            return None
        return {
            "failed": "this run failed",
            "errored": "this run errored",
            "skipped": "this run skipped it",
            "crashed": "its pytest-xdist worker crashed while running it",
        }.get(outcome or "", "this run did not finish it (interrupted)")

    compare_to: list[Baseline] = field(default_factory=list)


def prepare(settings: Settings, profiles: ProfileSet, device: SelectedDevice) -> BaselineRun:
    """Load the baseline to compare with and vet the save target before anything runs."""
    run = BaselineRun()
    if settings.baseline:
        run.compare = load(baseline_file(settings.baseline, settings, profiles, device.name))
        if run.compare.kind == "published":
            raise GpubenchError(
                f"{run.compare.path} holds published reference figures, not a measured baseline; "
                "compare with them through --gpubench-compare-to or `pytest-gpubench compare`"
            )
    run.compare_to = [find_comparison(name, settings) for name in settings.compare_to]
    if settings.save_baseline:
        path = baseline_file(settings.save_baseline, settings, profiles, device.name)
        here = measured_gpu(device)
        if not settings.force_baseline:
            if device.mismatch and settings.save_baseline is True:
                raise GpubenchError(
                    f"refusing to save {path.name}: it is the baseline of {device.name}, but this "
                    f"machine has {device.detection.summary}; run with --device=auto or pass "
                    "--gpubench-force-baseline"
                )
            if path.exists():
                old = load(path)
                if old.gpu and old.gpu != here:
                    raise GpubenchError(
                        f"refusing to overwrite {path}: it was measured on {old.gpu}, this run "
                        f"is on {here}; save elsewhere (--gpubench-save-baseline=PATH) or pass "
                        "--gpubench-force-baseline"
                    )
        check_writable(path)  # a folder that cannot take the file: say so before the run
        run.save_path = path
        run.save_invalid = settings.save_invalid
    return run


def check(
    run: BaselineRun,
    item: pytest.Item,
    metrics: dict[str, Metric],
    default_tolerance: float,
    reruns_left: int = 0,
) -> str | None:
    """The failure message when ``item`` regressed against the baseline, else None.

    A metric worse than its tolerance and beyond the runs' noise is a suspect. With re-runs
    left, the test is marked for re-measurement (``run.rerun``) and passes for now; on the
    last attempt a suspect of the first attempt is a regression only if every re-run was
    worse than the tolerance too. Without any re-run it is a regression at once.
    """
    if run.compare is None or not metrics:
        return None
    entry = run.compare.entries.get(item.nodeid)
    if entry is None:
        if item.nodeid not in run.missing:
            run.missing.append(item.nodeid)
        return None
    # the tolerance marker as collection parsed it (kept on the item: selection/markers.py)
    found = compare_metrics(metrics, entry.metrics, tolerances(item), default_tolerance)
    history = run.attempts.setdefault(item.nodeid, [])
    history.append(found)
    suspects = {f.metric for f in history[0] if f.verdict == "suspect"}
    if suspects and reruns_left > 0:
        run.rerun.add(item.nodeid)
        return None
    final = [_confirmed(f, history) if f.metric in suspects else f for f in found]
    busy = _host_busy(metrics, entry.metrics)
    if busy:
        final = [
            replace(f, verdict="inconclusive", note=f"{f.note}; {busy}" if f.note else busy)
            if f.verdict == "regression"
            else f
            for f in final
        ]
    run.findings[item.nodeid] = final
    regressions = [f for f in final if f.verdict == "regression"]
    if not regressions:
        return None
    lines = [f"performance regression against {run.compare.path}:"]
    lines += ["  " + f.message for f in regressions]
    return "\n".join(lines)


def _host_busy(current: dict[str, Metric], stored: dict[str, Metric]) -> str:
    """Why a slowdown cannot be judged, when this run's host was busy with other work and the
    baseline's was not; empty otherwise."""
    now = current.get("host_busy_cores")
    then = stored.get("host_busy_cores")
    if now is None or now.value < HOST_BUSY_CORES:
        return ""
    if then is not None and then.value >= HOST_BUSY_CORES:
        return ""  # both runs shared the host alike
    was = f" ({then.value:.1f} at baseline)" if then is not None else ""
    return (
        f"host busy: other processes used {now.value:.1f} cores during the run{was}; "
        "re-run on a quiet machine"
    )


def _confirmed(last: Finding, history: list[list[Finding]]) -> Finding:
    """The verdict on a first-attempt suspect, from every attempt's finding on that metric."""
    seq = [f for attempt in history for f in attempt if f.metric == last.metric]
    changes = ", then ".join(f"{f.change:+.1%}" for f in seq)
    if len(seq) == 1:
        return replace(last, verdict="regression", note="not re-measured")
    runs = f"{len(seq) - 1} re-run{'s' if len(seq) > 2 else ''}"
    if all(f.worse > f.tolerance for f in seq[1:]):
        return replace(last, verdict="regression", note=f"confirmed by {runs}: {changes}")
    return replace(last, verdict="noise", note=f"not confirmed by {runs}: {changes}")


def invalid_results(session: Any, shipped: list[dict]) -> dict[str, str]:
    """nodeid -> why it is not saved, for each result whose validity verdict is invalid
    (metrics/validity.py): a baseline of a result that measured something else would judge
    every later run against it."""
    found = [(b.fullname, b.extra_info) for b in getattr(session, "benchmarks", [])]
    found += [(b["fullname"], extra_in(b)) for b in shipped]
    out = {}
    for nodeid, extra in found:
        validity = read_validity(extra)
        if validity is not None and not validity.valid:
            out[nodeid] = (
                f"its result is invalid ({'; '.join(validity.reasons)}); "
                "--gpubench-save-invalid saves it anyway"
            )
    return out


def save(
    config: pytest.Config,
    run: BaselineRun,
    device: SelectedDevice,
    verdicts: dict[str, Verdict],
) -> Path | None:
    """Merge this run's passed results into the baseline file; None when nothing was saved.

    The load, merge and write happen under an exclusive lock on the file's lock file, so two
    runs saving to one baseline at once both land. A disk error leaves the stored file as it
    was and is kept in ``run.save_error`` (the summary prints it), not raised.
    """
    if run.save_path is None:
        return None
    session = getattr(config, "_benchmarksession", None)
    names = [b.fullname for b in getattr(session, "benchmarks", [])]
    for nodeid in names + [b["fullname"] for b in run.shipped] + run.unfinished:
        reason = run.why_not_saved(nodeid)
        if reason is not None:
            run.kept[nodeid] = reason
    if not run.save_invalid:
        for nodeid, reason in invalid_results(session, run.shipped).items():
            run.kept.setdefault(nodeid, reason)
    doc = document(
        config, run.engines, device, verdicts, keep=lambda n: n not in run.kept, shipped=run.shipped
    )
    try:
        with exclusive_lock(run.save_path):
            stored = load(run.save_path) if run.save_path.exists() else None
            if stored is not None:
                run.had_entry.update(n for n in run.kept if n in stored.entries)
            if doc is None:
                return None
            write_atomic(run.save_path, merge(stored.document if stored else None, doc))
    except OSError as exc:
        run.save_error = str(write_error(run.save_path, exc))
        return None
    run.written = len(doc["benchmarks"])
    return run.save_path
