"""Roofline bounds and model FLOPs utilisation, from the device profile and the model spec.

Decode is bandwidth-bound: every step reads the active weights once (shared by the batch) and
each sequence's KV cache, so tokens/s <= bandwidth x batch / bytes per step. Prefill and
training are compute-bound: about 2 FLOPs per active parameter per token forward (6 with the
backward pass) plus attention's 4 x layers x context x attention width per token; MFU is the
achieved rate over the device's dense peak for the dtype.
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_gpubench.devices.profile import DeviceProfile
from pytest_gpubench.models.formats import get_format
from pytest_gpubench.models.kvcache import elements_per_token, kv_bytes_per_element
from pytest_gpubench.models.spec import ModelSpec

EXPERT_GROUPS = ("experts", "experts_down")


def active_weight_bytes(spec: ModelSpec, quant: str) -> float:
    """Bytes of weights one decode step reads: routed experts at their active share, and no
    embedding table (one row is gathered per token)."""
    bits = get_format(quant).bits(spec)
    share = spec.experts_per_token / spec.num_experts if spec.num_experts else 1.0
    total = 0.0
    for group, n in spec.groups.items():
        if group in ("embed", "mtp"):
            continue
        scale = share if group in EXPERT_GROUPS else 1.0
        total += n * scale * bits.get(group, 16.0) / 8
    return total


def kv_read_bytes(spec: ModelSpec, context: int, kv_dtype: str = "bf16") -> float:
    """KV bytes one sequence's decode step reads at ``context`` tokens (windows capped)."""
    width = elements_per_token(spec) * kv_bytes_per_element(kv_dtype)
    window = min(context, spec.sliding_window) if spec.sliding_window else context
    return width * (spec.count("full") * context + spec.count("sliding") * window)


@dataclass(frozen=True)
class DecodeBound:
    bytes_per_step: float
    batch: float
    bandwidth_gbs: float

    @property
    def tokens_per_s(self) -> float:
        return self.bandwidth_gbs * 1e9 * self.batch / self.bytes_per_step


def decode_bound(
    spec: ModelSpec,
    quant: str,
    bandwidth_gbs: float,
    *,
    batch: float = 1,
    context: int = 0,
    kv_dtype: str = "bf16",
) -> DecodeBound:
    step = active_weight_bytes(spec, quant) + batch * kv_read_bytes(spec, context, kv_dtype)
    return DecodeBound(step, batch, bandwidth_gbs)


def flops_per_token(spec: ModelSpec, context: int, *, training: bool = False) -> float:
    """2N forward (6N with backward) over active parameters, plus attention scores and values:
    4 x full-attention layers x context x heads x head_dim (x3 for training)."""
    dense = 2.0 * spec.active_params
    attn_width = spec.num_heads * spec.head_dim
    window = min(context, spec.sliding_window) if spec.sliding_window else context
    attention = 4.0 * attn_width * (spec.count("full") * context + spec.count("sliding") * window)
    # Causal attention over a prompt of length `context` averages context/2 keys per token.
    attention /= 2
    forward = dense + attention
    return 3 * forward if training else forward


def mfu(achieved_flops: float, profile: DeviceProfile, dtype: str) -> float | None:
    """Fraction of the device's dense peak for ``dtype``; None where the peak is not known."""
    peak = profile.tflops.get(dtype)
    return achieved_flops / (peak * 1e12) if peak else None
