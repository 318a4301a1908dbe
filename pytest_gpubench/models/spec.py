"""``ModelSpec``: a model's architecture read from its Hugging Face ``config.json``.

Parameters are computed analytically from the config (no torch, no transformers), grouped by
the tensors a weight format treats alike (embeddings, attention V, FFN down, experts, ...), so
``formats`` can price a mixed quantisation such as Q4_K_M or gpt-oss MXFP4 group by group.
The counts reproduce transformers' instantiated models; tests check them against the
published totals in the catalog.

Layers carry their attention kind ('full', 'sliding', 'linear' for Gated DeltaNet, 'mamba',
'none' for MoE/MLP-only blocks), because only full-attention layers hold a KV cache that grows
with the context.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_gpubench.models.architectures import (
    GROUPS,
    ConfigError,
    KVGeometry,
    _Census,
    _Cfg,
    _text_spec,
    _vision,
    _with_defaults,
)

__all__ = ["GROUPS", "ConfigError", "KVGeometry", "ModelSpec", "spec_from_config"]


@dataclass(frozen=True)
class ModelSpec:
    """A model's shape and parameter census; built once per config file and cached."""

    name: str
    source: str  # the config file it came from
    model_type: str
    kind: str  # llm, vlm, image_generation, object_detection
    vocab_size: int = 0
    hidden_size: int = 0
    num_layers: int = 0
    num_heads: int = 0
    num_kv_heads: int = 0
    head_dim: int = 0
    intermediate_size: int = 0
    tied_embeddings: bool = False
    num_experts: int = 0
    experts_per_token: int = 0
    num_shared_experts: int = 0
    expert_intermediate_size: int = 0
    first_dense_layers: int = 0
    kv_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    sliding_window: int = 0
    layer_kinds: tuple[str, ...] = ()
    kv: KVGeometry | None = None
    # recurrent state per sequence (elements, kept in fp32 by vLLM and llama.cpp)
    state_elements_per_seq: int = 0
    max_context: int = 0
    groups: Mapping[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def total_params(self) -> int:
        """Parameters of the model as transformers/diffusers instantiate it (no MTP layers)."""
        return sum(n for g, n in self.groups.items() if g != "mtp")

    @property
    def checkpoint_params(self) -> int:
        """Parameters in the published checkpoint, MTP layers included."""
        return sum(self.groups.values())

    @property
    def active_params(self) -> int:
        """Parameters read for one token: all but unrouted experts and the embedding table.

        The embedding contributes one row per token, so it is left out, as the gpt-oss model
        card does; Qwen counts it in its 'A3B' names, which makes theirs ~0.3B higher.
        """
        total = self.total_params - self.groups.get("embed", 0)
        if self.num_experts and self.experts_per_token:
            routed = self.groups.get("experts", 0) + self.groups.get("experts_down", 0)
            total -= routed * (1 - self.experts_per_token / self.num_experts)
        return int(total)

    def count(self, kind: str) -> int:
        return sum(1 for k in self.layer_kinds if k == kind)

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0


def spec_from_config(
    config: Mapping[str, Any],
    source: str,
    name: str | None = None,
    components: Mapping[str, int] | None = None,
    kind: str | None = None,
) -> ModelSpec:
    """Build a ModelSpec from a parsed config.json (``source`` names the file in errors).

    ``components`` gives parameter counts for pipeline parts the estimator has no formula for
    (a diffusion transformer, a VAE, a detector), taken from the catalog.
    """
    top = _Cfg(config, source)
    name = name or source
    if "transformer" in config or "model_index" in config or config.get("backbone_config"):
        return _pipeline_spec(top, name, components or {}, kind or "image_generation")
    text_raw = config.get("text_config")
    if isinstance(text_raw, Mapping):
        text_mt = str(text_raw.get("model_type", ""))
        merged = _with_defaults(text_raw, text_mt)
        if "tie_word_embeddings" not in text_raw and "tie_word_embeddings" in config:
            merged["tie_word_embeddings"] = config["tie_word_embeddings"]
        text = _Cfg(merged, source, "text_config.")
    else:
        text = _Cfg(_with_defaults(config, str(config.get("model_type", ""))), source)
    census, extra = _text_spec(text, kind=kind or "llm", name=name)
    vision = config.get("vision_config")
    if isinstance(vision, Mapping):
        census.add("vision", _vision(_Cfg(vision, source, "vision_config."), extra["hidden_size"],
                                     top))  # fmt: skip
    return ModelSpec(
        name=name,
        source=source,
        model_type=str(config.get("model_type", "")),
        kind=kind or ("vlm" if isinstance(vision, Mapping) else "llm"),
        groups={g: n for g, n in census.groups.items() if n},
        **extra,
    )


def _pipeline_spec(top: _Cfg, name: str, components: Mapping[str, int], kind: str) -> ModelSpec:
    """Diffusion pipelines and detectors: text encoder computed, other parts from the catalog."""
    census = _Census()
    notes: list[str] = []
    enc = top.data.get("text_encoder")
    if isinstance(enc, Mapping) and "text_encoder" not in components:
        fields = dict(enc)
        fields.update(enc.get("_derived_not_published", {}) or {})
        enc_cfg = _Cfg(fields, top.source, "text_encoder.")
        enc_census, _ = _text_spec(enc_cfg, kind="llm", name=f"{name} text encoder")
        census.add("component", sum(enc_census.groups.values()))
        notes.append("text encoder computed from its config")
    for part, n in components.items():
        census.add("component", n)
        notes.append(f"{part} parameters from the catalog")
    if not census.groups["component"]:
        raise ConfigError(
            f"{top.source}: a pipeline/detector config needs catalog component parameters "
            "(catalog.json 'components') or a text_encoder config the estimator can read"
        )
    return ModelSpec(
        name=name,
        source=top.source,
        model_type=str(
            top.get("model_type", "")
            or top.data.get("model_index", {}).get("_class_name", "pipeline")
        ),
        kind=kind,
        groups={g: n for g, n in census.groups.items() if n},
        layer_kinds=(),
        notes=tuple(notes),
    )
