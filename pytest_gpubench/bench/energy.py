"""NVML's total-energy counter, read on demand at the edges of the work a workload counts.

The telemetry sampler (``bench.telemetry``) gives the energy of ``gpubench.time``'s timed
rounds; a Trainer run is one round whose ``train()`` call also holds its own set-up, while its
rates count only the time inside epochs. ``EnergyCounter`` reads the same counter at exactly
the moments those epochs are timed, so energy per sample and samples per second describe the
same work. It watches the GPU the sampler watches (NVML index 0 unless told otherwise).
"""

from __future__ import annotations

import contextlib
from typing import Any


class EnergyCounter:
    """``with EnergyCounter() as e: j0 = e.read(); ...; joules = e.read() - j0``.

    ``read()`` gives joules since the driver loaded, or None where there is no NVML, no GPU or
    no energy counter (before Volta); ``reason`` then says which.
    """

    def __init__(self, gpu_index: int = 0, nvml: Any = None) -> None:
        self.gpu_index = gpu_index
        self._nvml = nvml
        self._handle: Any = None
        self.reason = ""

    def __enter__(self) -> EnergyCounter:
        nvml = self._nvml
        try:
            if nvml is None:
                import pynvml as nvml  # type: ignore[no-redef]
            nvml.nvmlInit()
        except Exception as exc:
            self.reason = f"no NVML ({exc})"
            return self
        self._nvml = nvml
        try:
            self._handle = nvml.nvmlDeviceGetHandleByIndex(self.gpu_index)
            nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
        except Exception as exc:
            self._handle = None
            self.reason = f"no energy counter ({exc})"
            with contextlib.suppress(Exception):
                nvml.nvmlShutdown()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle = None
            with contextlib.suppress(Exception):
                self._nvml.nvmlShutdown()

    @property
    def available(self) -> bool:
        return self._handle is not None

    def read(self) -> float | None:
        if self._handle is None:
            return None
        try:
            return self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle) * 1e-3
        except Exception:
            return None
