"""Figures for ``advise`` from measured baselines and published references.

Each file is read by ``results.baseline.load`` (so a malformed file is one GpubenchError naming
it) and its sweeps by ``report.pareto.curves_of``. What a benchmark ran is taken from what the
file says: our serving entries' ``serving`` block (engine, model file name, concurrency), our
in-process entries' ``workload`` block, a reference's ``conditions``. A benchmark whose model or
quantization cannot be named from that is left out rather than guessed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_gpubench.models import formats
from pytest_gpubench.models.catalog import load_catalog
from pytest_gpubench.report.pareto import Curve, curves_of
from pytest_gpubench.results import sections
from pytest_gpubench.results.baseline import Baseline, Entry, load

# Names our GPU scripts give their model files (scripts/gpu/test_llamacpp_cuda.py serves a
# Llama-3.1-8B-shaped GGUF as llama8b-<quant>.gguf; its model marker names the catalog id).
FILE_NAMES = {"llama8b": "meta-llama/Llama-3.1-8B-Instruct"}
REFERENCE_PROMPT = 512  # a reference's prompt length when it gives a range, not one number
REFERENCE_CONTEXT = 1024  # the context its decode ran at, likewise (KV read is small here)


@dataclass(frozen=True)
class Figure:
    """One number a file gives for one model on one device: decode or prefill tok/s at one
    user, TTFT (ms) at a prompt length, or energy per output token (J)."""

    quantity: str  # "decode", "prefill", "ttft", "energy", "power"
    value: float
    device: str
    model: str  # catalog id
    quant: str  # format name (models/formats.py)
    engine: str  # llamacpp, ollama, vllm, sglang, transformers
    context: int  # decode: tokens in the context; prefill/ttft: prompt tokens
    kind: str  # "measured" or "reference"
    file: str
    date: str
    key: str
    concurrency: int = 1
    source: str = ""  # a reference's source (repository@commit:path or URL)

    @property
    def where(self) -> str:
        """Where the number comes from, as a cell's source names it."""
        date = self.date[:10] if self.date else "undated"
        if self.kind == "reference":
            return f"reference {Path(self.file).name} ({self.source or self.key}, {date})"
        return f"measured {Path(self.file).name} ({date}, {self.device})"


@dataclass(frozen=True)
class Sweep:
    """A concurrency sweep (or capacity search) of one model on one device."""

    curve: Curve
    device: str
    model: str
    quant: str
    engine: str
    prompt_len: int
    file: str
    date: str
    key: str


@dataclass
class Library:
    figures: list[Figure] = field(default_factory=list)
    sweeps: list[Sweep] = field(default_factory=list)
    placements: dict[tuple[str, str, str, str], str] = field(default_factory=dict)
    devices: list[str] = field(default_factory=list)

    def find(self, quantity: str, **match: str) -> list[Figure]:
        return [
            f
            for f in self.figures
            if f.quantity == quantity and all(getattr(f, k) == v for k, v in match.items())
        ]


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def identify_model(*texts: str) -> str | None:
    """The catalog id whose id or alias the texts contain (the longest match wins, so
    gpt-oss-120b is not read as gpt-oss-20b); None when none does."""
    names: list[tuple[str, str]] = [(_norm(k), v) for k, v in FILE_NAMES.items()]
    for entry in load_catalog():
        names += [(_norm(n), entry.id) for n in (entry.id, entry.short_name, *entry.aliases)]
    joined = " ".join(_norm(t) for t in texts if t)
    hits = [(len(n), cid) for n, cid in names if n and n in joined]
    return max(hits)[1] if hits else None


def identify_quant(text: str, engine: str) -> str | None:
    """The weight format a quant description names ('UD-Q4_K_XL', 'Q4_K_M (6 GB file)',
    'MXFP4 MoE', a file name ending in -q8_0); gpt-oss's MXFP4 in a GGUF is gguf-mxfp4."""
    for token in re.split(r"[\s(),/]+|(?<=[a-z0-9])-(?=[a-z])", text.lower()):
        fmt = formats.resolve(token) if token else None
        if fmt is None and token:
            fmt = formats.resolve(token.rsplit("-", 1)[-1])
        if fmt is not None:
            if fmt.name == "mxfp4" and engine in ("llamacpp", "ollama"):
                return "gguf-mxfp4"
            return fmt.name
    return None


def engine_of(text: str) -> str | None:
    low = text.lower()
    for needle, name in (
        ("ollama", "ollama"),
        ("llama", "llamacpp"),
        ("vllm", "vllm"),
        ("sglang", "sglang"),
        ("transformers", "transformers"),
    ):
        if needle in low:
            return name
    return None


def _int(value: Any, default: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return default


def _extras(b: Baseline) -> dict[str, Mapping[str, Any]]:
    """Each benchmark's ``extra_info`` by its key (``results.sections``' lenient readers)."""
    benches = b.document.get("benchmarks") or []
    return {sections.entry_key(bench): sections.extra_in(bench) for bench in benches}


def _value(entry: Entry, *names: str) -> float | None:
    for name in names:
        m = entry.metrics.get(name)
        if m is not None and m.value > 0:
            return m.value
    return None


@dataclass(frozen=True)
class _Ran:
    """What one of our entries ran: engine, the model's name as recorded, users, lengths."""

    engine: str
    name: str
    users: int
    prompt: int
    output: int


def _what_ran(extra: Mapping[str, Any]) -> _Ran | None:
    """From the ``serving`` section (a server benchmark) or the ``workload`` section (an
    in-process one); None for anything else (training, image generation)."""
    serving = sections.read_serving(extra)
    if serving:
        return _Ran(
            str(serving.get("engine") or ""),
            str(serving.get("model") or ""),
            _int(serving.get("concurrency"), 0),
            _int(serving.get("input_len"), 0),
            _int(serving.get("output_len"), 0),
        )
    work = sections.read_workload(extra)
    if work is None:
        return None
    settings = work.settings
    name = str(work.source.get("model") or settings.get("model") or "") + " " + work.dtype
    return _Ran(
        "transformers",
        name,
        _int(settings.get("batch_size"), 0),
        _int(settings.get("input_len"), 0),
        _int(settings.get("output_len"), 0),
    )


def _first_point(extra: Mapping[str, Any]) -> Iterable[tuple[str, float, int]]:
    """A sweep's single-user point: (quantity, value, context or prompt length)."""
    sweep = sections.read_sweep(extra)
    point = sweep.points[0] if sweep and sweep.points else None
    if point is None or point.concurrency != 1:
        return
    prompt = _int(point.raw.get("input_len"), 0)
    if (per_user := point.value("output_tok_s_per_user")) and per_user > 0:
        yield "decode", per_user, prompt + _int(point.raw.get("output_len"), 0) // 2
    if (ttft := point.value("ttft_ms")) and ttft > 0 and prompt:
        yield "ttft", ttft, prompt


def _measured(b: Baseline, key: str, entry: Entry, extra: Mapping[str, Any]) -> Iterable[Figure]:
    """Figures of one of our entries: a serving run (llama-server, vLLM...) or a workload."""
    ran = _what_ran(extra)
    bound = sections.read_bound(extra)
    if ran is None or (bound is not None and bound.bound == "offload"):
        return  # an offloaded run measures the CPU and PCIe bus, not this device's GPU
    model, quant = identify_model(ran.name), identify_quant(ran.name, ran.engine)
    if model is None or quant is None:
        return
    base = dict(model=model, quant=quant, engine=ran.engine, kind="measured", file=str(b.path))
    base.update(date=entry.date, key=key, device=b.profile)
    batch = sections.read_decode_batch(extra)
    context = batch.context if batch else ran.prompt + ran.output // 2
    if ran.users == 1:
        decode = _value(entry, "decode_tok_s", "decode_tok_per_s", "server_decode_tok_s")
        if decode:
            yield Figure("decode", decode, context=context, **base)
        prefill = _value(entry, "prefill_tok_per_s", "server_prefill_tok_s")
        if ran.prompt >= 256 and prefill:
            yield Figure("prefill", prefill, context=ran.prompt, **base)
    if (pp := _value(entry, "llama_bench_pp512_tok_s")) is not None:
        yield Figure("prefill", pp, context=512, **{**base, "key": key + " (llama-bench pp512)"})
    for name, quantity in (("energy_per_output_token_j", "energy"), ("avg_power_w", "power")):
        if (v := _value(entry, name)) is not None and ran.users:
            yield Figure(quantity, v, context=context, concurrency=ran.users, **base)
    for quantity, value, length in _first_point(extra):
        yield Figure(quantity, value, context=length, **{**base, "key": key + " c1"})


def _reference(b: Baseline, key: str, entry: Entry) -> Iterable[Figure]:
    """Figures of one published entry: single-user runs only (a c10 mean is not one user's)."""
    c = entry.conditions
    engine = engine_of(str(c.get("engine") or ""))
    if engine is None or _int(c.get("concurrency"), 0) != 1:
        return
    model = identify_model(str(c.get("model") or ""), key)
    quant = identify_quant(str(c.get("quant") or ""), engine)
    if model is None or quant is None or "multimodal" in key or "image" in key:
        return
    base = dict(model=model, quant=quant, engine=engine, kind="reference", file=str(b.path))
    base.update(date=entry.date, key=key, device=b.profile, source=entry.source.split(" (")[0])
    depth = re.search(r"-d(\d+)", key)
    prompt = _int(c.get("input_tokens"), REFERENCE_PROMPT)
    context = int(depth[1]) + 16 if depth else REFERENCE_CONTEXT
    if (decode := _value(entry, "tg_tok_s", "output_tok_s")) is not None:
        yield Figure("decode", decode, context=context, **base)
    if (rate := _value(entry, "pp_tok_s", "prompt_tok_s")) is not None:
        yield Figure("prefill", rate, context=prompt, **base)


def _sweeps(b: Baseline, extras: Mapping[str, Mapping[str, Any]]) -> Iterable[Sweep]:
    for curve in curves_of(b):
        key = next((k for k in extras if k.endswith(curve.key)), curve.key)
        ran = _what_ran(extras.get(key, {}))
        if ran is None:
            continue
        model, quant = identify_model(ran.name), identify_quant(ran.name, ran.engine)
        if model is None or quant is None:
            continue
        date = b.entries[key].date if key in b.entries else ""
        yield Sweep(curve, b.profile, model, quant, ran.engine, ran.prompt, str(b.path), date, key)


def _placement(extra: Mapping[str, Any]) -> str | None:
    """'all of 33 layers on GPU, KV on GPU' from a run's placement section."""
    record = sections.read_placement(extra)
    p = record.fields if record else {}
    if not p.get("total_layers"):
        return None
    on = "all" if p.get("gpu_layers") == p.get("total_layers") else str(p.get("gpu_layers"))
    kv = "KV on CPU" if p.get("kv_on_cpu") else "KV on GPU"
    return f"{on} of {p['total_layers']} layers on GPU, {kv}"


def _keep_best(lib: Library, best: dict[tuple[str, ...], int], f: Figure) -> None:
    ident = (f.quantity, f.device, f.model, f.quant, f.engine)
    if f.quantity in ("energy", "power"):
        lib.figures.append(f)
        return
    at = best.get(ident)
    if at is None:
        best[ident] = len(lib.figures)
        lib.figures.append(f)
        return
    old = lib.figures[at]
    if (f.value < old.value) if f.quantity == "ttft" else (f.value > old.value):
        lib.figures[at] = f


def _note_placement(lib: Library, b: Baseline, key: str, extra: Mapping[str, Any]) -> None:
    """The first placement a run of the model recorded on the device (a test that offloads on
    purpose says nothing of whether the model fits, so it is left out)."""
    where, ran = _placement(extra), _what_ran(extra)
    if not where or ran is None or "offload" in key:
        return
    model, quant = identify_model(ran.name), identify_quant(ran.name, ran.engine)
    if model and quant:
        lib.placements.setdefault((b.profile, model, quant, ran.engine), f"{where} ({b.path.name})")


def read(paths: Sequence[str | Path]) -> Library:
    """Every figure the files give. Per device, model, quant, engine and quantity the best
    configuration is kept (the fastest rate, the shortest TTFT: llama-bench at depth 0, a
    compiled run before an eager one); energy and power figures are all kept."""
    lib = Library()
    best: dict[tuple[str, ...], int] = {}
    for path in paths:
        b = load(path)
        if b.profile not in lib.devices:
            lib.devices.append(b.profile)
        extras = _extras(b)
        for key, entry in b.entries.items():
            extra = extras.get(key, {})
            found = (
                _reference(b, key, entry)
                if b.kind == "published"
                else _measured(b, key, entry, extra)
            )
            for f in found:
                _keep_best(lib, best, f)
            _note_placement(lib, b, key, extra)
        if b.kind != "published":
            lib.sweeps += list(_sweeps(b, extras))
    return lib
