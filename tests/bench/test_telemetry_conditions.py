"""What the telemetry sampler reads for the validity verdict: throttling and other processes.

NVML is a stand-in object here (the machines that run the suite have no GPU): it answers the
calls the sampler makes the way the real library's do, with a clock event reasons bitmask
and compute process records that carry a ``pid``. The sampler itself is the real one.
"""

from __future__ import annotations

import os
import time
from types import SimpleNamespace

from pytest_gpubench.bench.telemetry import Sampler


class StandInNvml:
    """A GPU that power-caps every other reading and runs this process and pid 4242."""

    def __init__(self, event_reasons: bool = True) -> None:
        self.calls = 0
        if not event_reasons:  # drivers before 535 name it "throttle reasons"
            self.nvmlDeviceGetCurrentClocksThrottleReasons = self._reasons
        else:
            self.nvmlDeviceGetCurrentClocksEventReasons = self._reasons

    def nvmlInit(self) -> None:
        pass

    def nvmlShutdown(self) -> None:
        pass

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:
        return f"gpu{index}"

    def _reasons(self, handle: str) -> int:
        self.calls += 1
        return 0x4 if self.calls % 2 else 0x1

    def nvmlDeviceGetComputeRunningProcesses(self, handle: str) -> list[SimpleNamespace]:
        return [SimpleNamespace(pid=os.getpid()), SimpleNamespace(pid=4242)]


def test_the_sampler_reads_throttling_and_other_processes() -> None:
    for event_reasons in (True, False):
        with Sampler(interval=10.0, nvml=StandInNvml(event_reasons)) as sampler:
            start = sampler.mark()
            for _ in range(4):
                sampler.mark()
            end = sampler.mark()
        shares, others = sampler.telemetry.conditions([(start, end)], {os.getpid()})
        # six marks in the span, alternating power cap (0x4) and idle (0x1): half capped
        assert shares == {"power cap": 0.5}
        assert len(others) == 1 and others[0].startswith("4242 ")  # this process is ours


def test_a_gpu_without_the_calls_reads_nothing() -> None:
    bare = SimpleNamespace(
        nvmlInit=lambda: None,
        nvmlShutdown=lambda: None,
        nvmlDeviceGetHandleByIndex=lambda i: "gpu0",
    )
    with Sampler(interval=10.0, nvml=bare) as sampler:
        start = sampler.mark()
        end = sampler.mark()
    assert sampler.telemetry.conditions([(start, end)], set()) == ({}, [])


def test_mark_returns_the_time_of_the_sample_it_took() -> None:
    with Sampler(interval=10.0, nvml=StandInNvml()) as sampler:
        before = time.monotonic()
        t = sampler.mark()
        assert before <= t <= time.monotonic()
        assert sampler.telemetry.samples[-1].t == t
