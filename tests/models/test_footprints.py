"""Estimated footprints against published figures (within 10%), one row per figure.

Rows come from pytest_gpubench/models/catalog/published_footprints.json (file sizes of GGUF
and safetensors checkpoints, KV cache sizes reported by llama.cpp and Ollama logs); each row
here repeats the figure, its unit and its source so a failure says what was contradicted.
Rows the estimator cannot be held to are listed in EXCLUDED with the reason.
"""

from __future__ import annotations

import json
from dataclasses import replace
from importlib import resources

import pytest

from pytest_gpubench.engines import memory_for
from pytest_gpubench.models import kvcache
from pytest_gpubench.models.catalog import load_spec
from pytest_gpubench.selection.estimate import ModelRequest, estimate

GIB, MIB, GB = 2**30, 2**20, 1e9
NP = "nerdpudding/llama_cpp"
TEST_PLAN = f"{NP}@6652ceb8:archive/TEST_PLAN.md 'Resultaten' (KV cache verdeling, 4090 + 5070 Ti)"


def file_bytes(model: str, quant: str) -> float:
    return estimate(ModelRequest(model, quant=quant)).file_gib * GIB


def kv_bytes(model: str, context: int, engine: str, kv_dtype: str) -> float:
    e = estimate(ModelRequest(model, context=context, engine=engine, kv_dtype=kv_dtype))
    return e.kv_gib * GIB


def swa_bytes_at_ubatch(model: str, context: int, ubatch: int) -> float:
    spec, _ = load_spec(model)
    engine = replace(memory_for("llamacpp"), n_ubatch=ubatch)
    cache = kvcache.kv_cache(
        spec,
        tokens=context,
        window_tokens=engine.window_tokens(spec, context, 1),
        sequences=1,
        kv_dtype="q8_0",
    )
    return cache.window_bytes


def full_kv_bytes(model: str, context: int, kv_dtype: str) -> float:
    spec, _ = load_spec(model)
    cache = kvcache.kv_cache(spec, tokens=context, window_tokens=0, sequences=1, kv_dtype=kv_dtype)
    return cache.full_bytes


def state_bytes(model: str) -> float:
    return estimate(ModelRequest(model, engine="llamacpp", quant="q8_0")).state_gib * GIB


def need_bytes(model: str, quant: str, context: int, engine: str) -> float:
    e = estimate(ModelRequest(model, quant=quant, context=context, engine=engine))
    return e.total_gib * GIB


# (what, estimate in bytes, published value in bytes, source)
ROWS = [
    ("Llama-3.1-8B GGUF F16 file", lambda: file_bytes("llama-3.1-8b", "fp16"), 16.06 * GB,
     "/work/shared/research/verified-here.md, 8B-shaped random GGUF, measured on the H100 machine"),
    ("Llama-3.1-8B Q4_K_M file", lambda: file_bytes("llama-3.1-8b", "q4_k_m"), 4.92 * GB,
     "verified-here.md (llama-quantize of the F16 above); bartowski tables say 4.92GB too"),
    ("Llama-3.1-8B Q4_K_M file, GiB written 'GB'", lambda: file_bytes("llama-3.1-8b", "q4_k_m"),
     4.57 * GIB, "runyard.dev Q4_K_M vs Q5_K_M blog ('4.57 GB', which is GiB)"),
    ("gpt-oss-120b F16 GGUF (MXFP4 experts)", lambda: file_bytes("gpt-oss-120b", "gguf-mxfp4"),
     60.87 * GIB, f"{NP} docs/gpt-oss-120b-configuration-guide.md ('60.87 GiB, 4.48 BPW')"),
    ("gpt-oss-120b HF MXFP4 checkpoint", lambda: file_bytes("gpt-oss-120b", "mxfp4"), 60.8 * GIB,
     "gpt-oss model card arXiv:2508.10925 Table 1 ('~60.8 GiB'), second-hand quote"),
    ("gpt-oss-20b HF MXFP4 checkpoint", lambda: file_bytes("gpt-oss-20b", "mxfp4"), 12.8 * GIB,
     "gpt-oss model card Table 1 ('~12.8 GiB'), second-hand quote"),
    ("Mistral-Small-24B bf16 safetensors", lambda: file_bytes("mistral-small-24b", "bf16"),
     47_144_806_400, "HF model.safetensors.index.json total_size (OpenMOSE/RWKV-LM-RLHF copy)"),
    ("FLUX.2-klein-4B bf16 transformer + text encoder + VAE",
     lambda: file_bytes("flux.2-klein-4b", "bf16"), 7.75 * GB + 8_044_936_192 + 0.168 * GB,
     "HF repo anatomy write-up, code index id 60623799360 (7.75 GB + index 8,044,936,192 B + 168 MB)"),  # noqa: E501
    ("GLM-4.7-Flash bf16 safetensors (MTP layer included)",
     lambda: file_bytes("glm-4.7-flash", "bf16"), 58.16 * GIB,
     "model_inspector report, code index id 62624914535 ('58.16 GB' = GiB)"),
    ("Qwen3-VL-30B-A3B bf16 safetensors", lambda: file_bytes("qwen3-vl-30b-a3b", "bf16"),
     57.87 * GIB, "model_inspector report, code index id 62501178117 (GiB written 'GB')"),
    ("Qwen3-VL-8B bf16 safetensors", lambda: file_bytes("qwen3-vl-8b", "bf16"), 16.33 * GIB,
     "model_inspector report, code index id 62543607479 (GiB written 'GB')"),
    ("Qwen3-Coder-Next UD-Q6_K_XL GGUF", lambda: file_bytes("qwen3-coder-next", "ud-q6_k_xl"),
     63.9 * GIB, f"{NP}@761d5fed archive/2026-02-16_llama-cpp-flags-and-qwen3-strategy.md"),
    ("Llama-3.3-70B Q4_K_M (Ollama)", lambda: file_bytes("llama-3.3-70b", "q4_k_m"), 43 * GB,
     "/work/shared/seeds/002_a3c5d03b8adbf940.txt Test 2 (Ollama listing, rounded)"),
    ("Ministral-3-8B Q4_K_M (Ollama)", lambda: file_bytes("ministral-3-8b", "q4_k_m"), 6 * GB,
     "/work/shared/seeds/002_a3c5d03b8adbf940.txt Test 1 (Ollama listing, rounded)"),
    ("GLM-4.7-Flash KV, llama.cpp MLA latent, 112k q8_0",
     lambda: kv_bytes("glm-4.7-flash", 114688, "llamacpp", "q8_0"), 3146 * MIB,
     f"{TEST_PLAN}, Test 1: 2142 + 1004 MiB; seed 001 section 1.2 ('~3.1 GiB')"),
    ("GLM-4.7-Flash KV, Ollama (latent K + separate V), 112k q8_0",
     lambda: kv_bytes("glm-4.7-flash", 114688, "ollama", "q8_0"), 5.9 * GIB,
     f"{TEST_PLAN}, Test 1 Ollama column (3.6 + 1.9 + 0.37 GiB); seed 001 section 1.2"),
    ("GLM-4.7-Flash KV, llama.cpp, 64k q8_0",
     lambda: kv_bytes("glm-4.7-flash", 65536, "llamacpp", "q8_0"), 1798 * MIB,
     f"{TEST_PLAN}, Test 1b: 1186 + 612 MiB"),
    ("GLM-4.7-Flash KV, llama.cpp, 198k q8_0",
     lambda: kv_bytes("glm-4.7-flash", 202752, "llamacpp", "q8_0"), 5561 * MIB,
     f"{TEST_PLAN}, Test 2: 3668 + 1893 MiB"),
    ("GLM-4.7-Flash KV, llama.cpp single GPU, 128k q8_0",
     lambda: kv_bytes("glm-4.7-flash", 131072, "llamacpp", "q8_0"), 3595 * MIB,
     f"{NP}@6293aad6 claude_plans/advice_test_plan.md ('KV cache 3,595 MiB (128K, q8_0)')"),
    ("GLM-4.7-Flash KV, Ollama, 64k q8_0",
     lambda: kv_bytes("glm-4.7-flash", 65536, "ollama", "q8_0"), 3.3 * GIB,
     f"{TEST_PLAN}, Test 1b Ollama column"),
    ("GLM-4.7-Flash KV, Ollama, 198k q8_0",
     lambda: kv_bytes("glm-4.7-flash", 202752, "ollama", "q8_0"), 10.3 * GIB,
     f"{TEST_PLAN}, Test 2 Ollama column"),
    ("gpt-oss-120b KV of the 18 full-attention layers, 64k q8_0",
     lambda: full_kv_bytes("gpt-oss-120b", 65536, "q8_0"), 1224 * MIB,
     f"{NP} docs/gpt-oss-120b-configuration-guide.md 'Memory Breakdown' ('KV cache non-SWA')"),
    ("gpt-oss-120b KV of the 18 sliding-window layers at -ub 4096",
     lambda: swa_bytes_at_ubatch("gpt-oss-120b", 65536, 4096), 81 * MIB,
     f"{NP} docs/gpt-oss-120b-configuration-guide.md ('KV cache SWA (18 layers, fixed) 81 MiB')"),
    ("Qwen3-Coder-Next KV, 12 full-attention layers, 256k q8_0",
     lambda: kv_bytes("qwen3-coder-next", 262144, "llamacpp", "q8_0"), 3264 * MIB,
     f"{NP}@4e4cb0d0 docs/llama-cpp-flags-and-qwen3-strategy.md 'VRAM Budget' (2176 + 1088 MiB)"),
    ("Qwen3-Coder-Next recurrent state, 36 Gated DeltaNet layers",
     lambda: state_bytes("qwen3-coder-next"), 75 * MIB,
     f"{NP} docs/llama-cpp-flags-and-qwen3-strategy.md ('RS buffer 50 + 25 MiB')"),
    ("Qwen3-Coder-Next KV, 256k f16", lambda: kv_bytes("qwen3-coder-next", 262144, "llamacpp", "fp16"),  # noqa: E501
     7 * GB, "seed 001 section 4, citing Hardware-Corner.net on RTX PRO 6000 ('~7 GB')"),
    ("Llama-3.3-70B Q4_K_M Ollama process on DGX Spark (default 4k context assumed)",
     lambda: need_bytes("llama-3.3-70b", "q4_k_m", 4096, "ollama"), 42318 * MIB,
     "/work/shared/seeds/002_a3c5d03b8adbf940.txt Test 2, DGX Spark row (context not stated)"),
]  # fmt: skip

EXCLUDED = {
    ("mistralai/Ministral-3-8B-Instruct-2512", 9270): "process memory with unstated context "
    "and Ollama defaults on a 4090; usable only as a loose bound",
    ("openai/gpt-oss-20b", 11.7): "peak process memory from a secondary table with K q8_0 and V "
    "q4_0 (mixed K/V dtypes are not modelled) and an Unsloth dynamic quant whose per-tensor "
    "mix is only approximated",
    ("black-forest-labs/FLUX.2-klein-4B", 7.75): "covered by the FLUX.2 pipeline-total row",
    ("black-forest-labs/FLUX.2-klein-4B", 8044936192): "covered by the FLUX.2 pipeline-total row",
}


@pytest.mark.parametrize(("what", "compute", "published", "source"), ROWS, ids=[r[0] for r in ROWS])
def test_estimate_within_10_percent_of_published(what, compute, published, source) -> None:
    got = compute()
    assert got == pytest.approx(published, rel=0.10), (
        f"{what}: estimated {got / GIB:.2f} GiB, published {published / GIB:.2f} GiB ({source})"
    )


def test_every_published_footprint_row_is_tested_or_excluded_with_a_reason() -> None:
    text = resources.files("pytest_gpubench.models").joinpath(
        "catalog", "published_footprints.json"
    )
    rows = json.loads(text.read_text())
    tested_values = {round(r[2], 0) for r in ROWS}
    units = {"GB": GB, "GiB": GIB, "MiB": MIB, "bytes": 1}
    for row in rows:
        unit = next(u for u in ("GiB", "MiB", "GB", "bytes") if row["unit"].startswith(u))
        value = round(row["value"] * units[unit], 0)
        key = (row["model_id"], row["value"])
        assert value in tested_values or key in EXCLUDED, f"untested footprint row: {row}"


def test_mla_latent_versus_expanded_cache_on_glm_4_7_flash_at_112k() -> None:
    """The seed write-up's difference: llama.cpp caches the 576-wide latent (~3.1 GiB at 112k,
    q8_0); Ollama's runner adds a 512-wide V row (~5.9 GiB); an engine without MLA support
    expands per-head K/V (20 heads x (256 + 256)), an order of magnitude more."""
    latent = kv_bytes("glm-4.7-flash", 114688, "llamacpp", "q8_0") / GIB
    split_v = kv_bytes("glm-4.7-flash", 114688, "ollama", "q8_0") / GIB
    expanded = kv_bytes("glm-4.7-flash", 114688, "transformers", "q8_0") / GIB
    assert latent == pytest.approx(3.1, rel=0.05)
    assert split_v == pytest.approx(5.9, rel=0.05)
    assert expanded > 50
