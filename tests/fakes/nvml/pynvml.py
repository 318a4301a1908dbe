"""A stand-in for nvidia-ml-py's ``pynvml`` (no GPU on the test machines).

It implements only the calls ``pytest_gpubench.devices.detect`` makes, answering from the
environment variable FAKE_NVML_GPUS = "name|memory_mib|major.minor;..." ("NA" memory raises
NVMLError the way a unified-memory GB10 does).
"""

import os

try:  # the energy counter integrates over the test clock (real time unless a test freezes it)
    from pytest_gpubench.testing.fake_clock import now as _now
except ImportError:  # pragma: no cover - run without the plugin on the path
    from time import monotonic as _now


class NVMLError(Exception):
    pass


class _Memory:
    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0
        self.free = total


def _gpus():
    spec = os.environ.get("FAKE_NVML_GPUS", "")
    return [entry.split("|") for entry in spec.split(";") if entry]


def nvmlInit():
    if os.environ.get("FAKE_NVML_GPUS") is None:
        raise NVMLError("Driver Not Loaded")


def nvmlShutdown():
    pass


def nvmlSystemGetDriverVersion():
    return "580.95.05"


def nvmlSystemGetCudaDriverVersion():
    return 13000


def nvmlDeviceGetCount():
    return len(_gpus())


def nvmlDeviceGetHandleByIndex(index):
    return _gpus()[index]


def nvmlDeviceGetName(handle):
    return handle[0]


def nvmlDeviceGetMemoryInfo(handle):
    if handle[1] == "NA":
        raise NVMLError("Not Supported")
    return _Memory(int(handle[1]) * 2**20)


def nvmlDeviceGetCudaComputeCapability(handle):
    major, minor = handle[2].split(".")
    return int(major), int(minor)


def nvmlDeviceGetUUID(handle):
    return "GPU-fake-" + handle[0].replace(" ", "-")


# --- telemetry calls: a GPU drawing a constant 250 W at 87% utilisation (FAKE_NVML_UTIL) ---


NVML_CLOCK_SM = 1
NVML_TEMPERATURE_GPU = 0
POWER_MW = 250_000


class _Util:
    memory = 40

    @property
    def gpu(self):  # FAKE_NVML_UTIL sets it: a starved GPU for the bound verdict's tests
        return int(os.environ.get("FAKE_NVML_UTIL", "87"))


def nvmlDeviceGetPowerUsage(handle):
    return POWER_MW


def nvmlDeviceGetTotalEnergyConsumption(handle):
    # mJ since "driver load": constant power integrates to a straight line over the clock
    # (pytest_gpubench.testing.fake_clock: the real one, or a frozen one a test advances)
    return int(_now() * POWER_MW)


def nvmlDeviceGetUtilizationRates(handle):
    return _Util()


def nvmlDeviceGetClockInfo(handle, clock):
    return 1980


def nvmlDeviceGetTemperature(handle, sensor):
    return 55


def nvmlDeviceGetCurrentClocksEventReasons(handle):
    # FAKE_NVML_CLOCK_REASONS: the bitmask every sample reads (0x20: software thermal
    # slowdown), for the validity verdict's tests; 0 (none) unless set
    return int(os.environ.get("FAKE_NVML_CLOCK_REASONS", "0"), 0)
