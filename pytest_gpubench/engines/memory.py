"""How an engine spends device memory, for the fit estimate: one ``EngineMemory`` row each.

Every server engine carries its own row (``Engine.memory``, in its module); the in-process
runtimes (transformers, diffusers, torch detectors) share ``IN_PROCESS`` here, since they are
not servers. Each figure says where it came from.

- vLLM / SGLang claim a fixed fraction of one GPU (``gpu_memory_utilization``,
  ``mem_fraction_static``) and need the whole model on each GPU unless tensor parallel.
- llama.cpp and Ollama split layers over GPUs (``--split-mode layer``), so a composed device's
  total memory counts.
- In-process runs can spread a model with ``device_map="auto"``; MLA is expanded to per-head
  K/V by the eager attention code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pytest_gpubench.models import kvcache
from pytest_gpubench.models.spec import ModelSpec


@dataclass(frozen=True)
class EngineMemory:
    name: str
    utilization: float | None  # fraction of the device the engine claims; None: what it needs
    one_gpu: bool  # the model must fit on one GPU unless tensor parallel
    mla_mode: str
    default_kv_dtype: str
    overhead_gib: float  # activations / compute buffers / CUDA context beyond weights and KV
    overhead_source: str
    utilization_source: str = ""
    llamacpp_swa: bool = False  # llama.cpp sizes SWA caches as window*n_seq + n_ubatch
    n_ubatch: int = 512

    def window_tokens(self, spec: ModelSpec, context: int, sequences: int) -> int:
        """Cells of one sliding-window layer's cache for ``sequences`` of ``context`` tokens."""
        window = spec.sliding_window
        if not window:
            return 0
        if self.llamacpp_swa:
            # llama-kv-cache-iswa.cpp: size_swa = min(size_base, pad(n_swa*n_seq + n_ubatch, 256))
            cells = window * sequences + self.n_ubatch
            cells = int(math.ceil(cells / 256) * 256)
            return min(context * sequences, cells)
        return min(context, window) * sequences


IN_PROCESS = EngineMemory(
    "transformers",
    utilization=None,
    one_gpu=False,
    mla_mode=kvcache.MLA_EXPANDED,
    default_kv_dtype="bf16",
    overhead_gib=1.0,
    overhead_source=(
        "CUDA context plus activations of a short forward pass; UNCONFIRMED round "
        "figure, grows with batch x sequence length"
    ),
)
#: names an in-process run goes by in ``model(engine=...)`` and ``pytest-gpubench fit --engine``
IN_PROCESS_ALIASES = ("hf", "inprocess", "diffusers", "torch")
