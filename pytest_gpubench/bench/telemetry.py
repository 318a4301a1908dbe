"""GPU telemetry sampled in the background while a benchmark runs (NVML through pynvml).

Power, utilisation, memory, SM clock and temperature are sampled every ``interval`` seconds on
a daemon thread; energy comes from NVML's total-energy counter where the GPU has one (Volta
and newer), else from integrating the power samples. With no NVML, the host's resident memory
is sampled instead and the result says that GPU telemetry is off.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psutil

from pytest_gpubench.metrics.validity import throttle_shares

GIB = 2**30


@dataclass
class Sample:
    t: float
    power_w: float | None = None
    energy_j: float | None = None  # NVML counter (mJ since driver load), converted
    util_pct: float | None = None
    mem_used_gib: float | None = None
    sm_clock_mhz: float | None = None
    temp_c: float | None = None
    host_rss_gib: float | None = None
    clock_reasons: int | None = None  # NVML clock event reasons bitmask (throttling)
    gpu_pids: tuple[int, ...] | None = None  # compute processes on the GPU


@dataclass
class Telemetry:
    """What the sampler saw between ``start`` and ``stop``, or inside a window of it."""

    gpu: bool
    reason: str = ""
    samples: list[Sample] = field(default_factory=list)

    def window(self, start: float, end: float) -> dict[str, float]:
        """Summary of the samples in [start, end] (monotonic seconds); energy interpolated."""
        return self.windows([(start, end)])

    def windows(self, spans: list[tuple[float, float]]) -> dict[str, float]:
        """Summary over several spans (the timed rounds, not the set-up between them): energy
        is the counter's rise inside each span, summed, so it covers exactly the timed work;
        utilisation and power average the samples taken inside any span."""
        duration = sum(end - start for start, end in spans)
        inside = [s for s in self.samples if any(a <= s.t <= b for a, b in spans)]
        if not inside and spans:
            inside = self._nearest(spans[0][0], spans[-1][1])
        out: dict[str, float] = {"duration_s": duration, "samples": float(len(inside))}
        if not inside:
            return out
        if self.gpu:
            powers = [s.power_w for s in inside if s.power_w is not None]
            if powers:
                out["avg_power_w"] = sum(powers) / len(powers)
                out["peak_power_w"] = max(powers)
            parts = [self._energy(a, b) for a, b in spans]
            if parts and all(e is not None for e in parts):
                out["energy_j"] = sum(e for e in parts if e is not None)
            elif powers:
                out["energy_j"] = out["avg_power_w"] * duration
                out["energy_integrated"] = 1.0
            for key, name in (("util_pct", "gpu_util_pct"), ("sm_clock_mhz", "sm_clock_mhz")):
                values = [getattr(s, key) for s in inside if getattr(s, key) is not None]
                if values:
                    out[name] = sum(values) / len(values)
            mem = [s.mem_used_gib for s in inside if s.mem_used_gib is not None]
            if mem:
                out["gpu_mem_peak_gib"] = max(mem)
            temps = [s.temp_c for s in inside if s.temp_c is not None]
            if temps:
                out["temp_max_c"] = max(temps)
        rss = [s.host_rss_gib for s in inside if s.host_rss_gib is not None]
        if rss:
            out["host_mem_peak_gib"] = max(rss)
        return out

    def conditions(
        self, spans: list[tuple[float, float]], ours: set[int]
    ) -> tuple[dict[str, float], list[str]]:
        """What the validity verdict reads (metrics/validity.py) over ``spans``: per slowdown
        reason, the share of samples that showed it; and the GPU's compute processes other
        than ``ours`` (this process tree and the measured server), as "pid name"."""
        inside = [s for s in self.samples if any(a <= s.t <= b for a, b in spans)]
        shares = throttle_shares([s.clock_reasons for s in inside])
        pids = sorted({p for s in inside for p in (s.gpu_pids or ())} - ours)
        return shares, [f"{pid} {_process_name(pid)}" for pid in pids]

    def _nearest(self, start: float, end: float) -> list[Sample]:
        if not self.samples:
            return []
        mid = (start + end) / 2
        return [min(self.samples, key=lambda s: abs(s.t - mid))]

    def _energy(self, start: float, end: float) -> float | None:
        points = [(s.t, s.energy_j) for s in self.samples if s.energy_j is not None]
        if len(points) < 2:
            return None

        def at(t: float) -> float:
            for (t0, e0), (t1, e1) in itertools.pairwise(points):
                if t0 <= t <= t1:
                    return e0 + (e1 - e0) * (t - t0) / (t1 - t0 or 1)
            return points[0][1] if t < points[0][0] else points[-1][1]

        return at(end) - at(start)


def _host_rss_gib() -> float | None:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / GIB
    except (OSError, ValueError, IndexError):
        return None


def _process_name(pid: int) -> str:
    try:
        return psutil.Process(pid).name()
    except psutil.Error:
        return "(not visible here)"  # another container's process, or gone


def _clock_reasons(nvml: Any, handle: Any) -> int | None:
    """NVML's clock event reasons (named "throttle reasons" before driver 535)."""
    read = getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None) or getattr(
        nvml, "nvmlDeviceGetCurrentClocksThrottleReasons", None
    )
    try:
        return int(read(handle)) if read is not None else None
    except Exception:
        return None


def _gpu_pids(nvml: Any, handle: Any) -> tuple[int, ...] | None:
    try:
        return tuple(int(p.pid) for p in nvml.nvmlDeviceGetComputeRunningProcesses(handle))
    except Exception:
        return None


def cuda_gpu_index() -> int:
    """NVML's index of the GPU CUDA's device 0 is: the one ``CUDA_VISIBLE_DEVICES`` names when
    it names one by number in PCI order (how --gpubench-gpu-per-worker pins an xdist worker),
    else 0."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    if visible.isdigit() and os.environ.get("CUDA_DEVICE_ORDER") == "PCI_BUS_ID":
        return int(visible)
    return 0


class Sampler:
    """Context manager: ``with Sampler() as s: ...; s.telemetry.window(t0, t1)``."""

    def __init__(
        self, interval: float = 0.1, nvml: Any = None, gpu_index: int | None = None
    ) -> None:
        self.interval = interval
        self.gpu_index = cuda_gpu_index() if gpu_index is None else gpu_index
        self._nvml = nvml
        self._handle: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # the loop and ``mark`` both sample
        self.telemetry = Telemetry(gpu=False)

    def __enter__(self) -> Sampler:
        self._open_nvml()
        self._sample()  # one sample at the start, so a short window is never empty
        self._thread = threading.Thread(target=self._loop, name="gpubench-telemetry", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._sample()
        if self._handle is not None:
            with contextlib.suppress(Exception):
                self._nvml.nvmlShutdown()

    def _open_nvml(self) -> None:
        nvml = self._nvml
        try:
            if nvml is None:
                import pynvml as nvml  # type: ignore[no-redef]
            nvml.nvmlInit()
            self._handle = nvml.nvmlDeviceGetHandleByIndex(self.gpu_index)
            self._nvml = nvml
            self.telemetry = Telemetry(gpu=True)
        except Exception as exc:
            self._handle = None
            self.telemetry = Telemetry(gpu=False, reason=f"GPU telemetry off ({exc})")

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def mark(self) -> float:
        """Sample now and return the sample's time: the edge of a window (a sweep point's)
        whose energy is then the counter's rise between two real readings, not one
        interpolated from the nearest background samples."""
        return self._sample()

    def _read(self, call: str, *args: Any, scale: float = 1.0) -> float | None:
        try:
            value = getattr(self._nvml, call)(self._handle, *args)
        except Exception:
            return None
        return float(value) * scale

    def _sample(self) -> float:
        with self._lock:
            return self._sample_locked()

    def _sample_locked(self) -> float:
        s = Sample(t=time.monotonic(), host_rss_gib=_host_rss_gib())
        if self._handle is not None:
            nvml = self._nvml
            s.power_w = self._read("nvmlDeviceGetPowerUsage", scale=1e-3)
            s.energy_j = self._read("nvmlDeviceGetTotalEnergyConsumption", scale=1e-3)
            with contextlib.suppress(Exception):
                s.util_pct = float(nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu)
            with contextlib.suppress(Exception):
                s.mem_used_gib = nvml.nvmlDeviceGetMemoryInfo(self._handle).used / GIB
            s.sm_clock_mhz = self._read("nvmlDeviceGetClockInfo", getattr(nvml, "NVML_CLOCK_SM", 1))
            s.temp_c = self._read(
                "nvmlDeviceGetTemperature", getattr(nvml, "NVML_TEMPERATURE_GPU", 0)
            )
            s.clock_reasons = _clock_reasons(nvml, self._handle)
            s.gpu_pids = _gpu_pids(nvml, self._handle)
        self.telemetry.samples.append(s)
        return s.t
