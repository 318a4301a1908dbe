"""The memory estimate: weights + KV cache (+ recurrent state) + engine overhead, explained.

``estimate(ModelRequest)`` is what the ``model`` marker and ``pytest-gpubench fit`` call. It is
cached per request, and specs are cached per config file, so a thousand parametrized tests
that name the same few models cost a few dictionary look-ups each.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pytest_gpubench.devices.profile import DeviceProfile
from pytest_gpubench.engines.registry import memory_for
from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.models import formats, kvcache
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

    @property
    def total_gib(self) -> float:
        return self.weights_gib + self.kv_gib + self.state_gib + self.overhead_gib

    @property
    def need_gib(self) -> float:
        """Device memory the run needs: the total, or the total over the engine's fraction."""
        per_gpu = (
            self.weights_gib + self.kv_gib + self.state_gib
        ) / self.tensor_parallel + self.overhead_gib
        per_gpu /= self.utilization or 1.0
        return per_gpu * self.tensor_parallel

    @property
    def label(self) -> str:
        text = f"{self.model} {self.quant}"
        if self.spec.kind in ("llm", "vlm"):
            text += f" @{context_label(self.context)}"
            if self.concurrency > 1:
                text += f" x{self.concurrency}"
        text += f" on {self.engine}"
        if self.tensor_parallel > 1:
            text += f" tp{self.tensor_parallel}"
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
        if self.tensor_parallel > 1 and max(profile.gpu_count, 1) < self.tensor_parallel:
            return False
        return self.need_gib <= self.available_gib(profile)

    def as_dict(self, profiles: list[DeviceProfile] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model": self.model_id,
            "quant": self.quant,
            "context": self.context,
            "concurrency": self.concurrency,
            "engine": self.engine,
            "kv_dtype": self.kv_dtype,
            "tensor_parallel": self.tensor_parallel,
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
        if profiles is not None:
            out["fits"] = {p.name: self.fits(p) for p in profiles}
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
        per_gpu=engine.one_gpu and tp == 1,
        overhead_source=engine.overhead_source,
    )
