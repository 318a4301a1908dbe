"""A tiny Llama-architecture model made locally: an HF folder for vLLM and the same weights as
a GGUF for llama.cpp. Nothing is downloaded.

Shape: vocab 2048, hidden 128, intermediate 256, 2 layers, 2 heads, 1 KV head, so head_dim is
64 (vLLM's CPU attention rejects head_dim 16). ~0.8 M parameters, random bf16 weights, and a
byte-level BPE tokenizer trained on a few sentences with a chat template. The GGUF stores the
same values in float32 (exact for bf16), its token list padded to vocab_size (llama-server
rejects a token_embd shape that differs from the vocab) and Q/K permuted as llama.cpp's own
converter does for Llama.

Needs the ``test`` extra (torch, transformers, tokenizers, gguf).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

VOCAB = 2048
HIDDEN = 128
INTERMEDIATE = 256
LAYERS = 2
HEADS = 2
KV_HEADS = 1
CONTEXT = 2048
SPECIAL = ["<|begin_of_text|>", "<|end_of_text|>", "<|user|>", "<|assistant|>", "<|system|>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Benchmarks are tests: they run, they measure, and they fail on regressions.",
    "A GPU has memory, bandwidth and compute; a model needs all three.",
    "Tokens per second, time to first token and inter-token latency describe a server.",
    "Hello world! 0123456789 + - * / = ( ) [ ] { } < > , . ; : ? ' \"",
]


@dataclass(frozen=True)
class TinyModel:
    hf_dir: Path  # config.json, model.safetensors, tokenizer files: what vLLM loads
    gguf_path: Path  # the same weights for llama.cpp
    served_name: str = "tiny-llama"


def build_tiny_llama(out_dir: Path, seed: int = 0) -> TinyModel:
    """Write the HF folder and the GGUF under ``out_dir`` (reused when already there)."""
    out_dir = Path(out_dir)
    hf_dir = out_dir / "tiny-llama"
    gguf_path = out_dir / "tiny-llama.gguf"
    done = out_dir / ".complete"
    if done.exists() and hf_dir.is_dir() and gguf_path.is_file():
        return TinyModel(hf_dir, gguf_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = _train_tokenizer()
    model = _random_model(seed)
    _save_hf(model, tokenizer, hf_dir)
    _save_gguf(model, tokenizer, gguf_path)
    done.write_text("ok\n")
    return TinyModel(hf_dir, gguf_path)


def _train_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    # Only byte symbols that are whole characters: printable ASCII, space ('Ġ') and newline
    # ('Ċ') in ByteLevel's mapping. A byte >= 0x80 alone is half a UTF-8 character; a random
    # model that emits one makes vLLM hold the text back, and that stream then has fewer
    # chunks than tokens (seen: 7 chunks for 12 tokens), which breaks TTFT/TPOT comparisons.
    whole = [chr(c) for c in range(33, 127)] + ["\u0120", "\u010a"]
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=SPECIAL,
        initial_alphabet=whole,
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 4, trainer=trainer)
    # Fill the vocabulary with visible added tokens so every id a random model emits decodes
    # to text, the same in both engines.
    tok.add_tokens([f"[PAD{i}]" for i in range(tok.get_vocab_size(), VOCAB)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=SPECIAL[0],
        eos_token=SPECIAL[1],
        pad_token=SPECIAL[1],
        chat_template=CHAT_TEMPLATE,
    )


def _random_model(seed: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        intermediate_size=INTERMEDIATE,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        max_position_embeddings=CONTEXT,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
        tie_word_embeddings=False,
        torch_dtype="bfloat16",
    )
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    with torch.no_grad():
        for p in model.parameters():  # larger than the default init so outputs vary
            if p.dim() > 1:
                p.normal_(0.0, 0.1)
        # special tokens (the trainer's first ids) decode to no text: a zero logit never wins
        # against the largest of ~2,000 random ones, so greedy decoding never emits them
        model.lm_head.weight[: len(SPECIAL)] = 0.0
    return model.eval()


def _save_hf(model, tokenizer, hf_dir: Path) -> None:
    hf_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(hf_dir, safe_serialization=True)
    tokenizer.save_pretrained(hf_dir)
    cfg = json.loads((hf_dir / "config.json").read_text())
    cfg["torch_dtype"] = cfg.get("torch_dtype") or "bfloat16"
    (hf_dir / "config.json").write_text(json.dumps(cfg, indent=2))


def _permute(w, n_head: int):
    """llama.cpp's converter reorders Q/K rows from HF's rotary layout to GGML's."""
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


def _save_gguf(model, tokenizer, path: Path) -> None:
    import gguf
    import numpy as np

    cfg = model.config
    sd = {k: v.float().numpy() for k, v in model.state_dict().items()}
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny-llama")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(cfg.num_hidden_layers)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    w.add_rope_freq_base(float(getattr(cfg, "rope_theta", None) or 10000.0))
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)

    vocab = tokenizer.get_vocab()
    by_id = {i: t for t, i in vocab.items()}
    tokens, types = [], []
    for i in range(cfg.vocab_size):
        text = by_id.get(i, f"[PAD{i}]")
        tokens.append(text)
        if text in SPECIAL:
            types.append(gguf.TokenType.CONTROL)
        elif text.startswith("[PAD"):
            types.append(gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)
    merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in merges]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(vocab[SPECIAL[0]])
    w.add_eos_token_id(vocab[SPECIAL[1]])
    w.add_add_bos_token(True)
    w.add_chat_template(CHAT_TEMPLATE)

    def put(name: str, arr) -> None:
        w.add_tensor(name, np.ascontiguousarray(arr, dtype=np.float32))

    put("token_embd.weight", sd["model.embed_tokens.weight"])
    put("output_norm.weight", sd["model.norm.weight"])
    put("output.weight", sd["lm_head.weight"])
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        put(f"blk.{i}.attn_norm.weight", sd[p + "input_layernorm.weight"])
        put(
            f"blk.{i}.attn_q.weight",
            _permute(sd[p + "self_attn.q_proj.weight"], cfg.num_attention_heads),
        )
        put(
            f"blk.{i}.attn_k.weight",
            _permute(sd[p + "self_attn.k_proj.weight"], cfg.num_key_value_heads),
        )
        put(f"blk.{i}.attn_v.weight", sd[p + "self_attn.v_proj.weight"])
        put(f"blk.{i}.attn_output.weight", sd[p + "self_attn.o_proj.weight"])
        put(f"blk.{i}.ffn_norm.weight", sd[p + "post_attention_layernorm.weight"])
        put(f"blk.{i}.ffn_gate.weight", sd[p + "mlp.gate_proj.weight"])
        put(f"blk.{i}.ffn_up.weight", sd[p + "mlp.up_proj.weight"])
        put(f"blk.{i}.ffn_down.weight", sd[p + "mlp.down_proj.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":  # python -m pytest_gpubench.testing.tiny_models OUT_DIR
    import sys

    print(build_tiny_llama(Path(sys.argv[1] if len(sys.argv) > 1 else "tiny-models")))
