"""After a ``serve_bench`` run: where the server put the model, next to the fit estimate.

``record_placement`` asks the server's engine (``Engine.placement``: its log or API), adds
NVML's used memory for the server's processes where NVML and a local process are there, and
records ``extra_info["placement"]``: the ``Placement`` fields, ``offloaded`` (read by the
``bound`` verdict: keep the key), and, where the test's fit estimate is known,
``estimate_gib``, ``measured_gib`` and ``estimate_error_pct``::

    estimate_error_pct = 100 * (estimate_gib - measured_gib) / measured_gib

positive: the estimate was too high; negative: too low (the run needed more than estimated).
``measured_gib`` is NVML's figure when there is one (``measured_source`` "nvml"), else the
engine's own total of its device buffers ("engine"). Engines that reserve a fraction of the GPU
up front (vLLM, SGLang) measure as that reservation, so their error judges
gpu_memory_utilization as much as the model. An offloaded run gets a note in the results and a
``PlacementWarning`` naming the layer counts and what to change.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest

from pytest_gpubench.engines.placement import Placement
from pytest_gpubench.results import sections
from pytest_gpubench.results.record import record_note
from pytest_gpubench.serving.warn import warn_at_caller

GIB = 2**30
PLACEMENT_KEY = sections.PLACEMENT
#: the test's fit estimate (``selection.fit.Need``), put there by the serve_bench fixture
ESTIMATE = pytest.StashKey[Any]()


class PlacementWarning(UserWarning):
    """A server ran part of the model or its KV cache on the CPU beside a GPU."""


def server_pids(server: Any) -> list[int]:
    """The server's process and its descendants (vLLM's GPU memory is in EngineCore's child);
    empty for Docker and external servers."""
    pid = getattr(getattr(server, "handle", None), "pid", None)
    if not isinstance(pid, int):
        return []
    try:
        import psutil

        root = psutil.Process(pid)
        return [pid, *(p.pid for p in root.children(recursive=True))]
    except Exception:
        return [pid]


def process_gpu_gib(pids: list[int], nvml: Any = None) -> float | None:
    """GPU memory NVML says these processes use, summed over every GPU; None without NVML,
    without a GPU or when none of them holds any (then the engine's own figure stands)."""
    if not pids:
        return None
    try:
        if nvml is None:
            import pynvml as nvml  # type: ignore[no-redef]
        nvml.nvmlInit()
    except Exception:
        return None
    try:
        used = 0
        seen = False
        wanted = set(pids)
        for index in range(int(nvml.nvmlDeviceGetCount())):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            for proc in nvml.nvmlDeviceGetComputeRunningProcesses(handle):
                if proc.pid in wanted and isinstance(proc.usedGpuMemory, int):
                    used += proc.usedGpuMemory
                    seen = True
        return used / GIB if seen else None
    except Exception:
        return None
    finally:
        with contextlib.suppress(Exception):
            nvml.nvmlShutdown()


def _log_text(server: Any) -> str:
    """The server's log: its file where there is one, else the lines the plugin kept in memory
    from its start (a run without a log directory: ``-p no:cacheprovider``)."""
    path = getattr(server, "log_path", None)
    if path:
        try:
            return Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            pass
    log = getattr(server, "log", None)
    head = getattr(log, "head", None)
    return "\n".join(head()) if callable(head) else ""


def server_placement(server: Any, engine: Any, nvml: Any = None) -> Placement | None:
    """The engine's placement for this server, with NVML's measured memory where there."""
    ask = getattr(engine, "placement", None)
    if ask is None:
        return None
    try:
        placement = ask(_log_text(server), server)
    except Exception:  # the engine's own parser must never fail a benchmark
        return None
    if placement is None:
        return None
    gib = process_gpu_gib(server_pids(server), nvml)
    if gib is not None:
        return placement.with_measured(gib, "nvml")
    if placement.engine_gib is not None:
        return placement.with_measured(placement.engine_gib, "engine")
    return placement


def estimate_fields(placement: Placement, need: Any) -> dict[str, Any]:
    """``estimate_gib``, ``measured_gib``, ``estimate_error_pct`` (signed, see the module)."""
    gib = getattr(need, "gib", None)
    if not isinstance(gib, (int, float)):
        return {}
    out: dict[str, Any] = {
        "estimate_gib": round(float(gib), 3),
        "estimate_source": getattr(need, "breakdown", "") or getattr(need, "source", ""),
    }
    measured = placement.measured_gib
    if measured:
        out["estimate_error_pct"] = round(100.0 * (gib - measured) / measured, 1)
    return out


def offload_message(placement: Placement, model: str, engine: str) -> str:
    fix = (
        "raise --n-gpu-layers (n_gpu_layers) to put every layer on the GPU, or lower the "
        "context, or use a smaller quant"
        if engine in ("llamacpp", "ollama")
        else "lower cpu_offload_gb / kv_offloading_size, lower the context, or use a "
        "smaller quant or more GPUs"
    )
    return (
        f"{engine} ran {model!r} offloaded: {placement.describe()}; the numbers measure that "
        f"split, not the GPU alone: {fix}"
    )


def record_placement(
    gpubench: Any, request: pytest.FixtureRequest, server: Any, engine: Any
) -> None:
    """Record ``extra_info["placement"]`` for this run; warn and note when offloaded."""
    placement = server_placement(server, engine)
    if placement is None:
        return
    data = placement.as_dict()
    data.update(estimate_fields(placement, request.node.stash.get(ESTIMATE, None)))
    sections.write_placement(gpubench.benchmark.extra_info, data)
    if placement.offloaded:
        name = getattr(engine, "name", "server")
        message = offload_message(placement, str(getattr(server, "model", "")), name)
        record_note(request, message)
        warn_at_caller(PlacementWarning(message))
