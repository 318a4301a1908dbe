"""FLOPs of one real call, counted by PyTorch, for MFU where no formula fits.

``torch.utils.flop_counter.FlopCounterMode`` is PyTorch's maintained FLOP counter: a dispatch
mode that sees every matmul, convolution and attention kernel a call runs (backward included,
when ``.backward()`` runs inside it) and counts each from its shapes. It is used here rather
than a formula because the models measured with it have none that holds: a diffusion
transformer's step mixes image and text tokens, joint and single-stream blocks, modulation and
RoPE layers; RT-DETR's backbone is a convolutional network whose cost depends on the input
resolution, followed by deformable attention and a matching loss; and a VAE decoder is all
convolutions. A "2N FLOPs per token" rule (``metrics.roofline.flops_per_token``, right for
decoder-only LMs) describes none of them. Counting one call costs one call with Python-level
bookkeeping per operator, so workloads count once, outside the timed rounds.

Only kernels with a FLOP formula count (matmuls, convolutions, attention); elementwise work,
normalisation and the optimizer step are not FLOPs in the MFU sense. Attention is counted as
PyTorch counts it: full (not causal) score matrices, and the backward pass's recomputation of
the scores included. PyTorch's registry has no formula for the CPU flash-attention kernel, so
the CPU attention FLOPs would be silently zero: ``CPU_ATTENTION`` maps it to the same formula
the CUDA kernels use, so a count does not depend on the device it ran on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils import flop_counter

aten = torch.ops.aten


def _cpu_attention(query: Any, key: Any, value: Any, *args: Any, **kwargs: Any) -> int:
    return flop_counter.sdpa_flop_count(query, key, value)


def _cpu_attention_backward(
    grad_out: Any, query: Any, key: Any, value: Any, *args: Any, **kwargs: Any
) -> int:
    return flop_counter.sdpa_backward_flop_count(grad_out, query, key, value)


# FlopCounterMode hands these the shapes of the kernel's arguments (the kernels' signatures
# start as the CUDA flash kernels' do: query, key, value; grad_out first for the backward).
CPU_ATTENTION: dict[Any, Callable[..., int]] = {
    aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention,
    aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_attention_backward,
}

COUNTER = "torch.utils.flop_counter.FlopCounterMode"


def counter() -> flop_counter.FlopCounterMode:
    """A silent counter with the CPU attention kernels counted too."""
    return flop_counter.FlopCounterMode(display=False, custom_mapping=dict(CPU_ATTENTION))


def mfu_dtype(dtype: torch.dtype) -> str:
    """The device profile's name for the dtype the matmuls ran in (``bf16``, ``fp16``...)."""
    return {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}.get(
        dtype, str(dtype).removeprefix("torch.")
    )


@dataclass
class CallFlops:
    """FLOPs of one call: the total, and the share spent inside each named component."""

    total: int = 0
    parts: dict[str, int] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)

    @property
    def other(self) -> int:
        """FLOPs outside every named component (a scheduler's or a loss's own matmuls)."""
        return self.total - sum(self.parts.values())


@contextmanager
def _attributed(
    mode: flop_counter.FlopCounterMode, parts: Mapping[str, tuple[Any, str]], out: CallFlops
) -> Iterator[None]:
    """Wrap each ``(object, method)`` of ``parts`` so that the FLOPs counted while it runs are
    added to ``out.parts[name]``; the wrappers are removed afterwards."""
    restore: list[tuple[Any, str, Any]] = []

    def wrap(name: str, obj: Any, method: str) -> None:
        original = getattr(obj, method)
        depth = [0]

        def counted(*args: Any, **kwargs: Any) -> Any:
            depth[0] += 1
            before = mode.get_total_flops()
            try:
                return original(*args, **kwargs)
            finally:
                depth[0] -= 1
                if depth[0] == 0:  # a component calling itself is counted once
                    out.parts[name] += mode.get_total_flops() - before
                    out.calls[name] += 1

        # an instance attribute shadows the class's method (nn.Module.__call__ looks up
        # self.forward, so a wrapped forward is what the module runs)
        restore.append((obj, method, obj.__dict__.get(method, _MISSING)))
        setattr(obj, method, counted)

    try:
        for name, (obj, method) in parts.items():
            out.parts[name] = 0
            out.calls[name] = 0
            wrap(name, obj, method)
        yield
    finally:
        for obj, method, before in reversed(restore):
            if before is _MISSING:
                delattr(obj, method)
            else:
                setattr(obj, method, before)


_MISSING = object()


def count_call(
    fn: Callable[..., Any],
    *args: Any,
    parts: Mapping[str, tuple[Any, str]] | None = None,
    **kwargs: Any,
) -> tuple[Any, CallFlops]:
    """Run ``fn(*args, **kwargs)`` once under the counter; returns its result and the FLOPs.

    ``parts`` names components to attribute FLOPs to, each as ``(object, method name)``, e.g.
    ``{"transformer": (pipe.transformer, "forward"), "vae_decode": (pipe.vae, "decode")}``.
    """
    out = CallFlops()
    mode = counter()
    with mode, _attributed(mode, parts or {}, out):
        result = fn(*args, **kwargs)
    out.total = mode.get_total_flops()
    return result, out


# --- diffusion: per denoising step and per image ---------------------------------------------


@dataclass(frozen=True)
class DiffusionFlops:
    """FLOPs of one image from a counted pipeline call: the denoising steps, each one
    transformer pass (two where classifier-free guidance runs the transformer twice), plus the
    text encoder and the VAE decode, which run once per image."""

    steps: int
    transformer_calls: int  # per image: steps, or 2 x steps under classifier-free guidance
    per_step: float  # the transformer's FLOPs per denoising step
    text_encoder: int
    vae_decode: int
    other: int  # outside the three (the scheduler has no matmuls: normally 0)

    @property
    def transformer(self) -> float:
        return self.steps * self.per_step

    @property
    def per_image(self) -> float:
        return self.transformer + self.text_encoder + self.vae_decode + self.other

    def as_dict(self) -> dict[str, Any]:
        return {
            "counter": COUNTER,
            "steps": self.steps,
            "transformer_calls_per_image": self.transformer_calls,
            "per_step": self.per_step,
            "transformer_per_image": self.transformer,
            "text_encoder_per_image": self.text_encoder,
            "vae_decode_per_image": self.vae_decode,
            "other_per_image": self.other,
            "per_image": self.per_image,
        }


PIPELINE_PARTS = (("transformer", "forward"), ("text_encoder", "forward"), ("vae", "decode"))


def pipeline_parts(pipe: Any) -> dict[str, tuple[Any, str]]:
    """The components of a diffusers pipeline to attribute FLOPs to (those it has)."""
    found = {}
    for attr, method in PIPELINE_PARTS:
        obj = getattr(pipe, attr, None)
        if obj is not None:
            found["vae_decode" if attr == "vae" else attr] = (obj, method)
    return found


def diffusion_flops(counted: CallFlops, steps: int, images: int = 1) -> DiffusionFlops:
    """Per-image and per-step FLOPs from a counted call that generated ``images`` images in
    ``steps`` denoising steps (one batch: each transformer pass covers all its images)."""

    def per(name: str) -> int:
        return counted.parts.get(name, 0) // images

    return DiffusionFlops(
        steps=steps,
        transformer_calls=counted.calls.get("transformer", 0),
        per_step=per("transformer") / steps,
        text_encoder=per("text_encoder"),
        vae_decode=per("vae_decode"),
        other=counted.other // images,
    )


# --- training: one step, forward and backward ------------------------------------------------


@dataclass(frozen=True)
class StepFlops:
    """FLOPs of one training step on one batch: forward (loss included) and backward."""

    forward: int
    backward: int
    samples: int  # in the batch

    @property
    def total(self) -> int:
        return self.forward + self.backward

    @property
    def per_sample(self) -> float:
        return self.total / self.samples

    def as_dict(self, unit: str = "sample") -> dict[str, Any]:
        return {
            "counter": COUNTER,
            "batch": self.samples,
            "forward_per_step": self.forward,
            "backward_per_step": self.backward,
            "per_step": self.total,
            f"per_{unit}": self.per_sample,
        }


def to_device(value: Any, device: torch.device) -> Any:
    """A batch (tensors in dicts, lists, tuples) moved to ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, Mapping):
        return {k: to_device(v, device) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(to_device(v, device) for v in value)
    return value


def training_step_flops(
    model: torch.nn.Module,
    batch: Mapping[str, Any],
    samples: int,
    *,
    autocast: torch.dtype | None = None,
) -> StepFlops:
    """Count one training step's forward (``model(**batch).loss``) and backward on ``batch``.

    Leaves the model as it found it: gradients cleared, buffers (batch-norm statistics)
    restored, and the random-number state untouched, so the timed training that follows is
    the same as without the count. ``autocast``: the mixed-precision dtype training runs in.
    """
    device = next(model.parameters()).device
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    was_training = model.training
    model.train()
    mode = counter()
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices), mode:
            mixed = torch.autocast(device.type, dtype=autocast, enabled=autocast is not None)
            with mixed:
                loss = model(**batch).loss
            forward = mode.get_total_flops()
            loss.backward()
        backward = mode.get_total_flops() - forward
    finally:
        model.zero_grad(set_to_none=True)
        with torch.no_grad():
            for name, b in model.named_buffers():
                b.copy_(buffers[name])
        model.train(was_training)
    return StepFlops(forward, backward, samples)
