"""A clock that moves only when a test says so, for unit tests whose numbers must not depend
on how busy the machine is.

``now()`` reads the real monotonic clock until ``freeze()``; from then on only ``advance()``
moves it. A workload that calls ``advance(0.3)`` instead of ``time.sleep(0.3)`` takes exactly
0.3 s on this clock whatever the load, so everything timed by it comes out exact:

- pytest-benchmark's rounds, with ``--benchmark-timer=pytest_gpubench.testing.fake_clock.now``;
- the ``gpubench`` fixture's round spans and the telemetry sampler's sample times, after
  ``install(monkeypatch)`` (they read ``time.monotonic`` in their own modules);
- the stand-in NVML's energy counter (tests/fakes/nvml), which integrates its constant power
  over this clock.

This is a test double: nothing in the plugin imports it.
"""

from __future__ import annotations

import sys
import time
import types
from typing import Any

_frozen: float | None = None


def now() -> float:
    return time.monotonic() if _frozen is None else _frozen


def freeze(at: float = 1000.0) -> None:
    global _frozen
    _frozen = float(at)


def thaw() -> None:
    global _frozen
    _frozen = None


def advance(seconds: float) -> None:
    """The stand-in for ``time.sleep``: the frozen clock moves on by ``seconds``, at once."""
    global _frozen
    if _frozen is None:
        raise RuntimeError("fake_clock.advance() before freeze(): the clock is the real one")
    _frozen += seconds


def install(monkeypatch: Any, at: float = 1000.0) -> None:
    """Freeze the clock and make the gpubench fixture and the telemetry sampler read it;
    ``monkeypatch`` undoes both when the test ends."""
    import pytest_gpubench.bench.gpubench as gpubench_module
    import pytest_gpubench.bench.telemetry as telemetry_module

    # thread_time stays real: work on this clock takes no CPU time, as a sleep would not
    fake_time = types.SimpleNamespace(monotonic=now, perf_counter=now, thread_time=time.thread_time)
    monkeypatch.setattr(sys.modules[__name__], "_frozen", float(at))
    monkeypatch.setattr(gpubench_module, "time", fake_time)
    monkeypatch.setattr(telemetry_module, "time", fake_time)
