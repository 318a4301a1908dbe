"""Baseline files: schema, validation on load, atomic writes, merging, and the regression check.

A baseline is a pytest-benchmark JSON document (so ``--benchmark-compare=baselines/h100.json``
works on it as-is) extended with:

- ``benchmarks[i].extra_info.metrics``: each metric's value, unit, direction and spread (this
  is where the ``gpubench`` fixture records them in every pytest-benchmark result);
- ``benchmarks[i].extra_info.gpubench``: ``key`` (the test's node id; the device is the file,
  not part of the key), ``date``, and for published figures ``source`` and ``conditions``;
- top-level ``gpubench``: ``schema``, ``kind`` ("measured" or "published"), ``device``
  (profile, detected GPU, driver, CUDA), ``environment`` (plugin and package versions, engines,
  commit) and ``skipped`` (benchmarks that did not fit or did not run, with the reason).

Each ``extra_info`` section (these two and the ones serving, workloads and the bound verdict
add) is read and written through ``results/sections.py``; a loaded ``Entry`` keeps its whole
``extra_info`` for the readers of the others (pareto, stored sweep points).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.metrics.core import UNGATED, Metric
from pytest_gpubench.results.atomic import write_text_atomic
from pytest_gpubench.results.sections import (
    META,
    bad,
    entry_key,
    extra_in,
    json_object,
    json_text,
    kind_of,
    parse_metric,
    read_meta,
    read_metrics,
)

__all__ = ["Baseline", "Entry", "Finding", "load", "merge", "parse_metric", "write_atomic"]

SCHEMA_VERSION = 1
KINDS = ("measured", "published")


@dataclass
class Entry:
    key: str
    metrics: dict[str, Metric]
    date: str = ""
    source: str = ""
    conditions: dict[str, Any] = field(default_factory=dict)
    # For a published figure: the benchmark of ours that runs the same workload (the seed
    # repository's FLUX.2-klein run and benchmarks/...::test_flux2_klein_4b), so a comparison
    # lines the published figure up with a measured one.
    matches: str = ""
    # the entry's whole extra_info as stored, for readers of its other sections (sections.py)
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def row_key(self) -> str:
        return self.matches or self.key


@dataclass
class Baseline:
    path: Path
    kind: str
    device: dict[str, Any]
    environment: dict[str, Any]
    entries: dict[str, Entry]
    skipped: dict[str, dict[str, Any]]
    document: dict[str, Any]

    @property
    def profile(self) -> str:
        return str(self.device.get("profile") or self.path.stem)

    @property
    def gpu(self) -> str:
        return str(self.device.get("gpu") or "")

    @property
    def label(self) -> str:
        return self.profile + (" (published)" if self.kind == "published" else "")


def from_document(path: Path, doc: Any) -> Baseline:
    """Validate a baseline, a published reference or a plain pytest-benchmark JSON file.

    Every field is checked for its JSON type as it is read, so a file of the wrong shape is
    one ``GpubenchError`` naming the file and the field, never an exception from inside.
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list):
        raise bad(
            path, "top level", "not a pytest-benchmark or gpubench JSON file (no 'benchmarks' list)"
        )
    ours = doc.get("gpubench")
    if ours is None:  # a plain --benchmark-json / autosave file: take what it has
        machine = json_object(path, "machine_info", doc.get("machine_info"))
        gpu = json_object(path, "machine_info.gpu", machine.get("gpu"))
        ours = {"schema": SCHEMA_VERSION, "kind": "measured", "device": {}, "skipped": {}}
        ours["device"] = {
            "profile": json_text(path, "machine_info.gpu.profile", gpu.get("profile")) or path.stem,
            "gpu": json_text(path, "machine_info.gpu.name", gpu.get("name")),
        }
    if not isinstance(ours, dict):
        raise bad(path, "gpubench", f"must be an object, got {kind_of(ours)}")
    if ours.get("schema") != SCHEMA_VERSION:
        raise bad(
            path,
            "gpubench.schema",
            f"schema version {ours.get('schema')!r} is not supported (this plugin reads "
            f"{SCHEMA_VERSION}); re-save it with --gpubench-save-baseline",
        )
    if ours.get("kind") not in KINDS:
        raise bad(path, "gpubench.kind", f"must be one of {', '.join(KINDS)}")
    device = ours.get("device")
    if not isinstance(device, dict) or not device.get("profile"):
        raise bad(path, "gpubench.device.profile", "missing: name the device profile")
    json_text(path, "gpubench.device.profile", device["profile"])
    json_text(path, "gpubench.device.gpu", device.get("gpu"))
    environment = json_object(path, "gpubench.environment", ours.get("environment"))
    datetime = json_text(path, "datetime", doc.get("datetime"))
    entries: dict[str, Entry] = {}
    for i, bench in enumerate(doc["benchmarks"]):
        where = f"benchmarks[{i}]"
        if not isinstance(bench, dict) or not isinstance(bench.get("fullname"), str):
            raise bad(path, where, "each benchmark needs a 'fullname'")
        extra = json_object(path, f"{where}.extra_info", bench.get("extra_info"))
        meta = read_meta(extra, bench["fullname"], path, f"{where}.extra_info", datetime)
        metrics = read_metrics(extra, path, f"{where}.extra_info")
        entries[meta.key] = Entry(
            meta.key, metrics, meta.date, meta.source, meta.conditions, meta.matches, extra
        )
    skipped = ours.get("skipped") or {}
    if not isinstance(skipped, dict):
        raise bad(path, "gpubench.skipped", "must be an object of key -> {reason}")
    for key, skip in skipped.items():
        if not isinstance(skip, dict):
            raise bad(
                path,
                f"gpubench.skipped.{key}",
                f"must be an object with a reason, got {kind_of(skip)}",
            )
    return Baseline(
        path,
        ours["kind"],
        device,
        dict(environment),
        entries,
        skipped,
        doc,
    )


def load(path: str | os.PathLike[str]) -> Baseline:
    """Read and validate one file; every problem is a ``GpubenchError`` naming the file."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise GpubenchError(
            f"baseline {p} does not exist; record one with --gpubench-save-baseline"
        ) from None
    except IsADirectoryError:
        raise GpubenchError(f"baseline {p} is a folder; give a .json file") from None
    except OSError as exc:
        raise GpubenchError(f"baseline {p} cannot be read: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise bad(
            p,
            f"line {line}",
            f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}); JSON files are UTF-8",
        ) from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise bad(p, f"line {exc.lineno}", f"not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise bad(p, "top level", "not valid JSON (nested too deeply)") from None
    found = from_document(p, doc)
    _refuse_duplicates(p, doc["benchmarks"])
    return found


def _refuse_duplicates(path: Path, benchmarks: list[dict[str, Any]]) -> None:
    """A file holds each entry once: with two, one of them silently won (the last), so the
    gate compared against a number the file's reader could not tell from the other."""
    first: dict[str, int] = {}
    for i, bench in enumerate(benchmarks):
        key = entry_key(bench)
        if key in first:
            raise bad(
                path,
                f"benchmarks[{i}]",
                f"entry {key!r} is already benchmarks[{first[key]}]; a file holds each entry "
                "once: delete one of them",
            )
        first[key] = i


def write_atomic(path: Path, document: dict[str, Any]) -> None:
    """Write a baseline atomically (see ``write_text_atomic``)."""
    write_text_atomic(path, json.dumps(document, indent=2) + "\n")


def merge(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """New results replace old ones of the same key; entries not run this time are kept."""
    if old is None:
        return new
    new_keys = {extra_in(b)[META]["key"] for b in new["benchmarks"]}
    kept = [b for b in old["benchmarks"] if entry_key(b) not in new_keys]
    merged = dict(new)
    merged["benchmarks"] = kept + new["benchmarks"]
    skipped = dict((old.get("gpubench") or {}).get("skipped") or {})
    skipped.update(new["gpubench"].get("skipped") or {})
    for key in new_keys:
        skipped.pop(key, None)
    merged["gpubench"] = dict(new["gpubench"], skipped=skipped)
    return merged


# --- regression check -------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    metric: str
    current: float
    baseline: float
    change: float  # relative change, signed: (current - baseline) / baseline
    tolerance: float
    # "regression" (worse beyond tolerance and noise, confirmed where a re-run was possible),
    # "suspect" (so far: worse beyond both, awaiting its confirmation re-run), "noise" (worse
    # than the tolerance but within the measured noise, or not confirmed by the re-run),
    # "inconclusive" (a confirmed slowdown on a host busy with other work), "improvement", "ok"
    verdict: str
    unit: str
    noise: float = 0.0  # relative difference the two runs' spreads explain (~2 standard errors)
    note: str = ""  # how the verdict was reached: "confirmed by 1 re-run: -23.1%, then -21.4%"
    higher_is_better: bool = True

    @property
    def worse(self) -> float:
        """How much worse than the baseline, as a fraction (negative: better)."""
        return -self.change if self.higher_is_better else self.change

    @property
    def message(self) -> str:
        extra = ""
        if self.verdict == "noise" and not self.note:
            extra = f", within noise: the runs' spreads explain {self.noise:.0%}"
        if self.note:
            extra += f", {self.note}"
        return (
            f"{self.metric} {self.current:.4g} vs baseline {self.baseline:.4g} {self.unit} "
            f"({self.change:+.1%}, tolerance {self.tolerance:.0%}{extra})"
        )


def standard_error(m: Metric) -> float | None:
    """The standard error of ``m``'s value, relative to it, from its stored 95% interval
    (half-width / Student's t for the samples the interval was built from: its blocks,
    ``ci_blocks``, where it records them - a serving run's output tok/s is one round cut into
    blocks - else its rounds or its sample count); None where no interval is known."""
    low, high = m.spread.get("ci95_low"), m.spread.get("ci95_high")
    if low is None or high is None or not m.value:
        return None
    n = int(m.spread.get("ci_blocks") or m.spread.get("rounds") or m.spread.get("n") or 0)
    if n >= 2:
        from scipy import stats as scipy_stats  # only when a baseline is compared

        t = float(scipy_stats.t.ppf(0.975, n - 1))
    else:
        t = 1.96
    return (float(high) - float(low)) / 2 / t / abs(m.value)


def noise_between(current: Metric, baseline: Metric) -> float:
    """The relative difference the two runs' own spreads explain: two standard errors of the
    difference of the means (a two-sample test at about 95%). Interval overlap, the test
    used before, is far more lenient: a 23% slowdown passed it with three rounds a side."""
    errors = [e for e in (standard_error(current), standard_error(baseline)) if e is not None]
    return 2 * math.sqrt(sum(e * e for e in errors)) if errors else 0.0


def compare_metrics(
    current: dict[str, Metric],
    baseline: dict[str, Metric],
    tolerances: dict[str, float],
    default_tolerance: float,
) -> list[Finding]:
    """Direction-aware, noise-aware comparison of the metrics both sides have.

    Worse than the tolerance is a ``suspect`` regression only when it is also beyond the noise
    the two runs' spreads explain; the caller confirms a suspect by re-measuring. Metrics of
    the harness (``UNGATED``) are compared only when the test names them in its tolerances.
    """
    findings = []
    for name, cur in current.items():
        base = baseline.get(name)
        if base is None or base.value == 0:
            continue
        if name in UNGATED and name not in tolerances:
            continue
        tol = tolerances.get(name, default_tolerance)
        change = (cur.value - base.value) / abs(base.value)
        worse = -change if cur.higher_is_better else change
        noise = noise_between(cur, base)
        if worse > tol:
            verdict = "suspect" if worse > noise else "noise"
        elif -worse > tol:
            verdict = "improvement"
        else:
            verdict = "ok"
        findings.append(
            Finding(
                name, cur.value, base.value, change, tol, verdict, cur.unit, noise,
                higher_is_better=cur.higher_is_better,
            )
        )  # fmt: skip
    return findings
