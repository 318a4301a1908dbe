"""What one test records in pytest-benchmark's ``extra_info``: each section's shape, its one
writer and its one reader.

pytest-benchmark stores a free-form ``extra_info`` dict per result and writes it into
``--benchmark-json``, autosaves and our baselines as-is. Every section the plugin puts there is
spelled here, so the writers (the ``gpubench`` fixture, ``serve_bench``, the workloads, the
baseline document, the xdist pack) and the readers (baselines, the bound verdict, pareto,
stored sweep points) agree on one shape without reaching into dicts by key. The shapes are the
file format: files written before keep loading, so a section only gains optional keys.

=============== =============================================== ===========================
section         shape                                           written by
=============== =============================================== ===========================
metrics         ``{name: Metric.as_dict()}``                    every recorded metric
gpubench        ``{key, date, [source, conditions, matches]}``  the saved document
gpu             the xdist worker's pinned GPU ``{index, ...}``  results/workers.py
telemetry       why GPU telemetry is off (a string)             bench/gpubench.py
bound           ``metrics.bound.Verdict.as_dict()``             bench/gpubench.py
validity        ``metrics.validity.Validity.as_dict()``         serve_bench (serving/validity.py)
placement       ``engines.placement.Placement.as_dict()`` + fit serve_bench
decode_batch    ``DecodeBatch.as_dict()``                       serve_bench
serving         the serve_bench settings (``ServingInfo``)      serve_bench (and sweeps)
requests        per-request rows                                serve_bench
sweep/capacity  settings and ``points`` (``SweepPoint.as_dict``,  serve_bench.sweep/.capacity
                each with its own ``bound`` where judged)
workload        ``WorkloadInfo.as_dict()``                      the in-process workloads
=============== =============================================== ===========================

Writers take the result's ``extra_info`` mapping (``benchmark.extra_info``, or ``extra_of``
of a benchmark in a JSON document); readers take the same mapping from a loaded file and
tolerate a missing section (None or empty), never a wrongly typed one where a file is
validated (``read_meta``, ``read_metrics`` raise ``GpubenchError`` naming the file and field).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.metrics.bound import Verdict
from pytest_gpubench.metrics.core import Metric
from pytest_gpubench.metrics.validity import Validity

EXTRA_INFO = "extra_info"
METRICS = "metrics"
META = "gpubench"
WORKER_GPU = "gpu"
TELEMETRY = "telemetry"
BOUND = "bound"
VALIDITY = "validity"
PLACEMENT = "placement"
DECODE_BATCH = "decode_batch"
SERVING = "serving"
REQUESTS = "requests"
SWEEP = "sweep"
CAPACITY = "capacity"
WORKLOAD = "workload"
#: the sections that carry sweep points, in the order a reader takes them
POINT_SECTIONS = (SWEEP, CAPACITY)
#: serve_bench settings that differ per point of a sweep: its ``serving`` section leaves them out
PER_POINT_SETTINGS = (
    "concurrency",
    "num_prompts",
    "warmups",
    "request_rate",
    "requests_used",
    "prompt_draw",
)


# --- the mapping itself -------------------------------------------------------------------------


def extra_of(bench: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """The ``extra_info`` of one benchmark of a JSON document, created when absent (to write)."""
    return bench.setdefault(EXTRA_INFO, {})


def extra_in(bench: Any) -> Mapping[str, Any]:
    """The ``extra_info`` of one benchmark of a loaded document; empty when absent or not an
    object (to read leniently, as the report commands do)."""
    extra = bench.get(EXTRA_INFO) if isinstance(bench, Mapping) else None
    return extra if isinstance(extra, Mapping) else {}


def _section(extra: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    value = extra.get(name)
    return value if isinstance(value, Mapping) else None


# --- validation of a loaded file -----------------------------------------------------------------


def bad(path: Path | str, where: str, problem: str) -> GpubenchError:
    """One line naming the file, the field and the problem."""
    return GpubenchError(f"{path}: {where}: {problem}")


def kind_of(value: Any) -> str:
    """How a JSON value reads in an error message: 'a string', 'a list', 'null', ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    names = {str: "a string", list: "a list", dict: "an object", int: "a number", float: "a number"}
    return names.get(type(value), type(value).__name__)


def json_object(path: Path | str, where: str, value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object; absent or null is an empty one; else an error."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad(path, where, f"must be an object, got {kind_of(value)}")
    return value


def json_text(path: Path | str, where: str, value: Any, default: str = "") -> str:
    """``value`` when it is a string; absent or null is ``default``; else an error."""
    if value is None:
        return default
    if not isinstance(value, str):
        raise bad(path, where, f"must be a string, got {kind_of(value)}")
    return value


# --- metrics ------------------------------------------------------------------------------------


def write_metric(extra: MutableMapping[str, Any], metric: Metric) -> None:
    """Store one metric (a later one of the same name replaces it)."""
    extra.setdefault(METRICS, {})[metric.name] = metric.as_dict()


def parse_metric(path: Path | str, where: str, name: str, raw: Any) -> Metric:
    """One stored metric, validated: a wrong shape is an error naming the file and field."""
    if not isinstance(raw, dict):
        raise bad(path, where, f"metric {name!r} must be an object with value and unit")
    for key in ("value", "unit", "higher_is_better"):
        if key not in raw:
            raise bad(path, where, f"metric {name!r} has no {key!r}")
    if not isinstance(raw["higher_is_better"], bool):
        raise bad(path, where, f"metric {name!r} field 'higher_is_better' must be true or false")
    if not isinstance(raw["unit"], str) or not raw["unit"]:
        raise bad(path, where, f"metric {name!r} field 'unit' must be a non-empty string")
    spread = raw.get("spread") or {}
    if not isinstance(spread, dict):
        raise bad(path, where, f"metric {name!r} field 'spread' must be an object")
    try:
        return Metric(
            name,
            raw["value"],
            raw["unit"],
            raw["higher_is_better"],
            {
                k: v
                for k, v in spread.items()
                if isinstance(v, int | float) and not isinstance(v, bool)
            },
            str(raw.get("description", "")),
        )
    except GpubenchError as exc:
        raise bad(path, where, str(exc)) from None


def read_metrics(
    extra: Mapping[str, Any], path: Path | str = "<result>", where: str = EXTRA_INFO
) -> dict[str, Metric]:
    """Every stored metric of one result, validated (``where`` names the result in errors)."""
    raw = json_object(path, f"{where}.{METRICS}", extra.get(METRICS))
    return {
        name: parse_metric(path, f"{where}.{METRICS}.{name}", name, value)
        for name, value in raw.items()
    }


def metric_value(raw: Any) -> float | None:
    """A stored metric's value (or a bare number) when it is a finite number, else None: the
    lenient read of points and hand-written references."""
    v = raw.get("value") if isinstance(raw, Mapping) else raw
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


# --- gpubench: which test an entry is ------------------------------------------------------------


@dataclass(frozen=True)
class EntryMeta:
    """``extra_info.gpubench``: the entry's key (the test's node id), when it was measured,
    and for a published figure its source, conditions and the benchmark of ours it matches."""

    key: str
    date: str = ""
    source: str = ""
    conditions: dict[str, Any] = field(default_factory=dict)
    matches: str = ""


def write_meta(extra: MutableMapping[str, Any], key: str, date: str) -> None:
    """Name a measured entry: its key and its date (a saved document does this per entry)."""
    extra[META] = {"key": key, "date": date}


def read_meta(
    extra: Mapping[str, Any],
    fullname: str,
    path: Path | str = "<result>",
    where: str = EXTRA_INFO,
    date: str = "",
) -> EntryMeta:
    """The entry's ``gpubench`` section, validated; the key defaults to pytest-benchmark's
    ``fullname`` and the date to the document's (``date``)."""
    at = f"{where}.{META}"
    meta = json_object(path, at, extra.get(META))
    return EntryMeta(
        json_text(path, f"{at}.key", meta.get("key")) or fullname,
        json_text(path, f"{at}.date", meta.get("date")) or date,
        json_text(path, f"{at}.source", meta.get("source")),
        dict(json_object(path, f"{at}.conditions", meta.get("conditions"))),
        json_text(path, f"{at}.matches", meta.get("matches")),
    )


def entry_key(bench: Any) -> str:
    """The key of one benchmark of a document (lenient: its fullname when it names none)."""
    meta = _section(extra_in(bench), META) or {}
    fullname = bench.get("fullname") if isinstance(bench, Mapping) else None
    return str(meta.get("key") or fullname or "")


# --- gpu: the xdist worker's GPU ------------------------------------------------------------------


def write_worker_gpu(extra: MutableMapping[str, Any], gpu: Mapping[str, Any]) -> None:
    """Under --gpubench-gpu-per-worker, the GPU the worker ran on (else ``{"worker": id}``)."""
    extra[WORKER_GPU] = dict(gpu)


def read_worker_gpu(extra: Mapping[str, Any]) -> dict[str, Any]:
    return dict(_section(extra, WORKER_GPU) or {})


# --- telemetry ------------------------------------------------------------------------------------


def write_telemetry_note(extra: MutableMapping[str, Any], note: str) -> None:
    """Why GPU telemetry was off for this result (host memory was recorded instead)."""
    extra[TELEMETRY] = note


def read_telemetry_note(extra: Mapping[str, Any]) -> str:
    note = extra.get(TELEMETRY)
    return note if isinstance(note, str) else ""


# --- bound ----------------------------------------------------------------------------------------


def write_bound(extra: MutableMapping[str, Any], verdict: Verdict) -> None:
    extra[BOUND] = verdict.as_dict()


def bound_from(raw: Any) -> Verdict | None:
    """A stored verdict (``Verdict.as_dict()``) back as a ``Verdict``; None when absent."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("bound"), str):
        return None
    return Verdict(str(raw["bound"]), str(raw.get("reason") or ""), str(raw.get("advice") or ""))


def read_bound(extra: Mapping[str, Any]) -> Verdict | None:
    return bound_from(extra.get(BOUND))


# --- validity -------------------------------------------------------------------------------------


def write_validity(extra: MutableMapping[str, Any], validity: Validity) -> None:
    """Whether the result measured what it claims (metrics/validity.py), with its reasons."""
    extra[VALIDITY] = validity.as_dict()


def read_validity(extra: Mapping[str, Any]) -> Validity | None:
    """The stored verdict; None when absent (files written before it, results not judged)."""
    raw = _section(extra, VALIDITY)
    if raw is None or not isinstance(raw.get("valid"), bool):
        return None
    reasons = raw.get("reasons")
    said = tuple(str(r) for r in reasons) if isinstance(reasons, list) else ()
    return Validity(raw["valid"], said)


# --- placement ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlacementRecord:
    """``extra_info.placement``: where the engine put the model (``Placement.as_dict()``, with
    the fit estimate's figures beside it). ``fields`` is the whole section as stored."""

    offloaded: bool
    describe: str
    fields: dict[str, Any]

    @property
    def offload(self) -> str | None:
        """What the bound verdict names when the run was offloaded, else None."""
        if not self.offloaded:
            return None
        return self.describe or "layers or KV cache on the CPU"


def write_placement(extra: MutableMapping[str, Any], placement: Mapping[str, Any]) -> None:
    """``placement`` is ``Placement.as_dict()`` (it carries ``offloaded`` and ``describe``)
    updated with the estimate's fields."""
    extra[PLACEMENT] = dict(placement)


def read_placement(extra: Mapping[str, Any]) -> PlacementRecord | None:
    raw = _section(extra, PLACEMENT)
    if raw is None:
        return None
    return PlacementRecord(bool(raw.get("offloaded")), str(raw.get("describe") or ""), dict(raw))


# --- decode_batch ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecodeBatch:
    """``extra_info.decode_batch``: the batch a server really decoded at (serving's
    ``decode_batch``), the figures the decode roofline was judged at."""

    mean_batch: float
    decode_tok_s: float
    context: int
    decoding_s: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "mean_batch": round(self.mean_batch, 3),
            "decode_tok_s": self.decode_tok_s,
            "context": self.context,
            "decoding_s": self.decoding_s,
        }


def write_decode_batch(extra: MutableMapping[str, Any], batch: DecodeBatch) -> None:
    extra[DECODE_BATCH] = batch.as_dict()


def read_decode_batch(extra: Mapping[str, Any]) -> DecodeBatch | None:
    raw = _section(extra, DECODE_BATCH)
    if raw is None:
        return None
    try:
        return DecodeBatch(
            float(raw["mean_batch"]),
            float(raw["decode_tok_s"]),
            int(raw["context"]),
            float(raw["decoding_s"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


# --- serving and requests -------------------------------------------------------------------------


class ServingInfo(TypedDict, total=False):
    """``extra_info.serving``: the settings serve_bench ran with. A sweep's entry leaves out
    ``PER_POINT_SETTINGS`` (each point records its own). Optional keys: a key serve_bench
    adds later reaches the file as it is."""

    engine: str | None
    model: str | None
    endpoint: str
    input_len: int | None
    output_len: int | None
    range_ratio: float
    prefix_len: int
    images: Any
    preset: str | None
    prompts_file: str | None
    num_prompts: int | None
    concurrency: int | None
    warmups: int
    request_rate: float | None
    arrival: str
    burstiness: float
    duration_s: float | None
    rounds: int
    precision: float | None
    ignore_eos: bool
    requests_used: int
    stopped_by: str | None
    slo_ms: dict[str, float] | None
    turns_not_sent: int


def write_serving(extra: MutableMapping[str, Any], info: Mapping[str, Any]) -> None:
    """One serve_bench run's settings and outcome (``ServingInfo``)."""
    extra[SERVING] = dict(info)


def write_sweep_serving(extra: MutableMapping[str, Any], info: Mapping[str, Any]) -> None:
    """A sweep's (or capacity search's) common settings: its first point's, without what
    differs per point."""
    extra[SERVING] = {k: v for k, v in info.items() if k not in PER_POINT_SETTINGS}


def read_serving(extra: Mapping[str, Any]) -> ServingInfo:
    return ServingInfo(**(_section(extra, SERVING) or {}))  # type: ignore[typeddict-item]


def write_requests(extra: MutableMapping[str, Any], rows: Iterable[Mapping[str, Any]]) -> None:
    """Per-request rows (tokens in and out, latencies), for debugging a result."""
    extra[REQUESTS] = [dict(r) for r in rows]


def read_requests(extra: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = extra.get(REQUESTS)
    return [dict(r) for r in rows if isinstance(r, Mapping)] if isinstance(rows, list) else []


# --- sweep and capacity ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PointRecord:
    """One stored point of a sweep or capacity search (``SweepPoint.as_dict()``), read
    leniently: ``raw`` is the point as stored, for a reader that needs all of it. ``bound``:
    the point's own bound verdict (metrics/point.py), None in files written before points
    carried one or on runs without GPU telemetry."""

    label: str
    concurrency: int | None
    metrics: Mapping[str, Any]  # name -> the stored metric (``Metric.as_dict()``)
    raw: Mapping[str, Any]
    bound: Verdict | None = None

    def value(self, name: str) -> float | None:
        """The finite value of one of the point's metrics, else None."""
        return metric_value(self.metrics.get(name))


def point_from(raw: Any) -> PointRecord | None:
    """A stored point; None when it is not an object."""
    if not isinstance(raw, Mapping):
        return None
    metrics = raw.get("metrics")
    c = raw.get("concurrency")
    return PointRecord(
        str(raw.get("label") or ""),
        c if isinstance(c, int) and not isinstance(c, bool) else None,
        metrics if isinstance(metrics, Mapping) else {},
        raw,
        bound_from(raw.get("bound")),
    )


@dataclass(frozen=True)
class SweepRecord:
    """``extra_info.sweep`` or ``extra_info.capacity``: the settings of a sweep (axis,
    stopped_by, gpus, slo_ms, ...) or a capacity search (also max_concurrency, percentile,
    search, known, ...) and its points. ``fields`` is the whole section as stored."""

    kind: str  # SWEEP or CAPACITY
    points: list[PointRecord]
    slo_ms: dict[str, float]
    max_concurrency: int | None  # capacity: the users that met the SLO
    percentile: int | None  # capacity: the percentile the SLO was judged at
    fields: Mapping[str, Any]


def write_sweep(extra: MutableMapping[str, Any], info: Mapping[str, Any]) -> None:
    """A sweep's settings and its points (``points``: each ``SweepPoint.as_dict()``)."""
    extra[SWEEP] = dict(info)


def write_capacity(extra: MutableMapping[str, Any], info: Mapping[str, Any]) -> None:
    """A capacity search's answer, settings and points (as ``write_sweep``)."""
    extra[CAPACITY] = dict(info)


def _whole(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def read_sweep(extra: Mapping[str, Any], kind: str = SWEEP) -> SweepRecord | None:
    """One of the two point sections (``kind``: SWEEP or CAPACITY); None when absent."""
    raw = _section(extra, kind)
    if raw is None:
        return None
    points = raw.get("points")
    slo = raw.get("slo_ms")
    return SweepRecord(
        kind,
        [p for p in map(point_from, points if isinstance(points, list) else []) if p],
        {k: float(v) for k, v in slo.items() if metric_value(v)}
        if isinstance(slo, Mapping)
        else {},
        _whole(raw.get("max_concurrency")) if kind == CAPACITY else None,
        _whole(raw.get("percentile")) if kind == CAPACITY else None,
        raw,
    )


def read_sweeps(extra: Mapping[str, Any]) -> list[SweepRecord]:
    """The sweep and the capacity search of one result, those it has, in that order."""
    return [r for r in (read_sweep(extra, k) for k in POINT_SECTIONS) if r is not None]


def read_points(extra: Mapping[str, Any]) -> list[PointRecord]:
    """Every stored point of one result: its sweep's, then its capacity search's."""
    return [p for record in read_sweeps(extra) for p in record.points]


# --- workload -------------------------------------------------------------------------------------


@dataclass
class WorkloadInfo:
    """``extra_info.workload``: facts about one in-process workload run."""

    workload: str
    device: str
    dtype: str
    source: dict[str, Any]
    settings: dict[str, Any]
    facts: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def write_workload(extra: MutableMapping[str, Any], info: WorkloadInfo) -> None:
    extra[WORKLOAD] = info.as_dict()


def read_workload(extra: Mapping[str, Any]) -> WorkloadInfo | None:
    raw = _section(extra, WORKLOAD)
    if raw is None:
        return None
    parts = {k: raw.get(k) for k in ("source", "settings", "facts")}
    return WorkloadInfo(
        str(raw.get("workload") or ""),
        str(raw.get("device") or ""),
        str(raw.get("dtype") or ""),
        *(dict(v) if isinstance(v, Mapping) else {} for v in parts.values()),
    )
