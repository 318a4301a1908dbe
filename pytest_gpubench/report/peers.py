"""Other tools' result files beside ours: ``vllm bench serve --save-result`` JSON,
``llama-bench -o json`` / ``-o jsonl`` output and GuideLLM's JSON report.

Each file becomes a ``Baseline`` of kind ``peer`` (its column is labelled with the tool and the
file, e.g. "vllm bench serve (result.json)"), so ``compare_files`` and ``pytest-gpubench
compare`` put it beside our baselines. The format is recognised from the JSON's shape; a file
that is none of the known shapes, nor ours, is one error naming the file and what was expected.

Their fields map onto our metric names through the definitions table in
``serving/metrics.py`` (``vllm_field``, ``guidellm_field``, ``llama_bench_field``), converted to
our units; a field a file lacks is left out, never estimated.

Keys, one entry per run or test (files of one tool from several machines line up by key):

- vLLM: ``vllm:<model_id>@c<max_concurrency>/in<I>-out<O>``, ``@r<rate>`` for a finite
  request rate (``@c4-r2`` with both, ``@rinf`` with neither), I and O the mean input and
  output tokens per request. ``--append-result`` files (one JSON per line) hold several runs.
- GuideLLM: ``guidellm:<model>@<load>/in<I>-out<O>``, one entry per benchmark of the report;
  load ``c<streams>`` (concurrent; synchronous is ``c1``), ``r<rate>`` (constant),
  ``poisson-r<rate>``, ``throughput``.
- llama-bench: ``llama-bench:<model file stem>/<test>``, tests named as llama-bench names them
  (``pp512``, ``tg128``, ``pp512+tg128``), then ``[name=value, ...]`` for the parameters that
  vary between the file's tests (``-t 4,8``). In a depth sweep (``-d``) the metric names carry
  the depth (``decode_tok_s.d4096``), as ``serve_bench.depth_sweep`` records them.

To line a peer's entry up with a benchmark of ours: ``--as PEER_KEY NODEID`` on the command
line, ``compare_files(paths, matches={PEER_KEY: NODEID})`` in Python (PEER_KEY exact or a
glob), or ``vllm bench serve --metadata gpubench_key=NODEID`` when the run is made.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.metrics.core import Metric
from pytest_gpubench.results import baseline
from pytest_gpubench.results.baseline import Baseline, Entry
from pytest_gpubench.serving.metrics import SERVING_METRICS, ServingMetricDef

PEER_KIND = "peer"
#: ``vllm bench serve --metadata gpubench_key=NODEID``: the benchmark of ours the run matches
MATCH_FIELD = "gpubench_key"

VLLM = "vllm bench serve"
LLAMA_BENCH = "llama-bench"
GUIDELLM = "GuideLLM"

EXPECTED = (
    "not a pytest-benchmark or gpubench JSON file (no 'benchmarks' list), nor a peer's result "
    "file: `vllm bench serve --save-result` JSON (duration, completed, request_throughput, ...), "
    "`llama-bench -o json|jsonl` (tests with n_prompt, n_gen, avg_ts) or a GuideLLM JSON "
    "report (benchmarks of type_ generative_benchmark)"
)


@dataclass
class PeerBaseline(Baseline):
    tool: str = ""

    @property
    def label(self) -> str:
        return f"{self.tool} ({self.path.name})"


# --- finding the format ---------------------------------------------------------------------


def load(path: str | Path) -> Baseline:
    """Any file compare reads: a peer's result file, else ours (``results.baseline.load``)."""
    peer = load_peer(path)
    return peer if peer is not None else baseline.load(path)


def load_peer(path: str | Path) -> PeerBaseline | None:
    """The peer's file as a Baseline; None for our own files and for what is not JSON (then
    ``results.baseline.load`` reports the problem the way it does for ours)."""
    p = Path(path)
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError):
        return None
    doc = parse(text)
    if doc is None:
        return None
    return from_peer_document(p, doc)


def parse(text: str) -> Any:
    """A JSON document, or a JSONL file as the list of its objects; None if it is neither."""
    try:
        return json.loads(text)
    except RecursionError:  # nested too deeply: results.baseline.load names the file
        return None
    except json.JSONDecodeError:
        pass
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        return None
    try:
        docs = [json.loads(line) for line in lines]
    except (json.JSONDecodeError, RecursionError):
        return None
    return docs if all(isinstance(d, dict) for d in docs) else None


def _is_vllm(doc: Any) -> bool:
    return isinstance(doc, dict) and {"duration", "completed", "request_throughput"} <= set(doc)


def _is_llama_bench(doc: Any) -> bool:
    return isinstance(doc, dict) and {"n_prompt", "n_gen", "avg_ts"} <= set(doc)


def _is_guidellm(doc: dict[str, Any]) -> bool:
    benches = doc.get("benchmarks")
    if not isinstance(benches, list) or "gpubench" in doc:
        return False
    if "guidellm_version" in (doc.get("metadata") or {}):
        return True
    return bool(benches) and all(
        isinstance(b, dict) and b.get("type_") == "generative_benchmark" for b in benches
    )


def detect(doc: Any) -> str | None:
    """'ours', a tool's name, or None for a shape none of them writes."""
    if isinstance(doc, dict):
        benches = doc.get("benchmarks")
        if _is_guidellm(doc):
            return GUIDELLM
        if "gpubench" in doc or isinstance(benches, list):
            return "ours"
        if _is_vllm(doc):
            return VLLM
        return None
    if isinstance(doc, list) and doc:
        if all(_is_llama_bench(d) for d in doc):
            return LLAMA_BENCH
        if all(_is_vllm(d) for d in doc):
            return VLLM
    return None


def _describe(doc: Any) -> str:
    if isinstance(doc, dict):
        keys = list(doc)
        shown = ", ".join(str(k) for k in keys[:8]) + (", ..." if len(keys) > 8 else "")
        return f"an object with keys {shown}" if keys else "an empty object"
    if isinstance(doc, list):
        return f"a list of {len(doc)} item(s)" + (
            f", the first {_describe(doc[0])}" if doc and isinstance(doc[0], dict) else ""
        )
    return f"a JSON {type(doc).__name__}"


def from_peer_document(path: Path, doc: Any) -> PeerBaseline | None:
    tool = detect(doc)
    if tool == "ours":
        return None
    if tool is None:
        raise GpubenchError(f"{path}: top level: {EXPECTED}; found {_describe(doc)}")
    try:
        peer = READERS[tool](path, doc)
    except (TypeError, ValueError, AttributeError) as exc:  # the shape, but odd values
        raise GpubenchError(
            f"{path}: read as {tool} output, but a field is malformed: {exc}"
        ) from None
    check_rows(peer)
    return peer


# --- values ---------------------------------------------------------------------------------

_SCALE = {
    ("s", "ms"): 1e3,
    ("ns", "ms"): 1e-6,
    ("ms", "s"): 1e-3,
    ("ns", "s"): 1e-9,
}


def scale(unit: str, ours: str) -> float:
    if unit == ours:
        return 1.0
    try:
        return _SCALE[(unit, ours)]
    except KeyError:
        raise GpubenchError(f"no conversion from {unit} to {ours}") from None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _metric(
    d: ServingMetricDef, value: float, spread: Mapping[str, float], where: str, name: str = ""
) -> Metric:
    return Metric(
        name or d.name,
        value,
        d.unit,
        d.higher_is_better,
        {k: float(v) for k, v in spread.items()},
        f"{d.definition} (read from {where})",
    )


def _defs(attr: str) -> list[tuple[ServingMetricDef, tuple[str, str]]]:
    return [(d, getattr(d, attr)) for d in SERVING_METRICS.values() if getattr(d, attr)]


def _g(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _io(tokens_in: float | None, tokens_out: float | None) -> str:
    def n(v: float | None) -> str:
        return "?" if v is None else str(round(v))

    return f"in{n(tokens_in)}-out{n(tokens_out)}"


def _unique(entries: Mapping[str, Entry], key: str) -> str:
    found, i = key, 1
    while found in entries:
        i += 1
        found = f"{key} #{i}"
    return found


def _peer(path: Path, tool: str, doc: Any, entries: dict[str, Entry], **info: Any) -> PeerBaseline:
    device = {"profile": path.stem, **{k: v for k, v in info.pop("device", {}).items() if v}}
    return PeerBaseline(
        path,
        PEER_KIND,
        device,
        {"tool": tool, **{k: v for k, v in info.items() if v not in (None, "")}},
        entries,
        {},
        doc if isinstance(doc, dict) else {"runs": doc},
        tool=tool,
    )


# --- vllm bench serve -----------------------------------------------------------------------

_VLLM_CONDITIONS = (
    "backend",
    "endpoint_type",
    "label",
    "model_id",
    "tokenizer_id",
    "num_prompts",
    "request_rate",
    "burstiness",
    "max_concurrency",
    "total_input_tokens",
    "total_output_tokens",
    "ramp_up_strategy",
    "ramp_up_start_rps",
    "ramp_up_end_rps",
)


def _vllm_value(
    run: Mapping[str, Any], d: ServingMetricDef, field: str, unit: str
) -> Metric | None:
    k = scale(unit, d.unit)
    spread: dict[str, float] = {}
    if "/" in field:
        num, den = (_number(run.get(f)) for f in field.split("/", 1))
        if num is None or not den:
            return None
        value = num / den
    else:
        found = _number(run.get(field))
        if found is None:
            return None
        value = found
        dist = re.fullmatch(r"mean_(\w+)_ms", field)
        if dist:
            for key, raw in run.items():
                part = re.fullmatch(rf"(median|std|p\d+(?:\.\d+)?)_{dist[1]}_ms", key)
                v = _number(raw)
                if part and v is not None:
                    spread[{"median": "p50"}.get(part[1], part[1])] = v * k
            if _number(run.get("completed")):
                spread["n"] = float(run["completed"])
    return _metric(d, value * k, spread, f"vllm bench serve's {field}")


def _vllm_key(run: Mapping[str, Any]) -> str:
    load = []
    if run.get("max_concurrency") is not None:
        load.append(f"c{run['max_concurrency']}")
    rate = _number(run.get("request_rate"))
    if rate is not None:
        load.append(f"r{rate:g}")
    done = _number(run.get("completed"))
    tokens = [
        _number(run.get(f)) / done if done and _number(run.get(f)) is not None else None
        for f in ("total_input_tokens", "total_output_tokens")
    ]
    return f"vllm:{run.get('model_id') or '?'}@{'-'.join(load) or 'rinf'}/{_io(*tokens)}"


def read_vllm(path: Path, doc: Any) -> PeerBaseline:
    """``vllm bench serve --save-result`` (one run) or ``--append-result`` (one run a line)."""
    runs = doc if isinstance(doc, list) else [doc]
    entries: dict[str, Entry] = {}
    for run in runs:
        metrics = {}
        for d, (field, unit) in _defs("vllm_field"):
            m = _vllm_value(run, d, field, unit)
            if m is not None:
                metrics[d.name] = m
        key = _unique(entries, _vllm_key(run))
        entries[key] = Entry(
            key,
            metrics,
            str(run.get("date", "")),
            f"{VLLM}: {path}",
            {k: run[k] for k in _VLLM_CONDITIONS if run.get(k) is not None},
            str(run.get(MATCH_FIELD) or ""),
        )
    return _peer(path, VLLM, doc, entries)


# --- GuideLLM -------------------------------------------------------------------------------


def _at(doc: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(doc, dict):
            return None
        doc = doc.get(part)
    return doc


def _distribution(dist: Mapping[str, Any], k: float, confidence: Any) -> dict[str, float]:
    spread: dict[str, float] = {}
    if _number(dist.get("count")):
        spread["n"] = float(dist["count"])
    for ours, theirs in (("std", "std_dev"), ("min", "min"), ("max", "max")):
        if _number(dist.get(theirs)) is not None:
            spread[ours] = dist[theirs] * k
    percentiles = dist.get("percentiles") or {}
    for p in ("p50", "p90", "p95", "p99"):
        if _number(percentiles.get(p)) is not None:
            spread[p] = percentiles[p] * k
    ci = dist.get("mean_ci") or {}
    if (
        confidence == 0.95
        and _number(ci.get("lower")) is not None
        and _number(ci.get("upper")) is not None
    ):
        spread["ci95_low"], spread["ci95_high"] = ci["lower"] * k, ci["upper"] * k
    return spread


def _guidellm_load(strategy: Mapping[str, Any]) -> str:
    kind = strategy.get("type_")
    if kind == "synchronous":
        return "c1"
    if kind == "concurrent":
        return f"c{strategy.get('streams')}"
    if kind == "constant":
        return f"r{_g(strategy.get('rate'))}"
    if kind == "poisson":
        return f"poisson-r{_g(strategy.get('rate'))}"
    return str(kind or "?")


def read_guidellm(path: Path, doc: Mapping[str, Any]) -> PeerBaseline:
    """A GuideLLM JSON report (``--output kind=json``; schema of GuideLLM 0.8's report)."""
    spec = _at(doc, "config.spec") or {}
    entries: dict[str, Entry] = {}
    for bench in doc.get("benchmarks") or []:
        config = bench.get("config") or {}
        metrics = {}
        for d, (field, unit) in _defs("guidellm_field"):
            found, k = _at(bench, field), scale(unit, d.unit)
            if isinstance(found, dict):
                value = _number(found.get("mean"))
                # a latency's distribution is over requests (or tokens); a rate's is over time
                spread = (
                    _distribution(found, k, config.get("confidence")) if unit in ("ms", "s") else {}
                )
            else:
                value, spread = _number(found), {}
            if value is not None:
                metrics[d.name] = _metric(d, value * k, spread, f"GuideLLM's {field}")
        model = _at(config, "backend.model") or _at(spec, "backend.model") or "?"
        tokens = [
            _number(_at(bench, f"metrics.{f}.successful.mean"))
            for f in ("prompt_token_count", "output_token_count")
        ]
        key = _unique(
            entries,
            f"guidellm:{model}@{_guidellm_load(config.get('strategy') or {})}/{_io(*tokens)}",
        )
        start = _number(bench.get("start_time"))
        date = (
            datetime.fromtimestamp(start, tz=timezone.utc).isoformat(timespec="seconds")
            if start
            else ""
        )
        conditions = {
            "strategy": config.get("strategy"),
            "request_format": _at(config, "backend.request_format"),
            "target": _at(config, "backend.target"),
            "data": spec.get("data"),
            "warnings": [
                w.get("message") for w in bench.get("warnings") or [] if isinstance(w, dict)
            ],
        }
        entries[key] = Entry(
            key,
            metrics,
            date,
            f"{GUIDELLM}: {path}",
            {k: v for k, v in conditions.items() if v},
        )
    return _peer(path, GUIDELLM, doc, entries, version=_at(doc, "metadata.guidellm_version"))


# --- llama-bench ----------------------------------------------------------------------------

#: fields of a llama-bench test that are its result, its shape or its model, not a parameter
_LB_NOT_PARAMS = {
    "test_time",
    "avg_ns",
    "stddev_ns",
    "avg_ts",
    "stddev_ts",
    "samples_ns",
    "samples_ts",
    "n_prompt",
    "n_gen",
    "n_depth",
    "model_filename",
    "model_type",
    "model_size",
    "model_n_params",
}
_LB_CONDITIONS = (
    "model_type",
    "model_size",
    "model_n_params",
    "n_prompt",
    "n_gen",
    "n_depth",
    "n_threads",
    "n_gpu_layers",
    "n_batch",
    "n_ubatch",
    "type_k",
    "type_v",
    "flash_attn",
    "backends",
    "build_commit",
    "build_number",
)


def _lb_test(t: Mapping[str, Any]) -> tuple[str, str, int]:
    """(kind, llama-bench's name for it, its token count): pp512 / tg128 / pp512+tg128."""
    p, n = int(t.get("n_prompt") or 0), int(t.get("n_gen") or 0)
    if p and n:
        return "pg", f"pp{p}+tg{n}", p + n
    if p:
        return "pp", f"pp{p}", p
    return "tg", f"tg{n}", n


def _lb_value(
    t: Mapping[str, Any], d: ServingMetricDef, field: str, unit: str, tokens: int
) -> tuple[float, dict[str, float]] | None:
    value = _number(t.get(field))
    if value is None or (unit == "ns/token" and not tokens):
        return None
    base = field.split("_", 1)[1]  # avg_ts -> ts, avg_ns -> ns
    per_token = 1.0
    if unit == "ns/token":
        unit, per_token = "ns", 1.0 / tokens
    k = scale(unit, d.unit) * per_token
    spread: dict[str, float] = {}
    samples = [s for s in (t.get(f"samples_{base}") or []) if _number(s) is not None]
    if samples:
        spread.update(n=len(samples), min=min(samples) * k, max=max(samples) * k)
    if _number(t.get(f"stddev_{base}")) is not None:
        spread["std"] = t[f"stddev_{base}"] * k
    return value * k, spread


def read_llama_bench(path: Path, tests: Sequence[Mapping[str, Any]]) -> PeerBaseline:
    """``llama-bench -o json`` (a list of tests) or ``-o jsonl`` (one test a line)."""
    sweep = any(int(t.get("n_depth") or 0) > 0 for t in tests)
    fields = sorted({f for t in tests for f in t} - _LB_NOT_PARAMS)
    varying = [f for f in fields if len({json.dumps(t.get(f), sort_keys=True) for t in tests}) > 1]
    entries: dict[str, Entry] = {}
    for t in tests:
        kind, name, tokens = _lb_test(t)
        depth = int(t.get("n_depth") or 0)
        model = Path(str(t.get("model_filename") or "model")).name.removesuffix(".gguf")
        key = f"{LLAMA_BENCH}:{model}/{name}"
        if varying:
            key += " [" + ", ".join(f"{f}={_g(t.get(f))}" for f in varying) + "]"
        metrics = {}
        for d, (field, unit) in _defs("llama_bench_field"):
            test_kind, _, theirs = field.partition(".")
            found = _lb_value(t, d, theirs, unit, tokens) if test_kind == kind else None
            if found is not None:
                name_here = f"{d.name}.d{depth}" if sweep else d.name
                metrics[name_here] = _metric(
                    d, found[0], found[1], f"llama-bench's {name} {theirs}", name_here
                )
        entry = entries.get(key)
        if entry is not None and sweep and not set(metrics) & set(entry.metrics):
            entry.metrics.update(metrics)  # the same test at another depth
            entry.conditions["n_depth"] = [*entry.conditions["n_depth"], depth]
            continue
        key = _unique(entries, key)
        conditions = {f: t[f] for f in _LB_CONDITIONS if t.get(f) not in (None, "")}
        if sweep:
            conditions["n_depth"] = [depth]
        entries[key] = Entry(
            key, metrics, str(t.get("test_time", "")), f"{LLAMA_BENCH}: {path}", conditions
        )
    first = tests[0]
    return _peer(
        path,
        LLAMA_BENCH,
        tests,
        entries,
        device={
            "gpu": first.get("gpu_info"),
            "cpu": first.get("cpu_info"),
            "backends": first.get("backends"),
        },
        build_commit=first.get("build_commit"),
        build_number=first.get("build_number"),
    )


READERS = {VLLM: read_vllm, GUIDELLM: read_guidellm, LLAMA_BENCH: read_llama_bench}


# --- lining peers up with our benchmarks ----------------------------------------------------


def check_rows(b: Baseline) -> None:
    """Two entries of one file may not land on the same (benchmark, metric) row."""
    seen: dict[tuple[str, str], str] = {}
    for entry in b.entries.values():
        for name in entry.metrics:
            other = seen.setdefault((entry.row_key, name), entry.key)
            if other != entry.key:
                raise GpubenchError(
                    f"{b.path}: entries {other!r} and {entry.key!r} both line up as "
                    f"{entry.row_key!r} ({name}); give each its own benchmark"
                )


def apply_matches(baselines: Iterable[Baseline], matches: Mapping[str, str]) -> None:
    """Show each entry whose key is a ``matches`` key (exact, else a glob) as that benchmark
    of ours; a key that matches nothing is an error listing the keys there are."""
    if not matches:
        return
    baselines = list(baselines)
    used: set[str] = set()
    for b in baselines:
        for entry in b.entries.values():
            for pattern, node in matches.items():
                if entry.key == pattern or fnmatchcase(entry.key, pattern):
                    entry.matches = node
                    used.add(pattern)
                    break
        check_rows(b)
    unused = [p for p in matches if p not in used]
    if unused:
        keys = [e.key for b in baselines if b.kind == PEER_KIND for e in b.entries.values()]
        shown = ", ".join(keys[:12]) + (", ..." if len(keys) > 12 else "")
        raise GpubenchError(
            f"--as {unused[0]!r} matches no entry of these files"
            + (f"; the peers' keys are: {shown}" if keys else "")
        )
