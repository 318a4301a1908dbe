"""Users served at the SLO, energy per token and cost per million tokens for one advise row.

Users at the SLO come from a measured sweep only: the device's own (its capacity search, or its
swept grid read at the asked percentile), or another device's sweep of the same model, quant and
engine, scaled: each point's TPOT by the single-user decode ratio of the two devices, its TTFT
by their prefill ratio, its tokens/s per GPU by the decode ratio, and no more users than the
memory estimate admits at the full context. Without a sweep the cell says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pytest_gpubench.advise.predict import Band, Cell, fits, known, nothing, predict
from pytest_gpubench.advise.request import Request
from pytest_gpubench.advise.sources import Library, Sweep
from pytest_gpubench.devices.profile import DeviceProfile, ProfileSet
from pytest_gpubench.report.pareto import Point

SECONDS_PER_YEAR = 365 * 24 * 3600


def _p(point: Point, name: str, pct: int) -> float | None:
    return point.latency.get(name, {}).get(f"p{pct}")


def _grid(points: list[Point], slo: Mapping[str, float], pct: int, scale_tpot: float,
          scale_ttft: float) -> tuple[Point | None, str]:  # fmt: skip
    """The largest swept concurrency meeting every limit (with all below it meeting too)."""
    best, _note = None, ""
    for p in sorted((p for p in points if p.concurrency), key=lambda p: p.concurrency or 0):
        scale = {"tpot_ms": scale_tpot, "ttft_ms": scale_ttft, "e2el_ms": scale_tpot}
        values = {k: _p(p, k, pct) for k in slo}
        if any(v is None for v in values.values()):
            return best, f"no p{pct} stored at c{p.concurrency}"
        if any((values[k] or 0) * scale[k] > limit for k, limit in slo.items()):
            return best, f"c{p.concurrency} misses"
        best = p
    return best, "no swept point misses: at least"


def _source_rate(req: Request, lib: Library, profiles: ProfileSet, sweep: Sweep,
                 bands: Mapping[tuple[str, str, str], Band], quantity: str) -> Cell:  # fmt: skip
    cell = known(lib, quantity, req.target, sweep.device)
    if cell is not None:
        return cell
    profile = profiles.get(sweep.device)
    context = req.prompt_len + req.output_len // 2 if quantity == "decode" else req.prompt_len
    return predict(lib, quantity, req.target, profile, context, profiles, bands)


def _sweeps(lib: Library, req: Request) -> list[Sweep]:
    found = [s for s in lib.sweeps if (s.model, s.quant, s.engine) == req.target]
    return sorted(found, key=lambda s: s.curve.capacity is None)  # capacity searches first


def _own(req: Request, sweep: Sweep) -> tuple[Cell, Cell]:
    c = sweep.curve
    where = f"measured {Path(sweep.file).name} ({sweep.date[:10]}, {sweep.device}), {sweep.key}"
    same_slo = dict(c.slo_ms) == {k: float(v) for k, v in req.slo_ms.items()}
    if c.capacity is not None and same_slo and c.percentile == req.percentile:
        point = c.capacity_point
        users = Cell(float(c.capacity), f"{c.capacity}", "measured", f"{where}: capacity search")
        if point is None:
            return users, nothing("not measured", f"{where}: no point stored at the capacity")
        return users, Cell(point.per_gpu, f"{point.per_gpu:.0f}", "measured", where)
    best, note = _grid(c.points, req.slo_ms, req.percentile, 1.0, 1.0)
    if best is None:
        return nothing(f"0 ({note})", where), nothing("-", f"{where}: no point meets the SLO")
    lead = "at least " if note.startswith("no swept") else ""
    users = Cell(float(best.concurrency or 0), f"{lead}{best.concurrency}", "measured",
                 f"{where}: read from the swept grid ({note})")  # fmt: skip
    return users, Cell(best.per_gpu, f"{best.per_gpu:.0f}", "measured", where)


def users(req: Request, lib: Library, profile: DeviceProfile, profiles: ProfileSet,
          bands: Mapping[tuple[str, str, str], Band], decode: Cell,
          prefill: Cell) -> tuple[Cell, Cell]:  # fmt: skip
    sweeps = _sweeps(lib, req)
    own = [s for s in sweeps if s.device == profile.name]
    if own:
        return _own(req, own[0])
    if not sweeps:
        why = f"no sweep of {req.model} {req.quant} on {req.engine} in the files to scale"
        return nothing("no sweep", why), nothing("no sweep", why)
    if decode.value is None or prefill.value is None:
        missing = "decode" if decode.value is None else "prefill"
        lacking = decode if decode.value is None else prefill
        why = f"no {missing} rate on {profile.name} to scale the sweep by ({lacking.source})"
        return nothing(f"no {missing} rate", why), nothing(f"no {missing} rate", why)
    sweep = sweeps[0]
    src_decode = _source_rate(req, lib, profiles, sweep, bands, "decode")
    src_prefill = _source_rate(req, lib, profiles, sweep, bands, "prefill")
    if src_decode.value is None or src_prefill.value is None:
        why = f"no single-user rates on {sweep.device} to scale its sweep from"
        return nothing("no source rate", why), nothing("no source rate", why)
    d_ratio = decode.value / src_decode.value
    p_ratio = prefill.value / src_prefill.value
    best, note = _grid(sweep.curve.points, req.slo_ms, req.percentile, 1 / d_ratio, 1 / p_ratio)
    context = req.prompt_len + req.output_len
    while (
        best is not None
        and best.concurrency
        and not _holds(req, profile, best.concurrency, context)
    ):
        lower = [
            p for p in sweep.curve.points if p.concurrency and p.concurrency < best.concurrency
        ]
        best, note = (max(lower, key=lambda p: p.concurrency or 0) if lower else None), "memory"
    source = (
        f"predicted: {sweep.device}'s sweep ({Path(sweep.file).name}, {sweep.key}) scaled by "
        f"decode x{d_ratio:.2f} and prefill x{p_ratio:.2f} (this device's single-user rates over "
        f"{sweep.device}'s), read on its swept grid ({note}); not validated: no second device "
        "has a sweep of the same model to check the scaling against"
    )
    if best is None:
        return nothing("0", source), nothing("-", source)
    n, per_gpu = best.concurrency or 0, best.per_gpu * d_ratio
    lead = "at least " if note.startswith("no swept") else ""
    return (Cell(float(n), f"{lead}{n}", "predicted", source),
            Cell(per_gpu, f"{per_gpu:.0f}", "predicted", source))  # fmt: skip


def _holds(req: Request, profile: DeviceProfile, users: int, context: int) -> bool:
    from pytest_gpubench.selection.estimate import ModelRequest, estimate

    r = ModelRequest(req.model, req.quant, context=context, concurrency=users, engine=req.engine)
    return fits(req.model, req.quant, req.engine, profile, context) and estimate(r).fits(profile)


def energy(req: Request, lib: Library, device: str, users_cell: Cell) -> Cell:
    found = lib.find("energy", device=device, model=req.model, quant=req.quant, engine=req.engine)
    if not found:
        return nothing("not measured", f"no energy figure of this model on {device} in the files")
    want = users_cell.value or 1
    f = min(found, key=lambda f: abs(f.concurrency - want))
    text = f"{f.value:.2f} at {f.concurrency} user(s)"
    return Cell(f.value, text, "measured", f"{f.where}, {f.key}")


def cost(req: Request, lib: Library, device: str, cells: Mapping[str, Cell]) -> Cell:
    """Device price over its lifetime plus power at the user's price, per million tokens at the
    SLO point (or one user's rate when no SLO point is known), the device busy all the time."""
    price = req.device_price.get(device)
    if price is None:
        return nothing("no price given", f"--device-price {device}=USD not given")
    rate_cell = cells["per_gpu"] if cells["per_gpu"].value else cells["decode"]
    if not rate_cell.value or not req.lifetime_years:
        why = "no rate" if not rate_cell.value else "--lifetime not given"
        return nothing(why, f"cost needs a rate and --lifetime ({rate_cell.source})")
    per_s = price / (req.lifetime_years * SECONDS_PER_YEAR)
    power = lib.find("power", device=device, model=req.model, quant=req.quant, engine=req.engine)
    note = "device price only: no power measured for this model here"
    if power and req.power_price is not None:
        watts = max(f.value for f in power)
        per_s += watts / 1000 / 3600 * req.power_price
        note = f"device price + {watts:.0f} W (highest measured average) at {req.power_price:g}/kWh"
    usd = per_s / rate_cell.value * 1e6
    source = (
        f"{price:g} over {req.lifetime_years:g} years busy 24/7, {note}; rate: {rate_cell.kind}"
    )
    return Cell(usd, f"{usd:.2f}", "derived" if rate_cell.kind == "measured" else rate_cell.kind,
                source, rate_cell.band)  # fmt: skip
