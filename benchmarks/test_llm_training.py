"""LLM full fine-tuning: Gemma-3-270M for 3 epochs, batch 8, max length 512 (the seed's run).

The full-size benchmark needs a GPU with room for it; the CPU-sized one runs anywhere and is
the embedded default of ``pytest benchmarks/`` on a machine without a GPU.
"""

import pytest

# Gemma-3-270M full fine-tune, bf16, batch 8 x 512 tokens: weights + grads + AdamW states of
# 268 M params (~2.2 GiB) plus activations, dominated by the 262k-vocabulary logits
# (8 x 512 x 262144 in bf16 and their fp32 upcast for the loss: ~6 GiB). Rounded up to 12 GiB.
GEMMA_270M_FINETUNE_GIB = 12


@pytest.mark.llm_training
@pytest.mark.needs_vram(GEMMA_270M_FINETUNE_GIB)
def test_gemma_3_270m_full_finetune(gpubench, finetune_workload):
    workload = finetune_workload(model="google/gemma-3-270m-it")
    result = workload.run(gpubench)
    assert sum(result.epoch_samples) == 3 * workload.samples_per_epoch


@pytest.mark.llm_training
@pytest.mark.needs_vram(GEMMA_270M_FINETUNE_GIB * 2)
def test_gemma_3_270m_finetune_packed(gpubench, finetune_workload):
    """Not the seed's settings: the same samples packed into full 512-token rows, batch 16,
    SDPA attention. Every step is full-size work, so this shows the GPU's own training speed;
    compare devices on it, and with the seed on the test above."""
    workload = finetune_workload(
        model="google/gemma-3-270m-it", pack=True, batch_size=16, attn_implementation="sdpa"
    )
    result = workload.run(gpubench)
    assert sum(result.epoch_samples) == 3 * workload.samples_per_epoch


@pytest.mark.llm_training
def test_gemma_3_tiny_finetune_cpu(gpubench, finetune_workload):
    """The same architecture, CPU-sized: 2 layers, 64 wide; 96 samples (<= 128 tokens), 3 epochs."""
    workload = finetune_workload(
        model="google/gemma-3-270m-it", size="tiny", samples=120, epochs=3, max_length=128
    )
    result = workload.run(gpubench)
    assert sum(result.epoch_samples) == 3 * workload.samples_per_epoch
