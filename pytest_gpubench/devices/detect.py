"""What hardware is really here: GPUs through NVML, host memory from the OS.

NVML (``pynvml`` from nvidia-ml-py) is used instead of torch because detection runs at
configure time, must work with no torch installed, and must not create a CUDA context.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass, field
from typing import Any

GIB = 2**30


@dataclass(frozen=True)
class DetectedGpu:
    index: int
    name: str
    memory_gib: float | None  # None where NVML has no figure (unified memory: DGX Spark, Thor)
    compute_capability: str = ""
    uuid: str = ""


@dataclass(frozen=True)
class Detection:
    """The result of probing the machine once per pytest run."""

    gpus: tuple[DetectedGpu, ...] = ()
    driver: str = ""
    cuda: str = ""
    nvml_error: str = ""  # why there is no GPU information, when there is none
    host_memory_gib: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        if not self.gpus:
            why = self.nvml_error or "NVML found none"
            return f"no GPU ({why}); host {self.host_memory_gib:.1f} GiB"
        names: dict[str, int] = {}
        for gpu in self.gpus:
            names[gpu.name] = names.get(gpu.name, 0) + 1
        gpus = ", ".join(f"{n}x {name}" if n > 1 else name for name, n in names.items())
        return f"{gpus} (driver {self.driver or '?'}, CUDA {self.cuda or '?'})"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("extra")
        return data


def host_memory_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 0.0


def _nvml_library_loads() -> bool:
    """Whether the NVML library pynvml would load is there (``libnvidia-ml.so.1``, as
    nvidia-ml-py loads it on Linux). True when the ``pynvml`` on the path is not the installed
    package (a stand-in, as the tests use) or on other systems: then pynvml decides."""
    import ctypes
    import importlib.util
    import sys

    spec = importlib.util.find_spec("pynvml")
    origin = (spec.origin or "") if spec is not None else ""
    installed = "site-packages" in origin or "dist-packages" in origin
    if not installed or not sys.platform.startswith("linux"):
        return True
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return False
    return True


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def detect(nvml: Any = None) -> Detection:
    """Probe NVML; any failure (no library, no driver, no GPU) means 'no GPU' with the reason.

    ``nvml`` is the pynvml module; tests pass a stand-in because these machines have no GPU.
    """
    host = host_memory_gib()
    if nvml is None and not _nvml_library_loads():
        # what pynvml's nvmlInit says then, without importing pynvml (~10 ms of every pytest
        # run's header on a machine without an NVIDIA driver)
        reason = "NVML unavailable: NVML Shared Library Not Found"
        return Detection(nvml_error=reason, host_memory_gib=host)
    if nvml is None:
        try:
            import pynvml as nvml  # type: ignore[no-redef]
        except ImportError as exc:
            return Detection(nvml_error=f"pynvml not importable: {exc}", host_memory_gib=host)
    try:
        nvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        return Detection(nvml_error=f"NVML unavailable: {exc}", host_memory_gib=host)
    try:
        driver = _text(nvml.nvmlSystemGetDriverVersion())
        try:
            cuda_int = int(nvml.nvmlSystemGetCudaDriverVersion())
            cuda = f"{cuda_int // 1000}.{(cuda_int % 1000) // 10}"
        except Exception:
            cuda = ""
        gpus = []
        for index in range(int(nvml.nvmlDeviceGetCount())):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            name = _text(nvml.nvmlDeviceGetName(handle))
            try:
                memory = nvml.nvmlDeviceGetMemoryInfo(handle).total / GIB
            except Exception:  # "Not Supported" on unified-memory GPUs
                memory = None
            try:
                major, minor = nvml.nvmlDeviceGetCudaComputeCapability(handle)
                capability = f"{major}.{minor}"
            except Exception:
                capability = ""
            try:
                uuid = _text(nvml.nvmlDeviceGetUUID(handle))
            except Exception:
                uuid = ""
            gpus.append(DetectedGpu(index, name, memory or None, capability, uuid))
        return Detection(tuple(gpus), driver, cuda, "", host)
    except Exception as exc:
        return Detection(nvml_error=f"NVML query failed: {exc}", host_memory_gib=host)
    finally:
        with contextlib.suppress(Exception):
            nvml.nvmlShutdown()
