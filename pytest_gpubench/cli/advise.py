"""``pytest-gpubench advise``: what runs where, per device, each cell naming its source."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pytest_gpubench.errors import GpubenchError


def add_parser(sub: Any) -> None:
    adv = sub.add_parser(
        "advise",
        help="per device: fit, one user's speed, users at an SLO, energy, cost; sourced",
        description="One row per device for MODEL: the largest context that fits and which "
        "quantizations fit, single-user decode tok/s and TTFT, users served at the SLO and "
        "tok/s per GPU there, energy per token, and cost when prices are given. Every cell "
        "says where it comes from: measured (file, date, device), a published reference, or "
        "predicted (calibrated from the files, with an error band).",
    )
    adv.add_argument("model", help="catalog id or alias (pytest-gpubench fit --matrix lists them)")
    adv.add_argument("--quant", default="q4_k_m", help="weight format (default q4_k_m)")
    adv.add_argument("--engine", default="llamacpp", help="llamacpp, ollama, vllm, sglang")
    adv.add_argument("--devices", help="comma-separated profiles (default: the files' devices)")
    adv.add_argument("--baselines", nargs="+", default=[], metavar="FILE",
                     help="measured baselines and published references to read")  # fmt: skip
    adv.add_argument("--context", default="4k", help="context for the fit column (default 4k)")
    adv.add_argument("--kv-dtype", help="KV cache dtype (default: the engine's)")
    adv.add_argument("--prompt-len", type=int, default=1000, help="prompt tokens (default 1000)")
    adv.add_argument("--output-len", type=int, default=300, help="reply tokens (default 300)")
    adv.add_argument("--slo", default="ttft_ms=2000,tpot_ms=50",
                     help="limits in ms (default ttft_ms=2000,tpot_ms=50)")  # fmt: skip
    adv.add_argument("--percentile", type=int, default=90, help="the SLO's percentile")
    adv.add_argument("--device-price", action="append", default=[], metavar="NAME=USD",
                     help="a device's price, for the cost column (repeatable)")  # fmt: skip
    adv.add_argument("--power-price", type=float, help="electricity price per kWh")
    adv.add_argument("--lifetime", type=float, help="years the device is written off over")
    adv.add_argument("--profiles", help="extra/overriding device profiles TOML file")
    adv.add_argument("--json", action="store_true", help="print JSON")
    adv.add_argument("--markdown", metavar="FILE", help="also write the table as Markdown")
    adv.set_defaults(func=run)


def _prices(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        name, _, usd = item.partition("=")
        try:
            out[name.strip()] = float(usd)
        except ValueError:
            raise GpubenchError(
                f"--device-price {item!r}: write NAME=USD, e.g. rtx4090=1800"
            ) from None
    return out


def run(args: argparse.Namespace) -> int:
    from pytest_gpubench.advise import table, validate
    from pytest_gpubench.advise.request import Request
    from pytest_gpubench.advise.sources import read
    from pytest_gpubench.devices import load_profiles
    from pytest_gpubench.engines.registry import memory_for
    from pytest_gpubench.models import formats
    from pytest_gpubench.models.catalog import load_spec, resolve_model
    from pytest_gpubench.report.pareto import parse_slo
    from pytest_gpubench.results.atomic import write_text_atomic
    from pytest_gpubench.selection.estimate import parse_context
    from pytest_gpubench.serving.sweep import check_percentile

    memory_for(args.engine)  # an unknown engine is its own one-line error, before any work
    prices = _prices(args.device_price)
    slo = parse_slo(args.slo)
    entry = resolve_model(args.model).entry
    model = entry.id if entry else args.model
    spec, _ = load_spec(model)
    if spec.kind not in ("llm", "vlm"):
        raise GpubenchError(
            f"advise answers for language models; {model} is a {spec.kind.replace('_', ' ')} "
            "model (compare its files with pytest-gpubench compare)"
        )
    quant = formats.get_format(args.quant).name
    if quant == "mxfp4" and args.engine in ("llamacpp", "ollama"):
        quant = "gguf-mxfp4"  # gpt-oss's MXFP4 as a GGUF carries it (as the files name it)
    if args.prompt_len < 1 or args.output_len < 1:
        raise GpubenchError("--prompt-len and --output-len must be positive token counts")
    profiles = load_profiles(args.profiles)
    lib = read(args.baselines)
    names = args.devices.split(",") if args.devices else lib.devices
    devices = table.check_devices([n.strip() for n in names if n.strip()], profiles)
    req = Request(
        model, quant, args.engine, parse_context(args.context), args.kv_dtype,
        args.prompt_len, args.output_len, slo, check_percentile(args.percentile),
        prices, args.power_price, args.lifetime,
    )  # fmt: skip
    bands = validate.bands(validate.rows(lib, profiles))
    rows = table.build(req, lib, devices, profiles, bands)
    if args.json:
        print(json.dumps(table.as_json(req, rows, args.baselines), indent=2))
    else:
        for line in table.text_lines(req, rows):
            print(line)
    if args.markdown:
        write_text_atomic(Path(args.markdown), "\n".join(table.markdown_lines(req, rows)) + "\n")
        if not args.json:
            print(f"wrote {args.markdown}")
    return 0
