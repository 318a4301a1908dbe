"""Our greedy decode loop produces exactly what transformers' generate() produces."""

from __future__ import annotations

from plumbing.ci import require_module

require_module("torch", "the workloads need torch (the test extra installs it)")


def test_greedy_loop_matches_generate_with_a_static_cache() -> None:
    """The independent source is transformers' own greedy ``generate()`` over the same static
    cache (fp32 on CPU, so both are deterministic): every token must agree, on a second run
    too (the cache is reset, not reused with stale positions)."""
    import torch

    from pytest_gpubench.workloads.base import ModelSource, causal_lm
    from pytest_gpubench.workloads.decode_loop import GreedyLoop

    source = ModelSource.resolve("meta-llama/Llama-3.1-8B-Instruct", "tiny", "random")
    torch.manual_seed(0)
    model = causal_lm(source, torch.device("cpu"), torch.float32).eval()
    ids = torch.randint(
        3, model.config.vocab_size, (2, 16), generator=torch.Generator().manual_seed(1)
    )
    with torch.inference_mode():
        expected = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=8,
            min_new_tokens=8,
            do_sample=False,
            pad_token_id=0,
            cache_implementation="static",
            disable_compile=True,
        )
    loop = GreedyLoop(model, 24, compiled=False)
    stamped = []
    out = loop.generate(ids, 8, lambda: stamped.append(True))
    assert out.shape == (2, 24)
    assert torch.equal(out, expected)
    assert stamped == [True]
    assert torch.equal(loop.generate(ids, 8), expected)
