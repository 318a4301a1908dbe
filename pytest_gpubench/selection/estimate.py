"""The memory estimate: weights + KV cache (+ recurrent state) + engine overhead, explained.

``estimate(ModelRequest)`` is what the ``model`` marker and ``pytest-gpubench fit`` call. It is
cached per request, and specs are cached per config file, so a thousand parametrized tests
that name the same few models cost a few dictionary look-ups each.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pytest_gpubench.devices.profile import DeviceProfile
from pytest_gpubench.engines.registry import memory_for
from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.models import formats, kvcache, split
from pytest_gpubench.models.catalog import load_spec
from pytest_gpubench.models.spec import ModelSpec

GIB = 2**30
DEFAULT_CONTEXT = 4096


@dataclass(frozen=True)
class ModelRequest:
    """What a ``model(...)`` marker or the ``fit`` command asks for; hashable for caching."""

    model: str
    quant: str | None = None
    context: int | None = None
    concurrency: int = 1
    engine: str | None = None
    kv_dtype: str | None = None
    tensor_parallel: int = 1
    pipeline_parallel: int = 1
    data_parallel: int = 1
    split_mode: str | None = None  # llama.cpp: layer (default over several GPUs), row, none
    tensor_split: tuple[float, ...] | None = None  # llama.cpp: shares per GPU, e.g. (3, 1)


_CTX = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*$")


def parse_context(value: Any) -> int:
    """Tokens from 32768, '32768', '32k' (x1024) or '1m'."""
    if isinstance(value, bool):
        raise GpubenchError(f"context must be a number of tokens such as '32k', got {value!r}")
    if isinstance(value, int) and value > 0:
        return value
    match = _CTX.match(str(value)) if isinstance(value, str | float) else None
    if not match:
        raise GpubenchError(
            f"context must be a positive number of tokens such as 32768 or '32k', got {value!r}"
        )
    number = float(match.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[match.group(2).lower()]
    if number < 1:
        raise GpubenchError(f"context must be at least 1 token, got {value!r}")
    return int(number)


def context_label(tokens: int) -> str:
    if tokens % 1024 == 0:
        return f"{tokens // 1024}k"
    return str(tokens)


@dataclass(frozen=True)
class GpuShare:
    """One GPU's part of a run: which GPU of the device, what it must hold, what it has."""

    index: int  # position in the device's parts (CUDA device order)
    gpu: str
    need_gib: float
    available_gib: float
    what: str  # e.g. "41 layers: weights 20.3 + KV 0.6 + overhead 1.0"

    @property
    def fits(self) -> bool:
        return self.need_gib <= self.available_gib

    @property
    def label(self) -> str:
        return f"GPU {self.index} ({self.gpu})"


@dataclass(frozen=True)
class Estimate:
    model: str
    model_id: str
    spec: ModelSpec
    quant: str
    context: int
    concurrency: int
    engine: str
    kv_dtype: str
    tensor_parallel: int
    weights_gib: float
    file_gib: float  # the checkpoint as shipped (MTP layers included)
    kv_gib: float
    state_gib: float
    overhead_gib: float
    utilization: float | None
    per_gpu: bool
    overhead_source: str
    pipeline_parallel: int = 1
    data_parallel: int = 1
    split_mode: str | None = None
    tensor_split: tuple[float, ...] | None = None
    first_gib: float = 0.0  # embeddings (and vision tower): on the first GPU / stage
    head_gib: float = 0.0  # LM head: with the output layer / on the last stage

    @property
    def total_gib(self) -> float:
        return self.weights_gib + self.kv_gib + self.state_gib + self.overhead_gib

    @property
    def parallel(self) -> bool:
        """vLLM / SGLang: the layout over GPUs is tp x pp x dp, fixed by the options."""
        return self.per_gpu or self.gpus_needed > 1

    @property
    def gpus_needed(self) -> int:
        return self.tensor_parallel * self.pipeline_parallel * self.data_parallel

    def _replica_kv(self) -> float:
        """KV cache and state of one data-parallel replica: its share of the sequences."""
        share = math.ceil(self.concurrency / self.data_parallel) / self.concurrency
        return (self.kv_gib + self.state_gib) * share

    def layout(self) -> list[tuple[float, str]]:
        """vLLM / SGLang: (need GiB, what) per GPU, replica by replica, stage by stage."""
        tp, pp = self.tensor_parallel, self.pipeline_parallel
        layers = max(self.spec.num_layers, 1)
        body = self.weights_gib - self.first_gib - self.head_gib
        kv = self._replica_kv()
        out = []
        for _replica in range(self.data_parallel):
            for stage, n in enumerate(split.pp_layers(layers, pp) if pp > 1 else [layers]):
                w = body * n / layers
                w += self.first_gib if stage == 0 else 0.0
                w += self.head_gib if stage == pp - 1 else 0.0
                k = kv * n / layers
                need = ((w + k) / tp + self.overhead_gib) / (self.utilization or 1.0)
                what = f"weights {w / tp:.1f} + KV {k / tp:.1f} + overhead {self.overhead_gib:.1f}"
                if pp > 1:
                    what = f"stage {stage}: {n} layers, " + what
                out += [(need, what)] * tp
        return out

    @property
    def need_gib(self) -> float:
        """Device memory the run needs over all its GPUs (the total, over the engine's
        fraction where it claims one); ``per_gpu_need_gib`` is what the busiest GPU holds."""
        if self.parallel:
            return sum(need for need, _ in self.layout())
        return self.total_gib / (self.utilization or 1.0)

    @property
    def per_gpu_need_gib(self) -> float:
        """vLLM / SGLang: the busiest GPU's need; one GPU: the need itself. A layer split's
        share depends on the device's GPUs: see ``shares``."""
        if self.parallel:
            return max(need for need, _ in self.layout())
        return self.need_gib

    def shares(self, profile: DeviceProfile) -> list[GpuShare]:
        """What each GPU of ``profile`` the run uses must hold (an empty list: too few GPUs)."""
        gpus = list(profile.parts) or [profile]
        u = self.utilization or 1.0
        if self.parallel:
            if len(gpus) < self.gpus_needed:
                return []
            # the largest GPUs first: an engine pinned to them (CUDA_VISIBLE_DEVICES) runs
            order = sorted(range(len(gpus)), key=lambda i: -gpus[i].memory_gib)
            return [
                GpuShare(i, gpus[i].name, need, gpus[i].memory_gib, what)
                for i, (need, what) in zip(order, self.layout(), strict=False)
            ]
        mode = self.split_mode or "layer"
        if len(gpus) == 1 or mode == "none":
            return [GpuShare(0, gpus[0].name, self.total_gib / u, gpus[0].memory_gib, "all")]
        ratios = list(self.tensor_split or ())[: len(gpus)]
        if not sum(ratios) > 0:  # llama.cpp's default: each GPU's free memory
            ratios = [g.memory_gib for g in gpus]
        ratios += [0.0] * (len(gpus) - len(ratios))
        layers = max(self.spec.num_layers, 1)
        body = self.weights_gib - self.first_gib - self.head_gib
        kv = self.kv_gib + self.state_gib
        out = []
        if mode == "row":
            for i, f in enumerate(split.fractions(ratios)):
                w = (body + self.head_gib) * f + (self.first_gib if i == 0 else 0.0)
                k = kv if i == 0 else 0.0
                if i and not f:
                    continue
                need = (w + k + self.overhead_gib) / u
                what = f"{f:.0%} of each matrix: weights {w:.1f} + KV {k:.1f} + overhead "
                out.append(
                    GpuShare(
                        i, gpus[i].name, need, gpus[i].memory_gib, what + f"{self.overhead_gib:.1f}"
                    )
                )
            return out
        slots = split.llamacpp_layer_slots(layers, ratios)
        first = slots[0]
        for i in sorted(set(slots)):
            n = sum(1 for gpu in slots[:-1] if gpu == i)
            w = body * n / layers + (self.head_gib if slots[-1] == i else 0.0)
            w += self.first_gib if i == first else 0.0
            k = kv * n / layers
            need = (w + k + self.overhead_gib) / u
            what = f"{n} layers" + (" + output" if slots[-1] == i else "")
            what += f": weights {w:.1f} + KV {k:.1f} + overhead {self.overhead_gib:.1f}"
            out.append(GpuShare(i, gpus[i].name, need, gpus[i].memory_gib, what))
        return out

    def short(self, profile: DeviceProfile) -> list[GpuShare]:
        """The GPUs of ``profile`` that run short (all of them, as needed, when too few)."""
        return [s for s in self.shares(profile) if not s.fits]

    @property
    def split_label(self) -> str:
        parts = []
        for name, value in (
            ("tp", self.tensor_parallel),
            ("pp", self.pipeline_parallel),
            ("dp", self.data_parallel),
        ):
            if value > 1:
                parts.append(f"{name}{value}")
        if self.split_mode:
            parts.append(f"split {self.split_mode}")
        if self.tensor_split:
            parts.append("tensor-split " + ":".join(f"{r:g}" for r in self.tensor_split))
        return " ".join(parts)

    @property
    def label(self) -> str:
        text = f"{self.model} {self.quant}"
        if self.spec.kind in ("llm", "vlm"):
            text += f" @{context_label(self.context)}"
            if self.concurrency > 1:
                text += f" x{self.concurrency}"
        text += f" on {self.engine}"
        if self.split_label:
            text += f" {self.split_label}"
        return text

    @property
    def breakdown(self) -> str:
        terms = f"weights {self.weights_gib:.1f}"
        if self.spec.kind in ("llm", "vlm"):
            terms += f" + KV {self.kv_gib:.1f}"
        if self.state_gib >= 0.05:
            terms += f" + state {self.state_gib:.1f}"
        terms += f" + overhead {self.overhead_gib:.1f}"
        if self.utilization:
            return f"{self.label}: ({terms}) / {self.utilization:.2f} gpu_memory_utilization"
        return f"{self.label}: {terms}"

    def available_gib(self, profile: DeviceProfile) -> float:
        return profile.largest_gpu_gib if self.per_gpu else profile.memory_gib

    def fits(self, profile: DeviceProfile) -> bool:
        """Every GPU the run uses holds its share (and there are enough GPUs)."""
        shares = self.shares(profile)
        return bool(shares) and all(s.fits for s in shares)

    def as_dict(self, profiles: list[DeviceProfile] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model": self.model_id,
            "quant": self.quant,
            "context": self.context,
            "concurrency": self.concurrency,
            "engine": self.engine,
            "kv_dtype": self.kv_dtype,
            "tensor_parallel": self.tensor_parallel,
            "pipeline_parallel": self.pipeline_parallel,
            "data_parallel": self.data_parallel,
            "split_mode": self.split_mode,
            "tensor_split": list(self.tensor_split) if self.tensor_split else None,
            "memory_unit": "GiB (2^30 bytes); the *_gb keys hold GiB",
            "params_b": round(self.spec.total_params / 1e9, 3),
            "active_params_b": round(self.spec.active_params / 1e9, 3),
            "weights_gb": round(self.weights_gib, 3),
            "file_gb": round(self.file_gib, 3),
            "kv_cache_gb": round(self.kv_gib, 3),
            "state_gb": round(self.state_gib, 3),
            "overhead_gb": round(self.overhead_gib, 3),
            "total_gb": round(self.total_gib, 3),
            "need_gb": round(self.need_gib, 3),
            "gpu_memory_utilization": self.utilization,
            "one_gpu": self.per_gpu,
            "breakdown": f"{self.breakdown} = {self.need_gib:.1f} GiB",
            "overhead_source": self.overhead_source,
            "config": self.spec.source,
        }
        if self.gpus_needed > 1:
            out["per_gpu_need_gb"] = round(self.per_gpu_need_gib, 3)
        if profiles is not None:
            out["fits"] = {p.name: self.fits(p) for p in profiles}
            out["per_gpu"] = {
                p.name: [
                    {
                        "gpu": s.index,
                        "name": s.gpu,
                        "need_gb": round(s.need_gib, 3),
                        "available_gb": s.available_gib,
                        "what": s.what,
                    }
                    for s in self.shares(p)
                ]
                for p in profiles
            }
        return out


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise GpubenchError(f"{what} must be a positive whole number, got {value!r}")
    return value


def default_engine(spec: ModelSpec, gguf: bool) -> str:
    """GGUF files run on llama.cpp, safetensors LLMs on vLLM, pipelines/detectors in-process."""
    if spec.kind in ("image_generation", "object_detection"):
        return "transformers"
    return "llamacpp" if gguf else "vllm"


def estimate(req: ModelRequest) -> Estimate:
    """The memory estimate of ``req``, cached per request.

    The counts are checked before the cache is asked: ``True == 1`` and ``1.0 == 1`` hash
    alike, so a cached ``concurrency=1`` answer would otherwise answer ``concurrency=True``.
    """
    _positive_int(req.concurrency, "concurrency")
    _positive_int(req.tensor_parallel, "tensor_parallel")
    _positive_int(req.pipeline_parallel, "pipeline_parallel")
    _positive_int(req.data_parallel, "data_parallel")
    split.check_split_mode(req.split_mode)
    if req.tensor_split is not None:
        if not isinstance(req.tensor_split, tuple):  # hashable, for the cache
            raise GpubenchError(
                f"tensor_split must be a tuple of shares such as (3, 1), got {req.tensor_split!r}"
            )
        split.check_tensor_split(req.tensor_split)  # (True, 1) after (1, 1) likewise
    if req.context is not None:
        parse_context(req.context)  # context=True after context=1 likewise
    return _estimate(req)


@lru_cache(maxsize=4096)
def _estimate(req: ModelRequest) -> Estimate:
    spec, resolved = load_spec(req.model)
    entry = resolved.entry
    quant = req.quant or (entry.default_quant if entry else "bf16")
    fmt = formats.get_format(quant)
    engine = memory_for(req.engine or default_engine(spec, fmt.gguf))
    concurrency = _positive_int(req.concurrency, "concurrency")
    tp = _positive_int(req.tensor_parallel, "tensor_parallel")
    pp = _positive_int(req.pipeline_parallel, "pipeline_parallel")
    dp = _positive_int(req.data_parallel, "data_parallel")
    split_mode = split.check_split_mode(req.split_mode)
    tensor_split = split.check_tensor_split(req.tensor_split)
    if engine.one_gpu and (split_mode or tensor_split):
        raise GpubenchError(
            f"split_mode and tensor_split are llama.cpp's options; {engine.name} spreads a "
            "model with tensor_parallel, pipeline_parallel and data_parallel"
        )
    if not engine.one_gpu and tp * pp * dp > 1:
        raise GpubenchError(
            f"tensor_parallel, pipeline_parallel and data_parallel are vLLM's and SGLang's "
            f"options; {engine.name} spreads layers over the GPUs (split_mode, tensor_split)"
        )
    context = parse_context(req.context) if req.context is not None else DEFAULT_CONTEXT
    if spec.max_context and context > spec.max_context:
        raise GpubenchError(
            f"context {context} exceeds {resolved.name}'s max_position_embeddings "
            f"{spec.max_context} ({spec.source})"
        )
    kv_dtype = kvcache.normalize_kv_dtype(req.kv_dtype or engine.default_kv_dtype)
    with_mtp = fmt.bytes_for(spec)
    mtp_bits = fmt.bits(spec).get("mtp", 16.0)
    weights = with_mtp - spec.groups.get("mtp", 0) * mtp_bits / 8  # engines skip MTP layers
    bits = fmt.bits(spec)
    first = sum(spec.groups.get(g, 0) * bits.get(g, 16.0) / 8 for g in ("embed", "vision"))
    head = spec.groups.get("lm_head", 0) * bits.get("lm_head", 16.0) / 8
    kv = kvcache.kv_cache(
        spec,
        tokens=context * concurrency,
        window_tokens=engine.window_tokens(spec, context, concurrency),
        sequences=concurrency,
        kv_dtype=kv_dtype,
        mla_mode=engine.mla_mode,
    )
    return Estimate(
        model=resolved.name,
        model_id=entry.id if entry else str(resolved.config_path),
        spec=spec,
        quant=fmt.name,
        context=context,
        concurrency=concurrency,
        engine=engine.name,
        kv_dtype=kv_dtype,
        tensor_parallel=tp,
        weights_gib=weights / GIB,
        file_gib=with_mtp / GIB,
        kv_gib=(kv.full_bytes + kv.window_bytes) / GIB,
        state_gib=kv.state_bytes / GIB,
        overhead_gib=engine.overhead_gib,
        utilization=engine.utilization,
        per_gpu=engine.one_gpu and tp * pp * dp == 1,
        overhead_source=engine.overhead_source,
        pipeline_parallel=pp,
        data_parallel=dp,
        split_mode=split_mode,
        tensor_split=tensor_split,
        first_gib=first / GIB,
        head_gib=head / GIB,
    )
