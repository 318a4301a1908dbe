"""The collection-time verdict for one test on the selected device: run, or skip and why.

The memory need comes from ``needs_vram`` when a test states one, else from the ``model``
marker through the estimator (``pytest_gpubench.selection.estimate``), whose ``Need`` carries the
breakdown; the same verdict, skip reason and end-of-run section serve both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pytest_gpubench.devices.profile import DeviceProfile
from pytest_gpubench.engines.registry import memory_for
from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.selection.estimate import Estimate, GpuShare, estimate
from pytest_gpubench.selection.markers import Requirements


@dataclass(frozen=True)
class Need:
    gib: float
    per_gpu: bool = False  # True: must fit on the largest single GPU
    breakdown: str = ""  # e.g. "gpt-oss-120b mxfp4 @32k: weights 61.0 + KV 2.3 + overhead 1.5"
    source: str = "needs_vram"
    # a model marker's estimate: judged GPU by GPU (``Estimate.shares``)
    estimate: Estimate | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Verdict:
    nodeid: str
    device: str
    runs: bool
    reason: str = ""
    need: Need | None = None
    available_gib: float | None = None

    @property
    def did_not_fit(self) -> bool:
        return not self.runs and self.need is not None and self.available_gib is not None


def available_gib(profile: DeviceProfile, per_gpu: bool) -> float:
    return profile.largest_gpu_gib if per_gpu else profile.memory_gib


def fit_reason(need: Need, profile: DeviceProfile, available: float) -> str:
    where = f"{profile.name}'s largest GPU" if need.per_gpu and profile.parts else profile.name
    head = (
        f"{need.breakdown} = {need.gib:.1f} GiB > "
        if need.breakdown
        else f"needs {need.gib:.1f} GiB, "
    )
    tail = (
        f"{where} has {available:.1f} GiB" if not need.breakdown else f"{where} {available:.1f} GiB"
    )
    return head + tail


def need_for(nodeid: str, req: Requirements) -> Need | None:
    """An explicit needs_vram wins (the user measured it); else the model marker's estimate."""
    if req.vram_gib is not None:
        return Need(req.vram_gib, req.per_gpu)
    if req.model is None:
        return None
    gguf = Path(req.model.model).expanduser()
    if gguf.suffix == ".gguf" and gguf.is_file():
        return gguf_need(gguf)
    try:
        est = estimate(req.model)
    except GpubenchError as exc:
        raise GpubenchError(f"{nodeid}: marker @pytest.mark.model: {exc}") from None
    return Need(est.need_gib, est.per_gpu, est.breakdown, source="model", estimate=est)


def gguf_need(path: Path) -> Need:
    """A local GGUF carries no config.json: its weights are the file; the KV cache is not
    estimated (say so), so the need is a floor, not the whole figure."""
    weights = path.stat().st_size / 2**30
    overhead = memory_for("llamacpp").overhead_gib
    return Need(
        weights + overhead,
        False,
        f"{path.name}: weights {weights:.1f} (file) + overhead {overhead:.1f}, KV not "
        "estimated (no config.json)",
        source="gguf file",
    )


def judge(
    nodeid: str, req: Requirements, profile: DeviceProfile, gpus_present: int | None = None
) -> Verdict:
    """Device restriction first (it is the user's explicit choice), then GPU count, then memory.

    ``gpus_present``: GPUs really there (None: judge by the profile, as the plan does).
    """
    if req.devices:
        names = {profile.name, *(p.name for p in profile.parts)}
        if not names & set(req.devices):
            return Verdict(
                nodeid,
                profile.name,
                False,
                f"runs only on {', '.join(req.devices)}; the selected device is {profile.name}",
            )
    if req.gpus:
        present = profile.gpu_count if gpus_present is None else gpus_present
        if present < req.gpus:
            return Verdict(
                nodeid,
                profile.name,
                False,
                f"needs {req.gpus} GPUs, {present} present on {profile.name}",
            )
    need = need_for(nodeid, req)
    if need is None:
        return Verdict(nodeid, profile.name, True)
    if need.estimate is not None and (need.estimate.gpus_needed > 1 or profile.parts):
        return judge_split(nodeid, need.estimate, profile)
    available = available_gib(profile, need.per_gpu)
    if need.gib > available:
        return Verdict(
            nodeid, profile.name, False, fit_reason(need, profile, available), need, available
        )
    return Verdict(nodeid, profile.name, True, "", need, available)


def split_reason(est: Estimate, profile: DeviceProfile, short: list[GpuShare]) -> str:
    """Which GPU runs short, with its share: '... GPU 1 (rtx5070ti) needs 17.1 GiB (31 layers
    + output: weights 15.6 + KV 0.5 + overhead 1.0) > 16.0 GiB'."""
    head = f"{est.label} on {profile.name}: "
    if not short:
        present = max(profile.gpu_count, 1)
        return head + f"needs {est.gpus_needed} GPUs, {profile.name} has {present}"
    over = "; ".join(
        f"{s.label} needs {s.need_gib:.1f} GiB ({s.what}"
        + (f", / {est.utilization:.2f} gpu_memory_utilization" if est.utilization else "")
        + f") > {s.available_gib:.1f} GiB"
        for s in short
    )
    return head + over


def judge_split(nodeid: str, est: Estimate, profile: DeviceProfile) -> Verdict:
    """A model over several GPUs (or on a device of several): every GPU's share must fit."""
    shares = est.shares(profile)
    short = [s for s in shares if not s.fits] if shares else []
    if shares and not short:
        worst = max(shares, key=lambda s: s.need_gib / max(s.available_gib, 1e-9))
        need = Need(worst.need_gib, True, f"{worst.label}: {worst.what}", "model", est)
        return Verdict(nodeid, profile.name, True, "", need, worst.available_gib)
    reason = split_reason(est, profile, short)
    if not short:  # too few GPUs: no memory figure to put in the did-not-fit table
        return Verdict(nodeid, profile.name, False, reason)
    first = short[0]
    need = Need(first.need_gib, True, f"{first.label}: {first.what}", "model", est)
    return Verdict(nodeid, profile.name, False, reason, need, first.available_gib)
