"""The device's real ceilings, measured once per run: copy bandwidth and dense matmul rate.

Datasheet peaks are rarely reachable (an H100 SXM copies at ~3.0 TB/s of its 3.35 TB/s and
multiplies bf16 at ~800 of 989 TFLOP/s), so rooflines are reported against both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Ceilings:
    copy_gbs: float  # device-to-device copy, bytes read + written per second / 1e9
    matmul_tflops: dict[str, float]  # dtype -> measured dense TFLOP/s
    device_name: str


def _time_cuda(torch: Any, fn: Any, repeat: int) -> float:
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeat):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / 1000 / repeat


def measure(
    dtypes: tuple[str, ...] = ("bf16",), copy_gib: float = 2.0, n: int = 8192
) -> Ceilings | None:
    """None without torch or CUDA (nothing to measure on a CPU machine)."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    elements = int(copy_gib * 2**30 / 4)
    src = torch.empty(elements, dtype=torch.float32, device="cuda")
    dst = torch.empty_like(src)
    seconds = _time_cuda(torch, lambda: dst.copy_(src), 10)
    copy_gbs = 2 * src.numel() * 4 / seconds / 1e9
    rates = {}
    names = {"bf16": torch.bfloat16, "fp16": torch.float16, "tf32": torch.float32}
    for dtype in dtypes:
        if dtype not in names:
            continue
        a = torch.randn(n, n, device="cuda", dtype=names[dtype])
        b = torch.randn(n, n, device="cuda", dtype=names[dtype])
        seconds = _time_cuda(torch, lambda a=a, b=b: a @ b, 10)
        rates[dtype] = 2 * n**3 / seconds / 1e12
    torch.cuda.empty_cache()
    return Ceilings(copy_gbs, rates, torch.cuda.get_device_name())
