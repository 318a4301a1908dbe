"""What bounded a GPU result: the GPU itself, or something in front of it.

A benchmark that reports "the H100 trains RT-DETRv2 1.9x slower than an RTX 4090" answers the
wrong question when the H100 was 24% busy because the data path in front of it was the bound.
Every GPU result therefore carries a ``bound`` verdict:

- ``gpu``: the GPU was busy (utilisation at or above ``BUSY_PCT``): the figure is the GPU's;
  how well it used its own peak is what roofline % and MFU say.
- ``offload``: the engine put layers or KV cache on the CPU (placement, see
  engines/placement.py): the figure is the PCIe bus's and the CPU's, not the GPU's.
- ``data``: the GPU was idle while the training loop waited for its next batch for at least
  ``DATA_SHARE`` of the time (pre-processing, collation, host-to-device copies).
- ``launch``: the GPU was idle while the thread issuing its work was busy (CPU time at least
  ``THREAD_SATURATED`` of wall time): Python and kernel launches between small kernels.
- ``host``: the GPU was idle and the issuing thread was not busy: it waited on something else
  (host-device syncs, other processes, I/O); for a server, its own HTTP/scheduling/sampling,
  or a stall its own log shows (``server_stall_fraction``, serving/stalls.py: llama-server's
  host prompt cache stalled 59% of an H200 capacity test that read 47% busy).
- ``unknown``: the timed span was too short for NVML's utilisation to mean anything.

The threshold comes from measurement, not taste (H100 2026-11-23 and H200 2026-12-01 runs,
docs/h100.md and archive/gpu-paths/): work that keeps the GPU fed read 72-100% (a bf16 matmul loop
100%, Z-Image 94%, FLUX.2-klein 78%, llama.cpp decode 72-78%), while the runs bounded by our
harness read 22-37% (RT-DETRv2's in-process pre-processing 24%, the Gemma fine-tune 22-25%,
eager 8B ``generate()`` 27-37%). Any value in 37..72 separates the two groups; 60 sits clear of
both. NVML's utilisation is the fraction of a sampling period (1/6 s to 1 s, by GPU) in which
any kernel ran: a span shorter than ``MIN_SPAN_S`` is judged ``unknown`` (a 32 ms round read 0%
on the H200 while its matmuls ran at 659 TFLOP/s).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

#: GPU utilisation (%) at or above which a result is the GPU's own (see the module docstring)
BUSY_PCT = 60.0
#: timed work shorter than this (s) is below NVML's utilisation sampling period
MIN_SPAN_S = 1.0
#: the issuing thread's CPU seconds over wall seconds at or above which it was saturated
THREAD_SATURATED = 0.9
#: the share of wall time spent waiting for batches at or above which data bounds a run
DATA_SHARE = 0.25

VERDICTS = ("gpu", "offload", "data", "launch", "host", "unknown")
#: the metric serve_bench records from the server's log (serving/stalls.py): one per entry,
#: pooled over a sweep's or capacity search's points
STALL_METRIC = "server_stall_fraction"
#: a stall share at or above which a host-bound server's verdict names it (serving/stalls.py
#: warns from the same share)
STALL_SHARE = 0.05


@dataclass(frozen=True)
class Facts:
    """What was measured over one benchmark's timed work."""

    gpu_util_pct: float | None  # NVML's average over the timed span; None without NVML
    span_s: float  # wall seconds of the timed work the utilisation covers
    thread_busy: float | None = None  # CPU time of the thread that ran the work / wall time
    data_wait_share: float | None = None  # time spent waiting for batches / wall time
    offload: str | None = None  # the placement's description when layers or KV sat on the CPU
    server: bool = False  # the GPU work ran in a separate server process
    host_busy_cores: float | None = None  # other processes' CPU use (bench/hostload.py)
    server_stall: float | None = None  # share of its time the server's log shows it stalled


@dataclass(frozen=True)
class Verdict:
    bound: str  # one of VERDICTS
    reason: str  # what was measured that says so
    advice: str = ""  # what to change; empty when the GPU was the bound

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def warning(self, nodeid: str) -> str:
        return f"{nodeid}: {self.bound}-bound: {self.reason}; {self.advice}"


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def judge(f: Facts) -> Verdict | None:
    """The verdict for one result; None where there is no GPU telemetry (a CPU run)."""
    if f.offload:
        return Verdict(
            "offload",
            f"the engine ran part of the model off the GPU ({f.offload})",
            "give the GPU every layer (raise n_gpu_layers / num_gpu), shorten the context or "
            "pick a smaller quantization; this figure measures the CPU and the PCIe bus",
        )
    if f.gpu_util_pct is None:
        return None
    if f.span_s < MIN_SPAN_S:
        return Verdict(
            "unknown",
            f"the timed work lasted {f.span_s:.2f} s, shorter than NVML's {MIN_SPAN_S:g} s "
            "utilisation window",
            "time more work per round or more rounds to get a verdict",
        )
    busy = f"GPU busy {f.gpu_util_pct:.0f}% (< {BUSY_PCT:.0f}%)"
    if f.gpu_util_pct >= BUSY_PCT:
        return Verdict("gpu", f"GPU busy {f.gpu_util_pct:.0f}% of the timed work")
    if f.data_wait_share is not None and f.data_wait_share >= DATA_SHARE:
        return Verdict(
            "data",
            f"{busy}; the loop waited {_pct(f.data_wait_share)} of the time for its next batch",
            "pre-process once, use DataLoader workers with pinned memory, or make synthetic "
            "inputs on the GPU",
        )
    saturated = f.thread_busy is not None and f.thread_busy >= THREAD_SATURATED
    others = (
        f"; other processes used {f.host_busy_cores:.1f} cores"
        if f.host_busy_cores is not None and f.host_busy_cores >= 0.5
        else ""
    )
    if f.server:
        if saturated:
            return Verdict(
                "host",
                f"{busy}; the benchmark client's thread was busy {_pct(f.thread_busy or 0)}"
                + others,
                "the client, not the server, is the bound: pin server and client to different "
                "cores (taskset) or use the aiohttp transport",
            )
        if f.server_stall is not None and f.server_stall >= STALL_SHARE:
            return Verdict(
                "host",
                f"{busy}; the server's own log shows it stalled {_pct(f.server_stall)} of the "
                "time, every request waiting (server_stall_fraction)" + others,
                "turn off the server setting the ServingWarning names where the workload does "
                "not need it, then measure again",
            )
        return Verdict(
            "host",
            f"{busy}; the server's host side (HTTP, scheduling, sampling, streaming) leaves "
            "the GPU idle between steps" + others,
            "raise concurrency to batch more work per step, or compare against the engine's "
            "own offline benchmark (llama-bench, vllm bench throughput)",
        )
    if saturated:
        return Verdict(
            "launch",
            f"{busy} while the thread issuing its work was busy {_pct(f.thread_busy or 0)}: "
            "Python and kernel launches between small kernels" + others,
            "capture the step in a CUDA graph (static cache + torch.compile), or give each "
            "launch more work (larger batch, longer sequences)",
        )
    return Verdict(
        "host",
        f"{busy} while the issuing thread was mostly idle: it waited on host-device syncs, "
        "other processes or I/O" + others,
        "look for .item()/.cpu() calls per step and for other work on the machine",
    )
