"""How an engine spreads one model over several GPUs: which layers and bytes land on which GPU.

Pure arithmetic, no estimate or device objects, so each rule is tested against numbers worked
out by hand:

- llama.cpp ``--split-mode layer``: the repeating layers and the output layer (``n_layer + 1``
  slots) go to GPU ``upper_bound(cumulative split fractions, slot / (n_layer + 1))``, the
  fractions being ``--tensor-split`` or, by default, each GPU's free memory
  (``llama-model.cpp``, ``load_tensors``: ``get_layer_buft_list``). A layer's KV cache lives
  with the layer.
- llama.cpp ``--split-mode row``: every matrix is split by rows in the ``--tensor-split``
  proportions; the KV cache and intermediate results stay on ``--main-gpu`` (GPU 0 here).
- vLLM / SGLang pipeline parallel: layers split evenly over the stages, the remainder going
  to the stages before the last (vLLM ``get_pp_indices``); the embedding on the first stage,
  the LM head on the last. Tensor parallel divides a stage over its GPUs; data parallel
  repeats the whole thing.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence

from pytest_gpubench.errors import GpubenchError

SPLIT_MODES = ("layer", "row", "none")


def fractions(ratios: Sequence[float]) -> list[float]:
    """``--tensor-split 3,1`` -> ``[0.75, 0.25]``; GPUs past the list get nothing."""
    total = float(sum(ratios))
    if not total > 0:
        raise GpubenchError(f"tensor_split needs a positive share somewhere, got {list(ratios)}")
    return [r / total for r in ratios]


def llamacpp_layer_slots(n_layers: int, ratios: Sequence[float]) -> list[int]:
    """The GPU of each of llama.cpp's ``n_layers + 1`` slots (the last is the output layer)."""
    cumulative, running = [], 0.0
    for f in fractions(ratios):
        running += f
        cumulative.append(running)
    slots = n_layers + 1
    last = len(cumulative) - 1
    return [min(bisect_right(cumulative, il / slots), last) for il in range(slots)]


def pp_layers(n_layers: int, stages: int) -> list[int]:
    """Layers per pipeline stage: even, the remainder to the stages before the last."""
    per = [n_layers // stages] * stages
    for i in range(2, n_layers % stages + 2):
        per[-i] += 1
    return per


def check_split_mode(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or value.lower() not in SPLIT_MODES:
        raise GpubenchError(f"split_mode must be one of {', '.join(SPLIT_MODES)}, got {value!r}")
    return value.lower()


def check_tensor_split(value: object) -> tuple[float, ...] | None:
    """``"3,1"``, ``[3, 1]`` or ``(0.6, 0.4)`` -> ``(3.0, 1.0)``; None stays None."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items:
        raise GpubenchError(
            f"tensor_split must be a list of shares such as [3, 1] or '3,1', got {value!r}"
        )
    out = []
    for item in items:
        if isinstance(item, bool):
            raise GpubenchError(f"tensor_split shares must be numbers, got {value!r}")
        try:
            share = float(item)
        except (TypeError, ValueError):
            raise GpubenchError(f"tensor_split shares must be numbers, got {value!r}") from None
        if not (share >= 0 and math.isfinite(share)):
            raise GpubenchError(f"tensor_split shares must be >= 0, got {value!r}")
        out.append(share)
    fractions(out)
    return tuple(out)
