"""transformers inference: prefill and decode tok/s at batch sizes 1..8, eager and compiled.

Next to the vLLM and llama.cpp serving benchmarks, this is what plain ``generate()`` does with
the same model: eager (dynamic cache) and static cache + torch.compile (on CUDA).
"""

import pytest

# Llama-3.1-8B bf16: 8.03 B params x 2 bytes = 16.1 GB (15.0 GiB) of weights; KV cache at
# batch 8 x (512 + 128) tokens x 128 KiB per token (32 layers x 8 KV heads x 128 x 2 x bf16)
# = 0.6 GiB; logits and workspace ~1 GiB. Rounded up to 18 GiB.
LLAMA_8B_INFERENCE_GIB = 18


@pytest.mark.llm_inference
@pytest.mark.needs_vram(LLAMA_8B_INFERENCE_GIB)
@pytest.mark.parametrize("mode", ["eager", "static"])
@pytest.mark.parametrize("batch_size", [1, 2, 4, 8])
def test_llama_3_1_8b_generate(gpubench, generate_workload, batch_size, mode):
    workload = generate_workload(
        model="meta-llama/Llama-3.1-8B-Instruct", batch_size=batch_size, mode=mode
    )
    workload.run(gpubench)


@pytest.mark.llm_inference
@pytest.mark.needs_vram(LLAMA_8B_INFERENCE_GIB)
@pytest.mark.parametrize("batch_size", [1, 8])
def test_llama_3_1_8b_decode_loop(gpubench, generate_workload, batch_size):
    """The same model, static cache and compiled step, driven by our greedy loop with no host
    sync per token instead of generate(): the GPU's own decode speed (workloads/decode_loop.py)."""
    workload = generate_workload(
        model="meta-llama/Llama-3.1-8B-Instruct", batch_size=batch_size, mode="loop"
    )
    workload.run(gpubench)


@pytest.mark.llm_inference
@pytest.mark.parametrize("mode", ["eager", "static", "loop"])
@pytest.mark.parametrize("batch_size", [1, 4])
def test_llama_tiny_generate_cpu(gpubench, generate_workload, batch_size, mode):
    """The same architecture, CPU-sized: 2 layers, 64 wide; 64 prompt tokens, 16 new."""
    workload = generate_workload(
        model="meta-llama/Llama-3.1-8B-Instruct",
        size="tiny",
        batch_size=batch_size,
        mode=mode,
        input_len=64,
        output_len=16,
    )
    workload.run(gpubench)


# gpt-oss-20b in bf16 (random weights cannot be MXFP4): 20.9 B params x 2 bytes = 39 GiB,
# plus KV and workspace; 3.6 B active per token. Rounded up to 44 GiB.
GPT_OSS_20B_BF16_GIB = 44


@pytest.mark.llm_inference
@pytest.mark.needs_vram(GPT_OSS_20B_BF16_GIB)
@pytest.mark.parametrize("batch_size", [1, 8])
def test_gpt_oss_20b_moe_generate(gpubench, generate_workload, batch_size):
    """A 20B mixture-of-experts model (4 of 32 experts per token) next to the dense 8B."""
    workload = generate_workload(
        model="openai/gpt-oss-20b", batch_size=batch_size, mode="eager", output_len=64
    )
    workload.run(gpubench)
