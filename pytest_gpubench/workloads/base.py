"""What every in-process workload shares: device and dtype, model building, run records.

``InProcessWorkload`` is the one base the fine-tune, detection, generate and diffusion
workloads build on: it resolves the model source, device and dtype from the settings, runs the
workload under the right CPU thread count and records the run's facts, so each workload only
says what it builds and what it measures. Imports torch at the top: import this only after
``extras.require`` succeeded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import torch

from pytest_gpubench.results.sections import WorkloadInfo, write_workload
from pytest_gpubench.workloads import memory
from pytest_gpubench.workloads.resident import resident
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


#: facts about one workload run, stored in ``extra_info["workload"]`` (results/sections.py)
RunInfo = WorkloadInfo


def record_info(gpubench: Any, info: RunInfo) -> None:
    write_workload(gpubench.benchmark.extra_info, info)


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


class WorkloadSettings(Protocol):
    """The settings every in-process workload has (each adds its own to these): a dataclass."""

    __dataclass_fields__: ClassVar[dict[str, Any]]
    model: str
    size: str  # "full" or "tiny"
    weights: str  # "auto", "random" or "hub"
    device: str | None
    dtype: str | None
    threads: int | None  # CPU intra-op threads; default 1 for tiny models on CPU


# Covariant: a Finetune is an InProcessWorkload[TrainingSettings, Any] where that is asked for.
S = TypeVar("S", bound=WorkloadSettings, covariant=True)
R = TypeVar("R", covariant=True)


class InProcessWorkload(Generic[S, R]):
    """A workload that runs its model in this process: ``Workload(settings).run(gpubench)``.

    Construction resolves what is cheap and can fail early (model source, device, dtype), so a
    bad setting fails before anything is built; ``run`` builds and measures. Subclasses set
    ``name`` (recorded as the workload) and implement ``_run``; a subclass that validates its
    settings does so before calling ``super().__init__``.
    """

    name: ClassVar[str]

    def __init__(self, settings: S) -> None:
        self.settings = settings
        self.source = ModelSource.resolve(settings.model, settings.size, settings.weights)
        self.device = pick_device(settings.device)
        self.dtype = pick_dtype(self.device, settings.dtype)
        self.threads: int | None = None  # set by ``run``: the intra-op threads it ran with

    @property
    def dtype_name(self) -> str:
        """``bfloat16``, ``float32``...: the dtype as results record it."""
        return str(self.dtype).removeprefix("torch.")

    def run(self, gpubench: Any) -> R:
        """Build, measure and record through ``gpubench``; returns the workload's result."""
        s = self.settings
        with cpu_threads(s.size, self.device, s.threads) as threads:
            self.threads = threads
            return self._run(gpubench)

    def _run(self, gpubench: Any) -> R:
        raise NotImplementedError

    def resident_model(self, kind: str, build: Callable[[], Any], *key: Hashable) -> Any:
        """The model ``build`` makes, kept resident for the next benchmark with the same model,
        weights, device and dtype (and ``key``: whatever else changes what is built)."""
        src = self.source
        full = (kind, src.model, src.size, src.weights.weights, str(self.device), str(self.dtype))
        return resident((*full, *key), build)

    def record_info(self, gpubench: Any, facts: dict[str, Any], **settings: Any) -> None:
        """Store the run's ``RunInfo``: the settings as given, updated with ``settings`` (values
        the workload resolved, e.g. a model card's steps), and ``facts`` learnt while running."""
        recorded = {**asdict(self.settings), **settings}
        record_info(
            gpubench,
            RunInfo(
                self.name, str(self.device), self.dtype_name, self.source.info(), recorded, facts
            ),
        )
