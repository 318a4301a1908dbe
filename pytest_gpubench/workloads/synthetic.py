"""Synthetic weights and tokenizers: run any workload without downloading anything.

Throughput of a dense model does not depend on its weight values: the same shapes do the same
matrix multiplications whatever the numbers in them. So a model built from its config with
random weights (``weights="random"``) measures the same speed as the real checkpoint. That is
the default when the real weights are not in the local Hugging Face cache; ``weights="hub"``
loads them offline first (the local cache) and only then from the Hub, and every result records
which was used.

Where weight values *can* change the work, the workloads pin it:

- Early end-of-sequence: a random (or real) model may emit EOS early and stop generating.
  Generation runs with ``min_new_tokens == max_new_tokens`` and no EOS token, and checks that
  every sequence has exactly the requested length.
- Mixture-of-experts routing: which experts a token visits depends on the router weights. With
  random weights routing is near uniform; a trained router can be skewed, so per-expert load
  (and the speed of grouped kernels) can differ. The configs used here are dense; an MoE model
  run with random weights measures balanced routing, and its result says ``weights: random``.
- Diffusion: the number of denoising steps is fixed (no early stopping), and the text encoder
  pads every prompt to the pipeline's fixed ``max_sequence_length`` (FLUX.2) or uses the
  prompt's own tokens (Z-Image, where a synthetic tokenizer's token count differs a little from
  the real one's).
- Training: loss values differ, the work per step does not; samples and tokens are counted as
  they are processed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from pytest_gpubench.errors import GpubenchError

# the catalog's one reader of its configs folder, imported here by the workloads too
from pytest_gpubench.models.catalog import catalog_config, hf_cached_file  # noqa: F401

WEIGHTS = ("auto", "random", "hub")


def in_local_cache(model_id: str) -> bool:
    """Whether the real checkpoint's config is in the local Hugging Face cache."""
    return any(hf_cached_file(model_id, name) for name in ("config.json", "model_index.json"))


@dataclass(frozen=True)
class WeightsChoice:
    """Which weights a workload uses, and why (recorded with its results)."""

    weights: str  # "random" or "hub"
    reason: str


def choose_weights(model_id: str, requested: str, tiny: bool) -> WeightsChoice:
    if requested not in WEIGHTS:
        raise GpubenchError(
            f"weights={requested!r} is not one of {', '.join(WEIGHTS)} "
            "(random: built from the config; hub: the real checkpoint; auto: hub if cached)"
        )
    if tiny:
        if requested == "hub":
            raise GpubenchError(
                f"weights='hub' with the tiny CPU-sized {model_id} config: there is no such "
                "checkpoint; use weights='random' (or the full-size model)"
            )
        return WeightsChoice("random", "tiny config (no checkpoint exists)")
    if requested == "random":
        return WeightsChoice("random", "requested")
    cached = in_local_cache(model_id)
    if requested == "hub":
        return WeightsChoice("hub", "local cache" if cached else "download (not in local cache)")
    if cached:
        return WeightsChoice("hub", "auto: found in the local Hugging Face cache")
    return WeightsChoice("random", "auto: not in the local Hugging Face cache")


def from_hub(loader: Any, model_id: str, **kwargs: Any) -> Any:
    """``loader(model_id, ...)`` offline first: the local cache, then the Hub if allowed.

    With ``HF_HUB_OFFLINE=1`` a checkpoint missing from the cache is a clear error, not a hang.
    """
    try:
        return loader(model_id, local_files_only=True, **kwargs)
    except OSError as exc:
        if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false", "False"):
            raise GpubenchError(
                f"weights='hub': {model_id} is not in the local Hugging Face cache and "
                f"HF_HUB_OFFLINE is set; download it first or use weights='random' ({exc})"
            ) from None
    return loader(model_id, **kwargs)


# A small English vocabulary for synthetic prompts and instruction data.
_WORD_TEXT = (
    "apple banana bread butter cheese chicken chocolate coffee cookie corn cream egg fish garlic "
    "grape honey juice lemon lettuce milk mushroom noodle olive onion orange pasta pepper pizza "
    "potato rice salad salmon salt sandwich sauce soup spinach steak strawberry sugar tea tomato "
    "water wine yogurt a an the and or with of in on at to from for is are was this that photo "
    "image plate bowl table kitchen restaurant market shop menu recipe breakfast lunch dinner "
    "snack drink food fresh hot cold sweet sour spicy green red yellow brown white small large "
    "sliced grilled fried baked boiled roasted raw cooked served topped mixed chopped glass cup "
    "bottle can box bag person people man woman child dog cat street car bus park tree sky sun "
    "cloud river beach mountain house room window door chair book phone computer screen shelf"
)
WORDS = tuple(_WORD_TEXT.split())

SPECIALS = ("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "user", "model")

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<start_of_turn>"
    "{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n{{ m['content'] }}<end_of_turn>\n"
    "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def synthetic_tokenizer(extra_words: tuple[str, ...] = ()):
    """A word-level tokenizer over ``WORDS`` with a Gemma-style chat template.

    Stands in for the real tokenizer when the real weights (and so their tokenizer) are absent:
    ids stay below any real vocabulary size, common words are one token each (close to what
    BPE tokenizers give for plain English), punctuation is split off.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab: dict[str, int] = {}
    for token in (*SPECIALS, *WORDS, *extra_words, *".,:;!?'\"-()[]{}0123456789_/"):
        vocab.setdefault(token, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Punctuation(),
            pre_tokenizers.Digits(True),
        ]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        eos_token="<eos>",
        bos_token="<bos>",
        unk_token="<unk>",
        additional_special_tokens=["<start_of_turn>", "<end_of_turn>"],
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast
