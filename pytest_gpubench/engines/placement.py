"""Where a serving engine really put the model, and how much memory it said it used.

The fit estimate (``pytest_gpubench.selection``) says what a model *should* need; the engine's
own log or API says what it *did*: how many layers went to the GPU, which buffers sit in device
memory and which in host memory, whether the KV cache is on the CPU. A run with layers or KV
cache on the CPU while a GPU was used is ``offloaded``: it measures a split the user may not
have meant (Ollama silently keeping 4 of 48 layers on the CPU decoded 3.4x slower than llama.cpp
with all 48 on the GPU).

Each engine module holds its own parser (``llamacpp.placement_from_log``,
``vllm.placement_from_log``, ``ollama.placement_from_ps``), with where its format was read;
each is pure (text or JSON in, ``Placement`` or None out) and tolerant: a line that is missing
leaves its field None; nothing recognisable at all gives None. The engines call them from
``Engine.placement``; nothing here switches on engine names.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

MIB_PER_GIB = 1024.0


@dataclass(frozen=True)
class Placement:
    """Where one server put its model: layer counts, buffer sizes (MiB) on the GPU and the CPU.

    ``total_layers`` is counted the way the engine counts (llama.cpp: repeating layers plus the
    output layer). ``gpu_used``: the engine put something in device memory (None: unknown).
    ``engine_gib`` is the engine's own total of the buffers where the model lives: device
    buffers when a GPU is used, else host buffers (a CPU-only run). ``measured_gib`` is filled
    by the caller: NVML's figure for the server's processes, else ``engine_gib``;
    ``measured_source`` says which.
    """

    source: str
    gpu_layers: int | None = None
    total_layers: int | None = None
    gpu_used: bool | None = None
    gpu_model_mib: float | None = None
    cpu_model_mib: float | None = None
    gpu_kv_mib: float | None = None
    cpu_kv_mib: float | None = None
    gpu_compute_mib: float | None = None
    cpu_compute_mib: float | None = None
    kv_on_cpu: bool = False
    weights_on_cpu: bool = False
    kv_tokens: int | None = None
    max_concurrency: float | None = None
    cpu_offload_gib: float | None = None
    kv_offload_gib: float | None = None
    engine_gib: float | None = None
    measured_gib: float | None = None
    measured_source: str | None = None
    buffers: dict[str, float] = field(default_factory=dict)

    @property
    def cpu_layers(self) -> int | None:
        if self.gpu_layers is None or self.total_layers is None:
            return None
        return max(self.total_layers - self.gpu_layers, 0)

    @property
    def offloaded(self) -> bool:
        """Layers, weights or KV cache on the CPU while a GPU held the rest."""
        return bool(self.gpu_used) and (self.weights_on_cpu or self.kv_on_cpu)

    def with_measured(self, gib: float | None, source: str) -> Placement:
        """This placement with a measured figure (NVML); None keeps what it has."""
        if gib is None:
            return self
        return replace(self, measured_gib=round(gib, 3), measured_source=source)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["cpu_layers"] = self.cpu_layers
        out["offloaded"] = self.offloaded
        out["describe"] = self.describe()
        return out

    def describe(self) -> str:
        """One line: ``"20 of 33 layers on the GPU, 13 on the CPU; KV cache partly on the CPU"``."""
        parts: list[str] = []
        if self.gpu_used is False:
            parts.append("CPU only (no GPU used)")
        elif self.gpu_layers is not None and self.total_layers is not None:
            if self.cpu_layers:
                parts.append(
                    f"{self.gpu_layers} of {self.total_layers} layers on the GPU, "
                    f"{self.cpu_layers} on the CPU"
                )
            else:
                parts.append(f"all {self.total_layers} layers on the GPU")
        elif self.weights_on_cpu and self.cpu_offload_gib:
            parts.append(f"{self.cpu_offload_gib:g} GiB of weights offloaded to the CPU")
        elif self.weights_on_cpu and self.gpu_model_mib is not None and self.cpu_model_mib:
            total = self.gpu_model_mib + self.cpu_model_mib
            parts.append(
                f"{100 * self.gpu_model_mib / total:.0f}% of {total / MIB_PER_GIB:.1f} GiB on "
                f"the GPU, {self.cpu_model_mib / MIB_PER_GIB:.1f} GiB on the CPU"
            )
        elif self.gpu_used:
            parts.append("on the GPU")
        if self.kv_on_cpu and self.gpu_used:
            parts.append("KV cache partly on the CPU" if self.gpu_kv_mib else "KV cache on the CPU")
        if self.kv_tokens is not None:
            text = f"KV cache {self.kv_tokens:,} tokens"
            if self.max_concurrency is not None:
                text += f" ({self.max_concurrency:g}x max concurrency)"
            parts.append(text)
        return "; ".join(parts) if parts else "placement unknown"


#: a decimal number in an engine's log line (the parsers in the engine modules use it)
NUM = r"([0-9]+(?:\.[0-9]+)?)"
