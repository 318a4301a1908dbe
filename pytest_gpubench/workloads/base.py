"""What every in-process workload shares: device and dtype, model building, run records.

Imports torch at the top: import this only after ``extras.require`` succeeded.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from pytest_gpubench.workloads import memory
from pytest_gpubench.workloads.synthetic import WeightsChoice, catalog_config, choose_weights
from pytest_gpubench.workloads.tiny import tiny_config


def pick_device(requested: str | None = None) -> torch.device:
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def pick_dtype(device: torch.device, requested: str | None = None) -> torch.dtype:
    """bf16 on GPUs (what the seed ran), fp32 on CPU (bf16 matmuls are slow on most CPUs)."""
    if requested:
        return getattr(torch, requested)
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def now(device: torch.device) -> float:
    """A clock read after the device's queued work has finished."""
    sync(device)
    return time.perf_counter()


@dataclass
class ModelSource:
    """The config a workload builds from and the weights it uses, as recorded with results."""

    model: str
    size: str  # "full" (the catalog config) or "tiny" (CPU-sized, same architecture)
    config: dict[str, Any]
    weights: WeightsChoice

    @classmethod
    def resolve(cls, model: str, size: str, weights: str) -> ModelSource:
        from pytest_gpubench.errors import GpubenchError

        if size not in ("full", "tiny"):
            raise GpubenchError(f"size={size!r} must be 'full' or 'tiny'")
        tiny = size == "tiny"
        config = tiny_config(model) if tiny else catalog_config(model)
        return cls(model, size, config, choose_weights(model, weights, tiny))

    def info(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "size": self.size,
            "weights": self.weights.weights,
            "weights_reason": self.weights.reason,
        }


def causal_lm(source: ModelSource, device: torch.device, dtype: torch.dtype, **kwargs: Any):
    """A causal LM: the real checkpoint (weights='hub') or random weights from the config."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from pytest_gpubench.workloads.synthetic import from_hub

    if source.weights.weights == "hub":
        model = from_hub(AutoModelForCausalLM.from_pretrained, source.model, dtype=dtype, **kwargs)
        return model.to(device)
    cfg = dict(source.config)
    model_type = cfg.pop("model_type")
    cfg.pop("architectures", None)
    cfg.pop("torch_dtype", None)
    # Random weights are built in the compute dtype; a quantized checkpoint's format (gpt-oss's
    # MXFP4 experts) needs the real weights, so its quantization_config does not apply here.
    cfg.pop("quantization_config", None)
    config = AutoConfig.for_model(model_type, **cfg)
    with torch.device(device):  # initialise on the GPU: an 8B model inits in seconds there
        try:
            model = AutoModelForCausalLM.from_config(config, dtype=dtype, **kwargs)
        except ValueError as exc:
            # Some architectures (gpt-oss in transformers 5.17) have no SDPA path yet: fall
            # back to eager attention, and the run records which one it used.
            if (
                "attention implementation" not in str(exc)
                or kwargs.get("attn_implementation") == "eager"
            ):
                raise
            kwargs["attn_implementation"] = "eager"
            model = AutoModelForCausalLM.from_config(config, dtype=dtype, **kwargs)
    return model


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@dataclass
class RunInfo:
    """Facts about one workload run, stored in pytest-benchmark's ``extra_info["workload"]``."""

    workload: str
    device: str
    dtype: str
    source: dict[str, Any]
    settings: dict[str, Any]
    facts: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def record_info(gpubench: Any, info: RunInfo) -> None:
    gpubench.benchmark.extra_info["workload"] = info.as_dict()


def record_peak_memory(gpubench: Any) -> float:
    gib, what = memory.peak_gib()
    gpubench.metric("peak_memory_gib", gib, "GiB", False, description=what)
    return gib


@contextmanager
def cpu_threads(size: str, device: torch.device, threads: int | None) -> Iterator[int]:
    """Intra-op threads for the run: one for tiny models on CPU unless told otherwise.

    A tiny model's operators take microseconds, so spreading each over several threads costs
    more than it gains, and on a shared machine the threads spin-wait for busy cores (measured
    on a loaded 2-core machine: 1.43 s per tiny RT-DETRv2 step with 2 threads, 0.17 s with 1).
    """
    before = torch.get_num_threads()
    wanted = threads or (1 if size == "tiny" and device.type == "cpu" else before)
    torch.set_num_threads(wanted)
    try:
        yield wanted
    finally:
        torch.set_num_threads(before)


@contextmanager
def build_on(device: torch.device, dtype: torch.dtype) -> Iterator[None]:
    """Create parameters directly on ``device`` in ``dtype``: a 4 B-parameter model built in
    fp32 and converted afterwards would need twice its memory for a moment."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(before)


def record_roofline(
    gpubench: Any,
    source: ModelSource,
    *,
    decode_tok_s: float | None = None,
    batch: int = 1,
    context: int = 0,
    tokens_per_s: float | None = None,
    seq: int = 0,
    training: bool = False,
    dtype: str = "bf16",
) -> None:
    """Roofline % for decode and MFU for prefill/training, for full-size catalog models only
    (a tiny CPU config is not the model the catalog spec describes)."""
    if source.size != "full":
        return
    from pytest_gpubench.metrics import roofline
    from pytest_gpubench.models.catalog import load_spec

    spec, _ = load_spec(source.model)
    if decode_tok_s:
        gpubench.roofline_decode(
            decode_tok_s, model=source.model, quant=dtype, batch=batch, context=context
        )
    if tokens_per_s:
        gpubench.mfu(
            tokens_per_s, roofline.flops_per_token(spec, seq, training=training), dtype=dtype
        )
