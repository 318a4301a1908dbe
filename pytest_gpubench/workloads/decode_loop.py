"""A greedy decode loop with no host sync per token: what the GPU itself does at batch 1.

``generate()`` with a static cache and ``torch.compile`` still ends every step on the host: it
checks its stopping criteria (``unfinished_sequences.max() == 0``, a device-to-host read) and
hands each token to the streamer (``.cpu()``), so the host cannot queue step n+1 before step n
is done, and the Python between steps is idle GPU time. This loop knows it generates exactly
``new_tokens`` tokens (the benchmark forces that anyway with ``min_new_tokens``), keeps the
argmax on the device and reads nothing back until the end, so the host runs ahead of the GPU
and the compiled step (``mode="reduce-overhead"``: a CUDA graph per step) is replayed
back-to-back. The prefill runs uncompiled (its shape differs from the steps').

It drives the model's own forward with transformers' ``StaticCache``; the keyword names moved
between transformers 5.17 (``past_key_values`` + ``cache_position``) and 5.24 (``cache``, the
cache counts positions itself), so both are read from the forward's signature.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch


class GreedyLoop:
    """``GreedyLoop(model, max_len, compiled).generate(ids, new_tokens)`` -> prompt + tokens."""

    def __init__(self, model: Any, max_len: int, *, compiled: bool) -> None:
        from transformers import StaticCache

        params = inspect.signature(model.forward).parameters
        self.model = model
        self.cache_kw = "cache" if "cache" in params else "past_key_values"
        self.with_cache_position = "cache_position" in params
        self.cache = StaticCache(config=model.config, max_cache_len=max_len)
        self.compiled = compiled
        self.step: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = (
            torch.compile(self._forward, mode="reduce-overhead") if compiled else self._forward
        )

    def _forward(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        kwargs: dict[str, Any] = {self.cache_kw: self.cache, "position_ids": positions}
        if self.with_cache_position:
            kwargs["cache_position"] = positions[0]
        logits = self.model(input_ids=ids, use_cache=True, logits_to_keep=1, **kwargs).logits
        return logits[:, -1, :].argmax(-1, keepdim=True)

    @torch.inference_mode()
    def generate(
        self,
        ids: torch.Tensor,
        new_tokens: int,
        on_first_token: Callable[[], None] | None = None,
    ) -> torch.Tensor:
        """Greedy ``new_tokens`` after ``ids``; ``on_first_token`` runs once the prefill's
        token is ready (the caller syncs and stamps the time to first token there)."""
        self.cache.reset()
        batch, length = ids.shape
        positions = torch.arange(length, device=ids.device).expand(batch, length)
        token = self._forward(ids, positions)
        if on_first_token is not None:
            on_first_token()
        out = [token]
        position = torch.full((batch, 1), length, dtype=torch.long, device=ids.device)
        for _ in range(new_tokens - 1):
            if self.compiled:
                torch.compiler.cudagraph_mark_step_begin()
            token = self.step(token, position).clone()  # a graph's output is reused next step
            position = position + 1
            out.append(token)
        return torch.cat([ids, *out], dim=1)
