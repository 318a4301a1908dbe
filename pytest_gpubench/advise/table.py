"""The advise rows: one per device, each cell a value and its source.

Measured or published figures of exactly the asked model, quant and engine on a device win;
otherwise ``predict`` answers with its method and error band; where neither can, the cell says
why. Fit comes from the memory estimator (``selection.estimate``), users at the SLO from a
measured sweep (scaled to the device when it ran elsewhere).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pytest_gpubench.advise.capacity import cost, energy, users
from pytest_gpubench.advise.predict import Band, Cell, fits, known, nothing, predict
from pytest_gpubench.advise.request import Request
from pytest_gpubench.advise.sources import Library
from pytest_gpubench.devices.profile import DeviceProfile, ProfileSet
from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.models import formats
from pytest_gpubench.models.catalog import load_spec
from pytest_gpubench.report.table import format_table
from pytest_gpubench.selection.estimate import ModelRequest, context_label, estimate

COLUMNS = ("fits", "decode", "ttft", "users", "per_gpu", "energy", "cost")
HEADERS = {
    "fits": "fits (largest context; quants at the context)",
    "decode": "1-user decode tok/s",
    "ttft": "1-user TTFT ms",
    "users": "users at SLO",
    "per_gpu": "tok/s per GPU at SLO",
    "energy": "J per output token",
    "cost": "$ per M output tokens",
}
TAGS = {"measured": "M", "reference": "R", "predicted": "P", "derived": "D", "estimate": "E"}


def _fits(req: Request, lib: Library, profile: DeviceProfile) -> Cell:
    def ok(quant: str, context: int) -> bool:
        r = ModelRequest(
            req.model, quant, context=context, engine=req.engine, kv_dtype=req.kv_dtype
        )
        return estimate(r).fits(profile)

    spec, resolved = load_spec(req.model)
    top = spec.max_context or 131072
    if not ok(req.quant, 1024):
        largest = "does not fit at 1k"
    else:
        lo, hi = 1024, top
        while lo < hi:  # the largest context that fits, to 1k tokens
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if ok(req.quant, mid) else (lo, mid - 1)
        largest = f"up to {context_label(lo)}" + (" (the model's max)" if lo == top else "")
    names = [req.quant] + [
        f.name
        for n in (resolved.entry.default_formats if resolved.entry else ())
        if (f := formats.resolve(n))
    ]
    quants = [q for q in dict.fromkeys(names) if ok(q, req.context)]
    text = f"{req.quant} {largest}; at {context_label(req.context)}: {' '.join(quants) or 'none'}"
    source = (
        f"estimate (selection/estimate.py, {req.engine}, KV {req.kv_dtype or 'engine default'})"
    )
    placed = lib.placements.get((profile.name, *req.target))
    if placed:
        source += f"; placement measured: {placed}"
    return Cell(1.0 if quants else 0.0, text, "estimate", source)


def rate(req: Request, lib: Library, profile: DeviceProfile, profiles: ProfileSet,
         bands: Mapping[tuple[str, str, str], Band], quantity: str) -> Cell:  # fmt: skip
    """A measured/published rate of this model on the device, else a calibrated prediction."""
    found = known(lib, quantity, req.target, profile.name)
    if found is not None:
        return found
    if not fits(req.model, req.quant, req.engine, profile, req.prompt_len + req.output_len):
        return nothing("does not fit", f"estimate: {req.model} {req.quant} exceeds {profile.name}")
    context = req.prompt_len + req.output_len // 2 if quantity == "decode" else req.prompt_len
    return predict(lib, quantity, req.target, profile, context, profiles, bands)


def _ttft(req: Request, lib: Library, prefill: Cell, device: str) -> Cell:
    measured = [
        f
        for f in lib.find(
            "ttft", device=device, model=req.model, quant=req.quant, engine=req.engine
        )
        if abs(f.context - req.prompt_len) <= 0.25 * req.prompt_len
    ]
    if measured:
        f = measured[0]
        return Cell(
            f.value,
            f"{f.value:.0f}",
            f.kind,
            f"{f.where}, {f.key}: mean at {f.context}-token prompts",
        )
    if prefill.value is None:
        return nothing(prefill.text, f"no prefill rate: {prefill.source}")
    ms = req.prompt_len / prefill.value * 1000
    kind = "derived" if prefill.kind in ("measured", "reference") else prefill.kind
    source = (
        f"{req.prompt_len} prompt tokens / prefill {prefill.value:.0f} tok/s from {prefill.source}"
    )
    band = (1 / (1 + prefill.band[1]) - 1, 1 / (1 + prefill.band[0]) - 1) if prefill.band else None
    return Cell(ms, f"{ms:.0f}", kind, source, band)


@dataclass
class Row:
    device: str
    cells: dict[str, Cell]

    def as_dict(self) -> dict[str, object]:
        return {"device": self.device, **{k: c.as_dict() for k, c in self.cells.items()}}


def build(req: Request, lib: Library, devices: Sequence[str], profiles: ProfileSet,
          bands: Mapping[tuple[str, str, str], Band]) -> list[Row]:  # fmt: skip
    rows = []
    decode_of: dict[str, Cell] = {}
    prefill_of: dict[str, Cell] = {}
    for name in devices:
        profile = profiles.get(name)
        decode_of[name] = rate(req, lib, profile, profiles, bands, "decode")
        prefill_of[name] = rate(req, lib, profile, profiles, bands, "prefill")
    for name in devices:
        profile = profiles.get(name)
        cells = {"fits": _fits(req, lib, profile), "decode": decode_of[name]}
        cells["ttft"] = _ttft(req, lib, prefill_of[name], name)
        cells["users"], cells["per_gpu"] = users(
            req, lib, profile, profiles, bands, decode_of[name], prefill_of[name]
        )
        cells["energy"] = energy(req, lib, name, cells["users"])
        cells["cost"] = cost(req, lib, name, cells)
        rows.append(Row(name, cells))
    return rows


def _shown(cell: Cell) -> str:
    tag = TAGS.get(cell.kind)
    if cell.value is None or tag is None:
        return cell.text
    if cell.band is not None:
        return f"{cell.text} {tag}({cell.band[0]:+.0%}..{cell.band[1]:+.0%})"
    if cell.kind == "predicted":
        return f"{cell.text} P(no band)"
    return f"{cell.text} {tag}"


def heading(req: Request) -> str:
    slo = ", ".join(
        f"p{req.percentile} {k.removesuffix('_ms').upper()} <= {v:g} ms"
        for k, v in req.slo_ms.items()
    )
    return (
        f"{req.model} {req.quant} on {req.engine}: context {context_label(req.context)}, "
        f"{req.prompt_len}-token prompts, {req.output_len}-token replies; SLO {slo}"
    )


def text_lines(req: Request, rows: Sequence[Row]) -> list[str]:
    cols = [c for c in COLUMNS if c != "cost" or req.device_price]
    lines = [heading(req), ""]
    table = [(r.device, *(_shown(r.cells[c]) for c in cols)) for r in rows]
    lines += format_table(("device", *(HEADERS[c] for c in cols)), table)
    lines += ["", "M measured, R published reference, D derived from a measured rate, "
              "E estimate, P predicted (error band); sources:"]  # fmt: skip
    for r in rows:
        for c in cols:
            lines.append(f"  {r.device} {c}: {r.cells[c].source}")
    return lines


def markdown_lines(req: Request, rows: Sequence[Row]) -> list[str]:
    cols = [c for c in COLUMNS if c != "cost" or req.device_price]
    lines = [f"**{heading(req)}**", "", "| device | " + " | ".join(HEADERS[c] for c in cols) + " |"]
    lines.append("|---" * (len(cols) + 1) + "|")
    for r in rows:
        cells = [
            f"{_shown(r.cells[c])}<br><sub>{r.cells[c].source}</sub>".replace("|", "\\|")
            for c in cols
        ]
        lines.append(f"| {r.device} | " + " | ".join(cells) + " |")
    return lines


def as_json(req: Request, rows: Sequence[Row], files: Sequence[str]) -> dict[str, object]:
    return {
        "model": req.model,
        "quant": req.quant,
        "engine": req.engine,
        "context": req.context,
        "prompt_len": req.prompt_len,
        "output_len": req.output_len,
        "slo_ms": dict(req.slo_ms),
        "percentile": req.percentile,
        "files": [str(Path(f)) for f in files],
        "rows": [r.as_dict() for r in rows],
    }


def check_devices(names: Sequence[str], profiles: ProfileSet) -> list[str]:
    out = []
    for name in names:
        out.append(profiles.get(name).name)  # an unknown name is the profiles' own GpubenchError
    if not out:
        raise GpubenchError("advise needs --devices NAME,... or files whose devices it can read")
    return out
