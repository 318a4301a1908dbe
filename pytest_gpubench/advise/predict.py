"""Calibrated predictions: a device's roofline times an efficiency measured elsewhere.

Decode at one user reads the active weights and the KV cache once per token, so its ceiling is
bandwidth / bytes per token (``metrics.roofline.decode_bound``, from the same model spec and
weight formats the memory estimator uses). Prefill's ceiling is the dense bf16 TFLOPS over the
FLOPs per prompt token (``metrics.roofline.flops_per_token``). What an engine reaches of that
ceiling is not a constant: it is read from measured figures of the same engine and quantization
family, preferring other models on the same device (the device's own efficiency), else any other
device. The error band is what ``validate`` found when it predicted every stored figure the same
way from the others; with fewer than three such rows the cell says no band can be given.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass

from pytest_gpubench.advise.sources import Figure, Library
from pytest_gpubench.devices.profile import DeviceProfile, ProfileSet
from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.metrics.roofline import decode_bound, flops_per_token
from pytest_gpubench.models import formats
from pytest_gpubench.models.catalog import load_spec
from pytest_gpubench.selection.estimate import ModelRequest, estimate

SAME_DEVICE = "same-device"
SAME_MODEL = "same-model"
OTHER_DEVICES = "other-devices"
METHODS = (SAME_DEVICE, SAME_MODEL, OTHER_DEVICES)
# relative error low, high (e.g. -0.3, +0.2); a validated band adds the median absolute error
Band = tuple[float, ...]


@dataclass(frozen=True)
class Cell:
    """One answer and where it comes from; ``value`` None means nothing can be said."""

    value: float | None
    text: str
    kind: str  # measured, reference, predicted, derived, estimate, none
    source: str
    band: Band | None = None

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"value": self.value, "text": self.text, "kind": self.kind}
        out["source"] = self.source
        if self.band is not None:
            out["error_band"] = {"low": round(self.band[0], 3), "high": round(self.band[1], 3)}
        return out


def nothing(text: str, why: str) -> Cell:
    return Cell(None, text, "none", why)


def family(quant: str) -> str:
    """Quantizations whose kernels behave alike: 4-bit (Q4_K, Q4_0, UD-Q4_K_XL, MXFP4, NVFP4,
    AWQ/GPTQ), 5-6 bit, 8-bit (Q8_0, FP8, INT8), 16-bit, 32-bit."""
    name = formats.get_format(quant).name
    if name in ("bf16", "fp16"):
        return "16-bit"
    if name == "fp32":
        return "32-bit"
    if name in ("q8_0", "ud-q8_k_xl", "fp8", "int8"):
        return "8-bit"
    if name in ("q5_k_m", "q6_k", "ud-q5_k_xl", "ud-q6_k_xl"):
        return "5-6 bit"
    return "4-bit"


def profile_of(profiles: ProfileSet, name: str) -> DeviceProfile | None:
    try:
        return profiles.get(name)
    except GpubenchError:
        return None


def dense_tflops(profile: DeviceProfile) -> float | None:
    return profile.tflops.get("bf16") or profile.tflops.get("fp16") or None


def ceiling(
    quantity: str, f_model: str, quant: str, profile: DeviceProfile, context: int,
    relative: bool = False,
) -> float:  # fmt: skip
    """The roofline of ``quantity`` (tok/s) for the model on the device; 0 when the profile
    lacks the figure (no bandwidth, no dense bf16 TFLOPS). ``relative``: prefill against 1
    TFLOPS, for comparing models on one device whose profile gives no bf16 figure (the Spark)."""
    spec, _ = load_spec(f_model)
    if quantity == "decode":
        if not profile.bandwidth_gbs:
            return 0.0
        return decode_bound(spec, quant, profile.bandwidth_gbs, context=context).tokens_per_s
    tflops = dense_tflops(profile) or (1.0 if relative else None)
    return tflops * 1e12 / flops_per_token(spec, context) if tflops else 0.0


def fits(model: str, quant: str, engine: str, profile: DeviceProfile, context: int) -> bool:
    try:
        req = ModelRequest(model, quant, context=context, engine=engine)
        return estimate(req).fits(profile)
    except GpubenchError:
        return False


@dataclass(frozen=True)
class Point:
    figure: Figure
    efficiency: float
    relative: bool = False  # against 1 TFLOPS: comparable only within its own device


def calibration(
    lib: Library, quantity: str, engine: str, quant: str, profiles: ProfileSet
) -> list[Point]:
    """Every figure of the same engine and quantization family whose device has the ceiling's
    figure and holds the model (an offloaded run measures the CPU, not the device)."""
    out = []
    want = family(quant)
    for f in lib.find(quantity, engine=engine):
        profile = profile_of(profiles, f.device)
        if profile is None or family(f.quant) != want:
            continue
        if not fits(f.model, f.quant, f.engine, profile, max(f.context, 1024)):
            continue
        top = ceiling(quantity, f.model, f.quant, profile, f.context)
        relative = top <= 0
        if relative:
            top = ceiling(quantity, f.model, f.quant, profile, f.context, relative=True)
        if top > 0:
            out.append(Point(f, f.value / top, relative))
    return out


def methods(points: list[Point], device: str, model: str) -> list[tuple[str, list[Point]]]:
    """The calibration sets in the order advise prefers them (the order the leave-one-out
    table supports): other models on this device (its own efficiency); this model on other
    devices (the H100 from the H200); every other device's figures. Prefill figures taken
    against 1 TFLOPS (a profile without a bf16 figure) compare only within their device."""
    return [
        (SAME_DEVICE, [p for p in points if p.figure.device == device and p.figure.model != model]),
        (SAME_MODEL, [p for p in points if p.figure.device != device and p.figure.model == model
                      and not p.relative]),
        (OTHER_DEVICES, [p for p in points if p.figure.device != device and not p.relative]),
    ]  # fmt: skip


def choose(
    points: list[Point],
    device: str,
    model: str,
    ranked: Mapping[str, float] | None = None,
) -> tuple[str, list[Point]]:
    """The calibration set with points whose method erred least in the leave-one-out table
    (``ranked``: method -> median absolute error, for this quantity and engine); methods the
    table does not validate come after, in ``methods``' order."""
    ranked = ranked or {}
    found = [(m, used) for m, used in methods(points, device, model) if used]
    if not found:
        return OTHER_DEVICES, []
    order = {m: (ranked.get(m, float("inf")), METHODS.index(m)) for m, _ in found}
    return min(found, key=lambda mu: order[mu[0]])


def predict(
    lib: Library,
    quantity: str,
    target: tuple[str, str, str],
    profile: DeviceProfile,
    context: int,
    profiles: ProfileSet,
    bands: Mapping[tuple[str, str, str], Band] | None = None,
) -> Cell:
    """The predicted rate (tok/s) of ``target`` (model, quant, engine) on ``profile``."""
    model, quant, engine = target
    points = calibration(lib, quantity, engine, quant, profiles)
    ranked = {m: b[2] for (q, e, m), b in (bands or {}).items() if (q, e) == (quantity, engine)}
    method, used = choose(points, profile.name, model, ranked)
    what = f"{engine} {family(quant)} {quantity}"
    if not used:
        return nothing("no calibration point", f"no {what} figure of any device in the files")
    top = ceiling(quantity, model, quant, profile, context, relative=method == SAME_DEVICE)
    if top <= 0:
        lacks = "bandwidth" if quantity == "decode" else "dense bf16 TFLOPS"
        return nothing(f"no {lacks} figure", f"profile {profile.name} gives no {lacks}")
    effs = [p.efficiency for p in used]
    eff = statistics.median(effs)
    validated = (bands or {}).get((quantity, engine, method))
    band = validated[:2] if validated else None
    origin = "leave-one-out error range (docs/reference/prediction-error.md)"
    if band is None:  # the calibration points' own spread says nothing of the error
        origin = "no error band: fewer than 3 leave-one-out rows validate this method here"
    names = ", ".join(sorted({f"{p.figure.device}:{p.figure.model.split('/')[-1]}" for p in used}))
    roof = "bandwidth roofline" if quantity == "decode" else "bf16 compute roofline"
    how = f"{eff:.0%} of the {roof} {top:.0f} tok/s, median {what} efficiency"
    if any(p.relative for p in used):  # no bf16 TFLOPS: only ratios of FLOPs per token
        how = f"its other models' {what} rates scaled by FLOPs per token (no bf16 TFLOPS figure)"
    source = f"predicted ({method}): {how} of {len(used)} point(s) [{names}]; " + (
        f"error band {band[0]:+.0%}..{band[1]:+.0%} ({origin})" if band else origin
    )
    value = eff * top
    return Cell(value, f"{value:.0f}", "predicted", source, band)


def known(lib: Library, quantity: str, target: tuple[str, str, str], device: str) -> Cell | None:
    """A measured or published figure of exactly this model, quant and engine on the device."""
    model, quant, engine = target
    found = lib.find(quantity, device=device, model=model, quant=quant, engine=engine)
    if not found:
        return None
    f = found[0]
    return Cell(f.value, f"{f.value:.0f}", f.kind, f"{f.where}, {f.key}")
