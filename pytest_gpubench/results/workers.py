"""pytest-xdist: what a worker sends the controller, and how the controller merges it.

Under ``pytest -n N`` every worker measures its share of the tests. As each test finishes,
the worker packs what the end-of-run work needs about it onto the test's last report (its
teardown report, which xdist sends to the controller at once): the results-table record
(metrics, headline, notes, bound verdict), the fit verdict, the outcome and baseline findings,
and pytest-benchmark's result as JSON. A worker that dies (``os._exit``, the OOM killer) thus
loses only the test it was running, which xdist reports as crashed and the summary names. At
its session's end a worker packs the whole of it again into ``config.workeroutput`` (plus the
results an interrupt left unfinished); merging is by test, so a result sent twice counts once.
The controller then saves the baseline and prints the sections once, as a serial run does. No
worker writes a baseline.

``--gpubench-gpu-per-worker`` pins worker ``gwN`` to GPU N (``CUDA_VISIBLE_DEVICES``) and
judges its fit against that one GPU (``devices.select.one_gpu``).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from typing import Any

import pytest

from pytest_gpubench.devices.detect import Detection
from pytest_gpubench.devices.select import SelectedDevice, one_gpu
from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.results.baseline import Finding
from pytest_gpubench.results.baseline_run import BaselineRun
from pytest_gpubench.results.document import has_data
from pytest_gpubench.results.record import RECORDS, Recorded
from pytest_gpubench.results.sections import bound_from, extra_of, parse_metric, write_worker_gpu
from pytest_gpubench.selection.fit import Need, Verdict

KEY = "gpubench"
REPORT_KEY = "gpubench_results"  # the attribute of a teardown report that carries a test's pack


def worker_id(config: pytest.Config) -> str | None:
    """``gw0``, ``gw1``... on an xdist worker; None on the controller or in a serial run."""
    workerinput = getattr(config, "workerinput", None)
    return workerinput.get("workerid") if workerinput else None


def is_controller(config: pytest.Config) -> bool:
    """The xdist controller: it runs no test, it receives every worker's results."""
    return worker_id(config) is None and config.getoption("dist", "no") != "no"


def worker_count(config: pytest.Config) -> int:
    """How many workers this run starts (on the controller) or started (on a worker)."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput:
        return int(workerinput.get("workercount") or 1)
    return len(config.getoption("tx", None) or []) if is_controller(config) else 0


def run_serially(config: pytest.Config) -> None:
    """Turn -n off (before xdist's own configure, which would start the workers): for
    --gpubench-plan, which only collects, and whose table needs the collected items here."""
    config.option.dist = "no"
    config.option.tx = []
    config.option.numprocesses = 0


def pin(config: pytest.Config, device: SelectedDevice) -> tuple[SelectedDevice, dict[str, Any]]:
    """On worker gwN: make GPU N the only one CUDA sees and judge against it alone.

    Returns the worker's device and what each of its results records about the GPU. A
    ``CUDA_VISIBLE_DEVICES`` already set (``2,3``) is honoured: gw0 takes its first entry.
    """
    wid = worker_id(config)
    if wid is None:
        return device, {}
    position = int(wid.removeprefix("gw"))
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")]
    visible = [v for v in visible if v]
    if visible and position >= len(visible):
        raise GpubenchError(
            f"--gpubench-gpu-per-worker: worker {wid} has no GPU: CUDA_VISIBLE_DEVICES lists "
            f"{len(visible)}; run with -n {len(visible)} or fewer"
        )
    chosen = visible[position] if visible else str(position)
    nvml_index = int(chosen) if chosen.isdigit() else position
    pinned = one_gpu(device, nvml_index)
    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # CUDA's numbering = NVML's
    os.environ["CUDA_VISIBLE_DEVICES"] = chosen
    gpus = pinned.detection.gpus
    return pinned, {
        "worker": wid,
        "index": nvml_index,
        "cuda_visible_devices": chosen,
        "name": gpus[0].name if gpus else pinned.profile.display_name,
        "profile": pinned.name,
    }


def check_gpu_count(config: pytest.Config, device: SelectedDevice) -> None:
    """On the controller, before any worker starts: one GPU per worker must be there."""
    workers = worker_count(config)
    count = gpu_count(device.detection) if device.detection.gpus else device.profile.gpu_count
    if not is_controller(config):
        raise GpubenchError(
            "--gpubench-gpu-per-worker needs pytest-xdist workers: run with -n N "
            f"(one worker per GPU; {count} here)"
        )
    if workers > count:
        fewer = f"run with -n {count}" if count else "it needs a machine with GPUs"
        raise GpubenchError(
            f"--gpubench-gpu-per-worker: -n {workers} starts {workers} workers but "
            f"{device.name} has {count} GPU{'s' if count != 1 else ''}; {fewer}"
        )


def xdist_missing(parser: pytest.Parser) -> bool:
    """Whether ``-n`` is free because pytest-xdist is not installed (then the plugin declares
    it, only to say what to install instead of pytest's "unrecognized arguments")."""
    import importlib.util

    taken = {flag for group in [parser._anonymous, *parser._groups] for o in group.options
             for flag in o.names()}  # fmt: skip
    return "-n" not in taken and importlib.util.find_spec("xdist") is None


def gpu_count(detection: Detection) -> int:
    """The GPUs CUDA will show: NVML's, limited by an existing CUDA_VISIBLE_DEVICES."""
    visible = [v for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    return min(len(detection.gpus), len(visible)) if visible else len(detection.gpus)


def enable_benchmarks(config: pytest.Config) -> None:
    """On a worker: measure. pytest-benchmark turns itself off under xdist ("cannot be performed
    reliably in a parallelized environment"); for GPU benchmarks one worker per GPU is the point,
    and a shared host shows in ``host_busy_cores``. An explicit --benchmark-disable stays. Its
    own --benchmark-json/--benchmark-save would be written by every worker to one file: left out
    (the controller's baseline and results table hold every worker's results)."""
    session = getattr(config, "_benchmarksession", None)
    if session is None or not session.xdist_warning:
        return
    session.disabled = session.xdist_warning = False
    session.json = session.save = session.autosave = None


def header_lines(config: pytest.Config, per_worker: bool, device: SelectedDevice) -> list[str]:
    if not is_controller(config):
        return []
    n = worker_count(config)
    if per_worker:
        return [f"gpubench: one GPU per worker: gw0..gw{n - 1} on GPUs 0..{n - 1} of {device.name}"]
    return [
        f"gpubench: {n} pytest-xdist workers share {device.name}: their timings interfere; "
        "--gpubench-gpu-per-worker gives each its own GPU"
    ]


# --- the worker's pack ------------------------------------------------------------------------


def _verdict(v: Verdict) -> dict[str, Any]:
    return asdict(v)


def _unverdict(d: dict[str, Any]) -> Verdict:
    need = d.get("need")
    return Verdict(**{**d, "need": Need(**need) if need else None})


def _record(r: Recorded, position: int, gpu: dict[str, Any]) -> dict[str, Any]:
    return {
        "gpu": f"{gpu['index']} ({gpu['worker']})" if gpu else r.gpu,
        "nodeid": r.nodeid,
        "position": position,
        "metrics": {name: m.as_dict() for name, m in r.metrics.items()},
        "headline": r.headline,
        "notes": r.notes,
        "bound": r.bound.as_dict() if r.bound else None,
        "invalid": r.invalid,
    }


def _unrecord(d: dict[str, Any]) -> Recorded:
    here = f"worker result {d['nodeid']}"
    metrics = {
        name: parse_metric(here, "metrics", name, raw)  # type: ignore[arg-type]
        for name, raw in d["metrics"].items()
    }
    bound = bound_from(d.get("bound"))
    return Recorded(
        d["nodeid"], metrics, list(d["headline"]), list(d["notes"]), bound, d["gpu"],
        invalid=str(d.get("invalid") or ""),
    )  # fmt: skip


def _benchmarks_json(config: pytest.Config, gpu: dict[str, Any],
                     only: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """pytest-benchmark's results of this worker (or of test ``only``) as JSON, tagged with
    the worker's GPU."""
    session = getattr(config, "_benchmarksession", None)
    mine = [
        b
        for b in getattr(session, "benchmarks", [])
        if has_data(b) and (only is None or b.fullname == only)
    ]
    if not mine:
        return []
    doc = config.hook.pytest_benchmark_generate_json(
        config=config, benchmarks=mine, include_data=False, machine_info={}, commit_info={}
    )
    for bench in doc["benchmarks"]:
        write_worker_gpu(extra_of(bench), gpu or {"worker": worker_id(config)})
    return doc["benchmarks"]


def _payload(config: pytest.Config, run: BaselineRun, verdicts: dict[str, Verdict],
             gpu: dict[str, Any], order: dict[str, int], nodeids: set[str],
             benchmarks: list[dict[str, Any]]) -> str:  # fmt: skip
    """What the controller needs about the tests ``nodeids``, as JSON."""
    records = config.stash.get(RECORDS, {})
    payload = {
        "worker": worker_id(config),
        "gpu": gpu,
        "records": [
            _record(r, order.get(n, len(order)), gpu) for n, r in records.items() if n in nodeids
        ],
        "verdicts": {n: _verdict(v) for n, v in verdicts.items() if n in nodeids},
        "positions": {n: order.get(n, len(order)) for n in nodeids},
        "outcomes": {n: o for n, o in run.outcomes.items() if n in nodeids},
        "findings": {n: [asdict(f) for f in fs] for n, fs in run.findings.items() if n in nodeids},
        "missing": [n for n in run.missing if n in nodeids],
        "engines": run.engines,
        "unfinished": [n for n in run.unfinished if n in nodeids],
        "benchmarks": benchmarks,
    }
    return json.dumps(payload, default=str)


def ship_test(item: pytest.Item, run: BaselineRun, verdicts: dict[str, Verdict],
              gpu: dict[str, Any]) -> str | None:  # fmt: skip
    """On a worker, for a test's teardown report: the test's results for the controller (None
    in a serial run). Sent with the report, so they reach the controller as the test ends."""
    config = item.config
    if worker_id(config) is None:
        return None
    items = item.session.items
    order = {item.nodeid: items.index(item) if item in items else len(items)}
    return _payload(config, run, verdicts, gpu, order, {item.nodeid},
                    _benchmarks_json(config, gpu, only=item.nodeid))  # fmt: skip


def pack(config: pytest.Config, items: list[pytest.Item], run: BaselineRun,
         verdicts: dict[str, Verdict], gpu: dict[str, Any]) -> None:  # fmt: skip
    """Put this worker's results into ``config.workeroutput`` for the controller."""
    output = getattr(config, "workeroutput", None)
    if output is None:
        return
    order = {item.nodeid: i for i, item in enumerate(items)}
    ran = set(run.outcomes) | set(run.unfinished) | set(config.stash.get(RECORDS, {}))
    output[KEY] = _payload(config, run, verdicts, gpu, order, ran, _benchmarks_json(config, gpu))


# --- the controller's merge -------------------------------------------------------------------


class Merged:
    """Every worker's pack, merged on the controller; ``apply`` puts it into the run's state."""

    def __init__(self) -> None:
        self.positions: dict[str, int] = {}
        self.gpus: dict[str, dict[str, Any]] = {}  # worker -> its pinned GPU

    def add(self, config: pytest.Config, run: BaselineRun, verdicts: dict[str, Verdict],
            workeroutput: dict[str, Any] | None) -> None:  # fmt: skip
        """Merge one worker's end-of-session pack (absent when the worker crashed)."""
        self.merge(config, run, verdicts, (workeroutput or {}).get(KEY))

    def merge(self, config: pytest.Config, run: BaselineRun, verdicts: dict[str, Verdict],
              text: str | None) -> None:  # fmt: skip
        """Merge one pack, of one test (``ship_test``) or a whole worker (``pack``); a test
        merged twice keeps its last copy."""
        if not text:
            return
        payload = json.loads(text)
        if payload.get("gpu"):
            self.gpus[payload["worker"]] = payload["gpu"]
        self.positions.update(payload["positions"])
        records = config.stash.setdefault(RECORDS, {})
        for raw in payload["records"]:
            self.positions.setdefault(raw["nodeid"], raw["position"])
            records[raw["nodeid"]] = _unrecord(raw)
        for nodeid, raw in payload["verdicts"].items():
            verdicts[nodeid] = _unverdict(raw)
        run.outcomes.update(payload["outcomes"])
        for nodeid, found in payload["findings"].items():
            run.findings[nodeid] = [Finding(**f) for f in found]
        run.missing += [n for n in payload["missing"] if n not in run.missing]
        run.engines.update(payload["engines"])
        run.unfinished += [n for n in payload["unfinished"] if n not in run.unfinished]
        arrived = {b["fullname"] for b in payload["benchmarks"]}
        run.shipped[:] = [b for b in run.shipped if b["fullname"] not in arrived]
        run.shipped += payload["benchmarks"]
        self.order(config, run, verdicts)

    def lost(self, run: BaselineRun, report: pytest.TestReport) -> None:
        """xdist's report of a test whose worker died while running it (its phase is "???"):
        its result is lost; the summary names it."""
        if report.failed and report.when not in ("setup", "call", "teardown"):
            run.outcomes[report.nodeid] = "crashed"
            run.lost[report.nodeid] = str(report.longrepr)

    def order(self, config: pytest.Config, run: BaselineRun, verdicts: dict[str, Verdict]) -> None:
        """Collection order, as a serial run lists them, whichever worker finished first."""

        def pos(nodeid: str) -> int:
            return self.positions.get(nodeid, len(self.positions))

        records = config.stash.get(RECORDS, {})
        sorted_records = sorted(records.items(), key=lambda kv: pos(kv[0]))
        records.clear()
        records.update(sorted_records)
        sorted_verdicts = sorted(verdicts.items(), key=lambda kv: pos(kv[0]))
        verdicts.clear()
        verdicts.update(sorted_verdicts)
        run.shipped.sort(key=lambda b: pos(b["fullname"]))
        for name in ("findings", "outcomes"):
            table = getattr(run, name)
            ordered = sorted(table.items(), key=lambda kv: pos(kv[0]))
            table.clear()
            table.update(ordered)
        run.missing.sort(key=pos)


class Receiver:
    """On the xdist controller: each test's results, merged as its teardown report arrives
    (before other plugins see the report: the pack is taken off it), and xdist's report of a
    test whose worker crashed, noted as lost."""

    def __init__(self, config: pytest.Config, run: BaselineRun, verdicts: dict[str, Verdict],
                 merged: Merged) -> None:  # fmt: skip
        self.config, self.run, self.verdicts, self.merged = config, run, verdicts, merged

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        text = report.__dict__.pop(REPORT_KEY, None)
        self.merged.merge(self.config, self.run, self.verdicts, text)
        self.merged.lost(self.run, report)
