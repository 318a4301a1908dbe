"""Tiny CPU-sized configs of the same architectures as the catalog's full-size models.

The embedded default (``pytest benchmarks/`` on a machine with no GPU) runs these, so a new user
sees every workload work end to end in seconds: same model classes, same code paths, a few
hundred thousand parameters. Keys are catalog model ids; values override nothing in the full
config, they replace it.
"""

from __future__ import annotations

from typing import Any

TINY_VOCAB = 512  # above the synthetic tokenizer's ~300 tokens

# The parts both image pipelines' tiny configs share: both models encode prompts with a Qwen3
# text encoder, and both decode with a FLUX-style VAE (copied into each config, not shared).
_TINY_QWEN3_ENCODER: dict[str, Any] = {
    "model_type": "qwen3",
    "vocab_size": TINY_VOCAB,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 3,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 16,
}
_TINY_VAE: dict[str, Any] = {
    "latent_channels": 4,
    "block_out_channels": [32, 32],
    "down_block_types": ["DownEncoderBlock2D"] * 2,
    "up_block_types": ["UpDecoderBlock2D"] * 2,
    "layers_per_block": 1,
}

TINY_CONFIGS: dict[str, dict[str, Any]] = {
    "google/gemma-3-270m-it": {
        "model_type": "gemma3_text",
        "architectures": ["Gemma3ForCausalLM"],
        "vocab_size": TINY_VOCAB,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 32,
        "query_pre_attn_scalar": 32,
        "layer_types": ["sliding_attention", "full_attention"],
        "sliding_window": 64,
        "max_position_embeddings": 1024,
        "pad_token_id": 0,
        "eos_token_id": 1,
        "bos_token_id": 2,
        "hidden_activation": "gelu_pytorch_tanh",
    },
    "meta-llama/llama-3.1-8b-instruct": {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "vocab_size": TINY_VOCAB,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 1024,
        "pad_token_id": 0,
        "eos_token_id": 1,
        "bos_token_id": 2,
    },
    "pekingu/rtdetr_v2_r50vd": {
        "model_type": "rt_detr_v2",
        "backbone_config": {
            "model_type": "rt_detr_resnet",
            "depths": [1, 1, 1, 1],
            "hidden_sizes": [32, 64, 128, 256],
            "embedding_size": 16,
            "layer_type": "bottleneck",
            "out_features": ["stage2", "stage3", "stage4"],
            "out_indices": [2, 3, 4],
        },
        "encoder_in_channels": [64, 128, 256],
        "d_model": 32,
        "encoder_hidden_dim": 32,
        "encoder_ffn_dim": 64,
        "encoder_attention_heads": 2,
        "decoder_in_channels": [32, 32, 32],
        "decoder_ffn_dim": 64,
        "decoder_attention_heads": 2,
        "decoder_layers": 2,  # transformers ties bbox heads across layers: needs >= 2
        "num_queries": 20,
        "num_denoising": 10,
        "num_labels": 4,
    },
    "black-forest-labs/flux.2-klein-4b": {
        "transformer": {
            "attention_head_dim": 16,
            "axes_dims_rope": [4, 4, 4, 4],
            "num_attention_heads": 2,
            "num_layers": 1,
            "num_single_layers": 1,
            "in_channels": 16,  # 4 latent channels x 2x2 patch
            "joint_attention_dim": 96,  # 3 text-encoder layers x hidden 32
            "timestep_guidance_channels": 32,
            "guidance_embeds": False,
        },
        "text_encoder": {**_TINY_QWEN3_ENCODER, "tie_word_embeddings": True},
        "text_encoder_out_layers": [1, 2, 3],
        "vae": dict(_TINY_VAE),
        "max_sequence_length": 32,
    },
    "tongyi-mai/z-image-turbo": {
        "transformer": {
            "dim": 64,
            "n_heads": 2,
            "n_kv_heads": 2,
            "n_layers": 1,
            "n_refiner_layers": 1,
            "in_channels": 4,
            "cap_feat_dim": 32,
            "axes_dims": [8, 12, 12],
        },
        "text_encoder": dict(_TINY_QWEN3_ENCODER),
        "vae": dict(_TINY_VAE),
        "max_sequence_length": 32,
    },
}


def tiny_config(model_id: str) -> dict[str, Any]:
    from pytest_gpubench.errors import GpubenchError

    try:
        return TINY_CONFIGS[model_id.lower()]
    except KeyError:
        raise GpubenchError(
            f"no tiny CPU-sized config for {model_id!r}; tiny configs exist for "
            f"{', '.join(sorted(TINY_CONFIGS))}"
        ) from None
