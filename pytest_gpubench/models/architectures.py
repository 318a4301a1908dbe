"""The per-architecture readers behind ``spec_from_config``: one config.json in, a parameter
census by tensor group and the geometry fields of a ``ModelSpec`` out.

Kept apart from ``spec`` (the ``ModelSpec`` value and its entry points) because each family
(standard decoders, MLA MoE, Nemotron-H, vision towers) grows its own formula; ``spec``
re-exports ``GROUPS``, ``ConfigError`` and ``KVGeometry`` so their import path stays.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pytest_gpubench.errors import GpubenchError

# Tensor groups. A format assigns bits per weight to each (see formats.py).
GROUPS = (
    "embed",  # token embedding table (only one row is read per token)
    "lm_head",  # output projection (0 when tied to the embedding)
    "attn",  # attention projections other than V (q, k, o; MLA's compressions)
    "attn_v",  # attention V projection (K-quant mixes give it more bits)
    "ffn",  # dense FFN gate/up
    "ffn_down",  # dense FFN down
    "experts",  # routed experts' gate/up
    "experts_down",  # routed experts' down
    "shared",  # shared experts (gate/up and down)
    "router",  # MoE routers and gates
    "ssm",  # Mamba2 / Gated DeltaNet projections
    "small",  # norms, biases, sinks, conv kernels: kept in 16/32 bit by every format
    "vision",  # vision tower and projector (kept in 16 bit by most quantised checkpoints)
    "mtp",  # multi-token-prediction layers shipped in the checkpoint but not in the model
    "component",  # non-LLM pipeline parts (diffusion transformer, VAE, detector)
)


class ConfigError(GpubenchError):
    """A config that lacks what the estimate needs; the message names the field and file."""


@dataclass(frozen=True)
class KVGeometry:
    """What one token costs in each full-attention layer's cache, in elements."""

    k_per_layer: int  # elements of K (or of the MLA latent) per token per layer
    v_per_layer: int  # elements of V per token per layer (0 when V is a view of the latent)
    # MLA only: the per-head expanded K/V a non-MLA engine caches instead of the latent
    mla_expanded_k: int = 0
    mla_expanded_v: int = 0
    mla_rope: int = 0  # qk_rope_head_dim, part of the latent row

    @property
    def is_mla(self) -> bool:
        return self.mla_expanded_k > 0


class _Cfg:
    """A config dict that names the file and field when something the estimate needs is missing."""

    def __init__(self, data: Mapping[str, Any], source: str, prefix: str = "") -> None:
        self.data = data
        self.source = source
        self.prefix = prefix

    def req(self, key: str) -> Any:
        value = self.data.get(key)
        if value is None:
            raise ConfigError(
                f"{self.source}: field '{self.prefix}{key}' is missing; the memory estimate needs "
                f"it (model_type {self.data.get('model_type', '?')!r}). Add it to the config, "
                "or give the test an explicit needs_vram(GiB)."
            )
        return value

    def int(self, key: str, default: int | None = None, low: int = 0) -> int:
        """A count or size: every field read here is one, so a negative value is a broken
        config; ``low=1`` for a field the estimate divides by (0 attention heads was a
        ZeroDivisionError from inside)."""
        value = self.data.get(key)
        if value is None:
            if default is None:
                self.req(key)
            return int(default or 0)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < low
        ):
            shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
            raise ConfigError(
                f"{self.source}: field '{self.prefix}{key}' must be a whole number >= {low}, "
                f"got {shown}; correct it in the config, or give the test an explicit "
                "needs_vram(GiB)"
            )
        return int(value)

    def get(self, key: str, default: Any = None) -> Any:
        value = self.data.get(key)
        return default if value is None else value

    def sub(self, key: str) -> _Cfg:
        value = self.data.get(key)
        if not isinstance(value, Mapping):
            self.req(key)
            raise ConfigError(f"{self.source}: field '{self.prefix}{key}' must be an object")
        return _Cfg(value, self.source, f"{self.prefix}{key}.")


# transformers' config-class defaults for fields published configs leave out (they rely on them).
_DEFAULTS: dict[str, dict[str, Any]] = {
    "gemma3_text": {
        "vocab_size": 262208,
        "tie_word_embeddings": True,
        "sliding_window": 4096,
        "sliding_window_pattern": 6,
        "head_dim": 256,
    },
    "siglip_vision_model": {
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_hidden_layers": 12,
        "num_channels": 3,
        "image_size": 224,
        "patch_size": 16,
    },
    "pixtral": {
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_hidden_layers": 24,
        "num_channels": 3,
        "patch_size": 16,
    },
}


def _with_defaults(data: Mapping[str, Any], model_type: str) -> dict[str, Any]:
    merged = dict(_DEFAULTS.get(model_type, {}))
    merged.update({k: v for k, v in data.items() if v is not None})
    return merged


class _Census:
    """Accumulates parameter counts per tensor group."""

    def __init__(self) -> None:
        self.groups: dict[str, int] = dict.fromkeys(GROUPS, 0)

    def add(self, group: str, n: int) -> None:
        self.groups[group] += int(n)

    def merge(self, other: _Census, into: str | None = None) -> None:
        for g, n in other.groups.items():
            self.groups[into or g] += n


def _attention(
    c: _Census, h: int, nh: int, kv: int, hd: int, *, q_bias: bool, kv_bias: bool, o_bias: bool,
    qk_norm: bool, gated_q: bool = False,
) -> None:  # fmt: skip
    q_out = nh * hd * (2 if gated_q else 1)
    c.add("attn", h * q_out + h * kv * hd + nh * hd * h)
    c.add("attn_v", h * kv * hd)
    if q_bias:
        c.add("small", q_out)
    if kv_bias:
        c.add("small", 2 * kv * hd)
    if o_bias:
        c.add("small", h)
    if qk_norm:
        c.add("small", 2 * hd)


def _dense_ffn(c: _Census, h: int, inter: int, *, gated: bool = True, bias: bool = False) -> None:
    c.add("ffn", h * inter * (2 if gated else 1))
    c.add("ffn_down", inter * h)
    if bias:
        c.add("small", inter * (2 if gated else 1) + h)


def _layer_kinds_from_types(cfg: _Cfg, n: int) -> list[str]:
    names = {
        "full_attention": "full",
        "sliding_attention": "sliding",
        "linear_attention": "linear",
        "chunked_attention": "sliding",
    }
    types = cfg.get("layer_types")
    if not types:
        return []
    if len(types) != n:
        raise ConfigError(
            f"{cfg.source}: field {cfg.prefix}'layer_types' has {len(types)} entries for {n} layers"
        )
    return [names.get(t, "full") for t in types]


def _decoder_layer_kinds(cfg: _Cfg, mt: str, n: int) -> tuple[list[str], int]:
    """Each layer's attention kind and the sliding window (0: no layer slides), from
    ``layer_types`` or, in older configs, the family's pattern fields."""
    kinds = _layer_kinds_from_types(cfg, n)
    window = cfg.int("sliding_window", 0) if cfg.get("use_sliding_window", True) else 0
    if not kinds:
        pattern = cfg.int("sliding_window_pattern", 0) or cfg.int("_sliding_window_pattern", 0)
        if mt.startswith("gemma3") and pattern:
            kinds = ["full" if (i + 1) % pattern == 0 else "sliding" for i in range(n)]
        elif mt == "qwen3_next":
            interval = cfg.int("full_attention_interval", 4)
            kinds = ["full" if (i + 1) % interval == 0 else "linear" for i in range(n)]
        else:
            kinds = ["full"] * n
    if mt in ("qwen2", "qwen3", "qwen3_moe") and cfg.get("use_sliding_window") is False:
        window = 0
    if window and mt in ("mistral",) and "sliding" not in kinds:
        kinds = ["sliding"] * n
    if not window:
        kinds = ["full" if k == "sliding" else k for k in kinds]
    return kinds, window


def _gated_deltanet(c: _Census, cfg: _Cfg, h: int) -> int:
    """Count one Qwen3-Next Gated DeltaNet layer; returns its recurrent state (elements per
    sequence), which the caller sums over layers."""
    kh = cfg.int("linear_num_key_heads")
    vh = cfg.int("linear_num_value_heads")
    kd = cfg.int("linear_key_head_dim")
    vd = cfg.int("linear_value_head_dim")
    conv_k = cfg.int("linear_conv_kernel_dim")
    key_dim, value_dim = kh * kd, vh * vd
    conv_dim = 2 * key_dim + value_dim
    c.add("ssm", h * (2 * key_dim + 2 * value_dim) + h * 2 * vh + value_dim * h)
    c.add("small", conv_dim * conv_k + 2 * vh + vd)
    return conv_dim * (conv_k - 1) + vh * kd * vd


def _decoder_moe(
    c: _Census, h: int, num_experts: int, moe_inter: int, shared_inter: int, *, gptoss: bool
) -> None:
    """Count one MoE block of a standard decoder: router, routed experts, optional shared
    expert with its gate (gpt-oss adds router and expert biases)."""
    c.add("router", num_experts * h + (num_experts if gptoss else 0))
    c.add("experts", num_experts * 2 * h * moe_inter)
    c.add("experts_down", num_experts * moe_inter * h)
    if gptoss:
        c.add("small", num_experts * (2 * moe_inter + h))  # expert biases
    if shared_inter:
        c.add("shared", 3 * h * shared_inter)
        c.add("router", h)  # shared_expert_gate


def _decoder(cfg: _Cfg, *, kind: str, name: str) -> tuple[_Census, dict[str, Any]]:
    """Dense or MoE decoder-only text models: Llama, Mistral, Qwen2/3(-MoE/-VL/-Next),
    Gemma 3, gpt-oss and any config with the standard field names."""
    mt = str(cfg.get("model_type", ""))
    h = cfg.int("hidden_size")
    n = cfg.int("num_hidden_layers")
    nh = cfg.int("num_attention_heads", low=1)
    kvh = cfg.int("num_key_value_heads", nh)
    hd = cfg.int("head_dim", h // nh)
    vocab = cfg.int("vocab_size")
    tied = bool(cfg.get("tie_word_embeddings", False))
    c = _Census()
    c.add("embed", vocab * h)
    c.add("lm_head", 0 if tied else vocab * h)
    c.add("small", h)  # final norm

    is_gemma = mt.startswith("gemma3")
    is_gptoss = mt == "gpt_oss"
    is_next = mt == "qwen3_next"
    qk_norm = mt.startswith("qwen3") or is_gemma or bool(cfg.get("use_qk_norm", False))
    attn_bias = bool(cfg.get("attention_bias", False))
    q_bias = kv_bias = attn_bias
    o_bias = attn_bias
    if mt == "qwen2" or mt == "qwen2_moe":
        q_bias = kv_bias = True
        o_bias = False
    norms_per_layer = 4 if is_gemma else 2

    num_experts = cfg.int("num_experts", 0) or cfg.int("num_local_experts", 0)
    top_k = cfg.int("num_experts_per_tok", 0) or cfg.int("experts_per_token", 0)
    moe_inter = cfg.int("moe_intermediate_size", 0) or (
        cfg.int("intermediate_size") if is_gptoss else 0
    )
    shared_inter = cfg.int("shared_expert_intermediate_size", 0)
    inter = cfg.int("intermediate_size", 0) if num_experts else cfg.int("intermediate_size")
    sparse_step = cfg.int("decoder_sparse_step", 1) or 1
    mlp_only = set(cfg.get("mlp_only_layers", []) or [])

    kinds, window = _decoder_layer_kinds(cfg, mt, n)

    state = 0
    for i, lk in enumerate(kinds):
        c.add("small", norms_per_layer * h)
        if lk == "linear":  # Qwen3-Next Gated DeltaNet
            state += _gated_deltanet(c, cfg, h)
        else:
            _attention(
                c, h, nh, kvh, hd, q_bias=q_bias, kv_bias=kv_bias, o_bias=o_bias,
                qk_norm=qk_norm, gated_q=is_next,
            )  # fmt: skip
            if is_gptoss:
                c.add("small", nh)  # attention sinks
        moe_layer = num_experts > 0 and i not in mlp_only and (i + 1) % sparse_step == 0
        if moe_layer:
            _decoder_moe(c, h, num_experts, moe_inter, shared_inter, gptoss=is_gptoss)
        else:
            _dense_ffn(c, h, inter, bias=bool(cfg.get("mlp_bias", False)))

    kv = KVGeometry(kvh * hd, kvh * hd)
    extra = {
        "vocab_size": vocab,
        "hidden_size": h,
        "num_layers": n,
        "num_heads": nh,
        "num_kv_heads": kvh,
        "head_dim": hd,
        "intermediate_size": inter,
        "tied_embeddings": tied,
        "num_experts": num_experts,
        "experts_per_token": top_k,
        "num_shared_experts": 1 if shared_inter else 0,
        "expert_intermediate_size": moe_inter,
        "sliding_window": window,
        "layer_kinds": tuple(kinds),
        "kv": kv,
        "state_elements_per_seq": state,
        "max_context": cfg.int("max_position_embeddings", 0),
    }
    return c, extra


def _mla_moe(cfg: _Cfg, *, kind: str, name: str) -> tuple[_Census, dict[str, Any]]:
    """DeepSeek-V2/V3-style models (GLM-4.7-Flash): MLA attention, dense first layers, MoE."""
    h = cfg.int("hidden_size")
    n = cfg.int("num_hidden_layers")
    nh = cfg.int("num_attention_heads")
    vocab = cfg.int("vocab_size")
    tied = bool(cfg.get("tie_word_embeddings", False))
    q_lora = cfg.int("q_lora_rank", 0)
    kv_lora = cfg.int("kv_lora_rank")
    nope = cfg.int("qk_nope_head_dim")
    rope = cfg.int("qk_rope_head_dim")
    v_hd = cfg.int("v_head_dim")
    inter = cfg.int("intermediate_size")
    moe_inter = cfg.int("moe_intermediate_size")
    experts = cfg.int("n_routed_experts")
    top_k = cfg.int("num_experts_per_tok")
    shared = cfg.int("n_shared_experts", 0)
    first_dense = cfg.int("first_k_dense_replace", 0)
    mtp = cfg.int("num_nextn_predict_layers", 0)
    qk_hd = nope + rope

    def layer(c: _Census, i: int) -> None:
        c.add("small", 2 * h)
        if q_lora:
            c.add("attn", h * q_lora + q_lora * nh * qk_hd)
            c.add("small", q_lora)
        else:
            c.add("attn", h * nh * qk_hd)
        c.add("attn", h * (kv_lora + rope) + kv_lora * nh * nope + nh * v_hd * h)
        c.add("attn_v", kv_lora * nh * v_hd)
        c.add("small", kv_lora)
        if i < first_dense:
            _dense_ffn(c, h, inter)
        else:
            c.add("router", experts * h)  # e_score_correction_bias is a buffer, not counted
            c.add("experts", experts * 2 * h * moe_inter)
            c.add("experts_down", experts * moe_inter * h)
            c.add("shared", 3 * h * moe_inter * shared)

    c = _Census()
    c.add("embed", vocab * h)
    c.add("lm_head", 0 if tied else vocab * h)
    c.add("small", h)
    for i in range(n):
        layer(c, i)
    for j in range(mtp):  # MTP: own embedding, eh_proj, norms, head, one decoder layer
        m = _Census()
        layer(m, n + j)
        m.add("small", 3 * h)
        m.add("attn", 2 * h * h)
        m.add("embed", 2 * vocab * h)
        c.add("mtp", sum(m.groups.values()))
    kv = KVGeometry(
        kv_lora + rope, 0, mla_expanded_k=nh * qk_hd, mla_expanded_v=nh * v_hd, mla_rope=rope
    )
    extra = {
        "vocab_size": vocab,
        "hidden_size": h,
        "num_layers": n,
        "num_heads": nh,
        "num_kv_heads": 1,
        "head_dim": qk_hd,
        "intermediate_size": inter,
        "tied_embeddings": tied,
        "num_experts": experts,
        "experts_per_token": top_k,
        "num_shared_experts": shared,
        "expert_intermediate_size": moe_inter,
        "first_dense_layers": first_dense,
        "kv_lora_rank": kv_lora,
        "qk_rope_head_dim": rope,
        "layer_kinds": ("full",) * n,
        "kv": kv,
        "max_context": cfg.int("max_position_embeddings", 0),
    }
    return c, extra


def _nemotron_h(cfg: _Cfg, *, kind: str, name: str) -> tuple[_Census, dict[str, Any]]:
    """NVIDIA Nemotron-H: a per-layer pattern of Mamba2 (M), attention (*), MoE (E), MLP (-)."""
    h = cfg.int("hidden_size")
    vocab = cfg.int("vocab_size")
    pattern = str(cfg.req("hybrid_override_pattern"))
    nh = cfg.int("num_attention_heads", low=1)
    kvh = cfg.int("num_key_value_heads", nh)
    hd = cfg.int("head_dim", h // nh)
    tied = bool(cfg.get("tie_word_embeddings", False))
    c = _Census()
    c.add("embed", vocab * h)
    c.add("lm_head", 0 if tied else vocab * h)
    c.add("small", h)
    kinds: list[str] = []
    state = 0
    experts = cfg.int("n_routed_experts", 0)
    for ch in pattern:
        c.add("small", h)  # the block's norm
        if ch == "M":
            heads = cfg.int("mamba_num_heads")
            inner = heads * cfg.int("mamba_head_dim")
            groups = cfg.int("n_groups")
            d_state = cfg.int("ssm_state_size")
            conv_k = cfg.int("conv_kernel")
            conv_dim = inner + 2 * groups * d_state
            c.add("ssm", h * (inner + conv_dim + heads) + inner * h)
            c.add("small", conv_dim * conv_k + conv_dim * bool(cfg.get("use_conv_bias", True)))
            c.add("small", 3 * heads + inner)  # dt_bias, A_log, D, gated norm
            kinds.append("mamba")
            state += conv_dim * (conv_k - 1) + heads * cfg.int("mamba_head_dim") * d_state
        elif ch == "*":
            _attention(c, h, nh, kvh, hd, q_bias=False, kv_bias=False, o_bias=False, qk_norm=False)
            kinds.append("full")
        elif ch == "E":
            moe_inter = cfg.int("moe_intermediate_size")
            c.add("router", experts * h)  # e_score_correction_bias is a buffer, not counted
            c.add("experts", experts * h * moe_inter)  # relu2: up and down, no gate
            c.add("experts_down", experts * moe_inter * h)
            c.add("shared", 2 * h * cfg.int("moe_shared_expert_intermediate_size", 0))
            kinds.append("none")
        elif ch == "-":
            _dense_ffn(c, h, cfg.int("intermediate_size"), gated=False)
            kinds.append("none")
        else:
            raise ConfigError(
                f"{cfg.source}: field 'hybrid_override_pattern' has unknown layer code {ch!r}"
            )
    extra = {
        "vocab_size": vocab,
        "hidden_size": h,
        "num_layers": len(pattern),
        "num_heads": nh,
        "num_kv_heads": kvh,
        "head_dim": hd,
        "tied_embeddings": tied,
        "num_experts": experts,
        "experts_per_token": cfg.int("num_experts_per_tok", 0),
        "num_shared_experts": cfg.int("n_shared_experts", 0),
        "expert_intermediate_size": cfg.int("moe_intermediate_size", 0),
        "layer_kinds": tuple(kinds),
        "kv": KVGeometry(kvh * hd, kvh * hd),
        "state_elements_per_seq": state,
        "max_context": cfg.int("max_position_embeddings", 0),
    }
    return c, extra


# --------------------------------------------------------------------------- vision towers


def _vision(cfg: _Cfg, text_hidden: int, top: _Cfg) -> int:
    """Parameters of a VLM's vision tower plus its projector into the text model."""
    mt = str(cfg.get("model_type", ""))
    if mt.startswith("qwen3_vl"):
        h = cfg.int("hidden_size")
        inter = cfg.int("intermediate_size")
        depth = cfg.int("depth")
        patch = cfg.int("patch_size")
        tpatch = cfg.int("temporal_patch_size", 2)
        merge = cfg.int("spatial_merge_size", 2)
        out = cfg.int("out_hidden_size", text_hidden)
        n = cfg.int("in_channels", 3) * tpatch * patch * patch * h + h
        n += cfg.int("num_position_embeddings") * h
        block = 4 * h + (3 * h * h + 3 * h) + (h * h + h) + (h * inter + inter) + (inter * h + h)
        n += depth * block
        merged = h * merge * merge

        def merger(post_norm: bool) -> int:
            return 2 * (merged if post_norm else h) + merged * merged + merged + merged * out + out

        n += merger(False) + len(cfg.get("deepstack_visual_indexes", []) or []) * merger(True)
        return n
    if mt == "siglip_vision_model":
        d = _with_defaults(cfg.data, mt)
        v = _Cfg(d, cfg.source, cfg.prefix)
        h, inter, layers = (
            v.int("hidden_size"),
            v.int("intermediate_size"),
            v.int("num_hidden_layers"),
        )
        patch, image = v.int("patch_size", low=1), v.int("image_size")
        n = v.int("num_channels", 3) * patch * patch * h + h + (image // patch) ** 2 * h
        n += layers * (4 * h + 4 * (h * h + h) + (h * inter + inter) + (inter * h + h))
        n += 2 * h  # post_layernorm
        # Gemma 3 projector: one matrix into the text width and an RMSNorm
        return n + h * text_hidden + h
    if mt == "pixtral":
        d = _with_defaults(cfg.data, mt)
        v = _Cfg(d, cfg.source, cfg.prefix)
        h, inter, layers = (
            v.int("hidden_size"),
            v.int("intermediate_size"),
            v.int("num_hidden_layers"),
        )
        patch = v.int("patch_size")
        n = v.int("num_channels", 3) * patch * patch * h + h  # patch conv (no bias) + ln_pre
        n += layers * (2 * h + 4 * h * h + 3 * h * inter)
        merge = top.int("spatial_merge_size", 2)
        proj_bias = bool(top.get("multimodal_projector_bias", False))
        n += h + h * merge * merge * h  # projector norm + patch merger
        n += h * text_hidden + text_hidden * text_hidden + (2 * text_hidden if proj_bias else 0)
        return n
    raise ConfigError(
        f"{cfg.source}: vision_config model_type {mt!r} is not known to the estimator "
        "(known: qwen3_vl, siglip_vision_model, pixtral); give the test needs_vram(GiB)"
    )


# --------------------------------------------------------------------------- dispatch

_MLA_TYPES = {"glm4_moe_lite", "deepseek_v2", "deepseek_v3", "kimi_k2"}


def _text_spec(cfg: _Cfg, *, kind: str, name: str) -> tuple[_Census, dict[str, Any]]:
    mt = str(cfg.get("model_type", ""))
    if mt in _MLA_TYPES or cfg.get("kv_lora_rank"):
        return _mla_moe(cfg, kind=kind, name=name)
    if mt == "nemotron_h" or cfg.get("hybrid_override_pattern"):
        return _nemotron_h(cfg, kind=kind, name=name)
    return _decoder(cfg, kind=kind, name=name)
