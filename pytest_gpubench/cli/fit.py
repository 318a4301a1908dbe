"""``pytest-gpubench fit``: one model's memory breakdown, or the catalog x devices matrix.

Uses the same estimate the ``model`` marker uses, so what it prints is what a run decides.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from pytest_gpubench.devices import detect, load_profiles
from pytest_gpubench.devices.profile import DeviceProfile, ProfileSet
from pytest_gpubench.devices.select import host_cpu
from pytest_gpubench.engines.registry import memory_for, memory_names
from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.models import formats, split
from pytest_gpubench.models.catalog import load_catalog
from pytest_gpubench.report.table import format_table
from pytest_gpubench.selection.estimate import Estimate, ModelRequest, context_label, estimate


def add_parser(sub: Any) -> None:
    fit = sub.add_parser(
        "fit",
        help="estimate a model's memory need and which devices it fits",
        description="Weights + KV cache + engine overhead for MODEL (catalog id or alias, a "
        "local config.json or model folder, or a Hugging Face cache folder), and whether it "
        "fits each device. --matrix prints the catalog x devices table.",
    )
    fit.add_argument("model", nargs="?", help="catalog id/alias or path to a config.json")
    fit.add_argument("--matrix", action="store_true", help="catalog x devices: what runs where")
    fit.add_argument("--quant", help=f"weight format ({', '.join(formats.known_formats())})")
    fit.add_argument("--context", help="context length in tokens, e.g. 32768 or 32k (default 4k)")
    fit.add_argument("--concurrency", type=int, default=1, help="concurrent sequences")
    fit.add_argument("--kv-dtype", help="KV cache dtype: fp16, bf16, fp8, q8_0, q4_0, ...")
    fit.add_argument("--engine", help=", ".join(memory_names()))
    fit.add_argument("--tensor-parallel", type=int, default=1, help="GPUs for vLLM/SGLang TP")
    fit.add_argument("--pipeline-parallel", type=int, default=1, help="vLLM/SGLang PP stages")
    fit.add_argument("--data-parallel", type=int, default=1, help="vLLM/SGLang DP replicas")
    fit.add_argument("--split-mode", help="llama.cpp: layer (default over several GPUs), row, none")
    fit.add_argument("--tensor-split", help="llama.cpp: shares per GPU, e.g. 3,1")
    fit.add_argument("--device", help="judge only this device (names as in --device)")
    fit.add_argument("--profiles", help="extra/overriding device profiles TOML file")
    fit.add_argument("--json", action="store_true", help="print JSON")
    fit.set_defaults(func=run)


def _devices(profiles: ProfileSet, name: str | None) -> list[DeviceProfile]:
    if name:
        profile = profiles.get(name)
        if profile.name == "cpu" and not profile.memory_gib:
            profile = host_cpu(profiles, detect())
        return [profile]
    # every named profile but 'cpu', whose memory is the host's and is read at run time
    return [profiles.profiles[n] for n in profiles.names if n != "cpu"]


def _request(args: argparse.Namespace, model: str, quant: str | None) -> ModelRequest:
    return ModelRequest(
        model=model,
        quant=quant,
        context=args.context,
        concurrency=args.concurrency,
        engine=args.engine,
        kv_dtype=args.kv_dtype,
        tensor_parallel=args.tensor_parallel,
        pipeline_parallel=args.pipeline_parallel,
        data_parallel=args.data_parallel,
        split_mode=args.split_mode,
        tensor_split=split.check_tensor_split(args.tensor_split),
    )


def _gib(x: float) -> str:
    return f"{x:.1f} GiB"


def _shown_path(path: str) -> str:
    """Catalog configs by their place in the package, so the output reads the same anywhere."""
    marker = "pytest_gpubench/models/catalog/configs/"
    return marker + path.split(marker, 1)[1] if marker in path else path


def _breakdown_lines(e: Estimate, devices: list[DeviceProfile]) -> list[str]:
    spec = e.spec
    layers = ", ".join(
        f"{spec.count(k)} {label}"
        for k, label in (
            ("full", "full-attention"),
            ("sliding", f"sliding-window ({spec.sliding_window})"),
            ("linear", "linear-attention"),
            ("mamba", "Mamba"),
        )
        if spec.count(k)
    )
    fmt = formats.get_format(e.quant)
    lines = [
        e.label,
        f"  model      {e.model_id}",
        f"  config     {_shown_path(spec.source)}",
        f"  params     {spec.total_params / 1e9:.2f}B total, "
        f"{spec.active_params / 1e9:.2f}B active per token",
        f"  weights    {_gib(e.weights_gib):>10}  {fmt.description}; "
        f"{fmt.bits_per_weight(spec):.2f} bits/weight on average",
    ]
    if spec.kind in ("llm", "vlm"):
        mla = (
            f", MLA cache: {memory_for(e.engine).mla_mode}"
            if spec.kv is not None and spec.kv.is_mla
            else ""
        )
        lines.append(
            f"  KV cache   {_gib(e.kv_gib):>10}  {e.kv_dtype}, {context_label(e.context)} tokens x "
            f"{e.concurrency} sequence(s); layers: {layers}{mla}"
        )
    if e.state_gib:
        lines.append(f"  state      {_gib(e.state_gib):>10}  fp32 recurrent state per sequence")
    lines += [
        f"  overhead   {_gib(e.overhead_gib):>10}  {e.overhead_source}",
        f"  total      {_gib(e.total_gib):>10}",
    ]
    if e.utilization:
        where = "one GPU" if e.per_gpu else f"{e.gpus_needed} GPUs"
        lines.append(
            f"  need       {_gib(e.need_gib):>10}  total / gpu_memory_utilization "
            f"{e.utilization:.2f}, on {where}"
        )
    if e.gpus_needed > 1:
        lines.append(
            f"  per GPU    {_gib(e.per_gpu_need_gib):>10}  the busiest of {e.gpus_needed} GPUs "
            f"({e.split_label})"
        )
    lines.append("")
    rows = []
    for p in devices:
        shares = e.shares(p)
        if not shares:
            rows.append((p.name, "-", "-", f"{max(p.gpu_count, 1)}", "-", "no"))
            continue
        for s in shares:
            gpu = f"{s.index} {s.gpu}" if p.parts else "-"
            fits = "yes" if s.fits else "no"
            rows.append((p.name, gpu, f"{s.need_gib:.1f}", f"{s.available_gib:.1f}", s.what, fits))
    headers = ("device", "GPU", "need GiB", "available GiB", "share", "fits")
    return lines + format_table(headers, rows)


def _catalog_quants(names: tuple[str, ...]) -> list[str]:
    """The catalog's formats the estimator knows, once each, in catalog order."""
    out: list[str] = []
    for name in names:
        fmt = formats.resolve(name)
        if fmt is not None and fmt.name not in out:
            out.append(fmt.name)
    return out or ["bf16"]


def _matrix(args: argparse.Namespace, devices: list[DeviceProfile]) -> int:
    estimates = []
    for entry in load_catalog():
        if entry.config is None:
            continue
        quants = [args.quant] if args.quant else _catalog_quants(entry.default_formats)
        estimates += [estimate(_request(args, entry.id, q)) for q in quants]
    if args.json:
        print(json.dumps([e.as_dict(devices) for e in estimates], indent=2))
        return 0
    headers = ("model", "quant", "engine", "need GiB", *(p.name for p in devices))
    rows = [
        (
            e.model,
            e.quant,
            e.engine,
            f"{e.need_gib:.1f}",
            *("yes" if e.fits(p) else "-" for p in devices),
        )
        for e in estimates
    ]
    context = context_label(estimates[0].context) if estimates else "-"
    print(
        f"what runs where: each model in its catalog formats, {context} context (LLMs), "
        f"concurrency {args.concurrency}; 'yes' = fits"
    )
    for line in format_table(headers, rows):
        print(line)
    print(
        "vLLM needs the model on one GPU (the largest GPU of a multi-GPU device counts); "
        "llama.cpp splits layers over all GPUs. Details: pytest-gpubench fit MODEL"
    )
    return 0


def run(args: argparse.Namespace) -> int:
    profiles = load_profiles(args.profiles)
    devices = _devices(profiles, args.device)
    if args.matrix:
        if args.model:
            raise GpubenchError("fit --matrix covers the whole catalog; leave out MODEL")
        return _matrix(args, devices)
    if not args.model:
        raise GpubenchError("fit needs a MODEL (catalog id, alias or config path), or --matrix")
    e = estimate(_request(args, args.model, args.quant))
    if args.json:
        print(json.dumps(e.as_dict(devices), indent=2))
        return 0
    for line in _breakdown_lines(e, devices):
        print(line)
    return 0
