"""A pytest plugin that plants a real slowdown in one benchmark, for measuring the gate.

``-p plant_slowdown`` (with this folder on PYTHONPATH) and GPUBENCH_PLANT_TARGET=<part of a
node id>: during that test only, every forward call of a transformers model spins until it
has taken GPUBENCH_PLANT_FACTOR (default 1.18) times as long; its decode tokens/s fell by about 20%
here (the spin adds to the forward time only).
The work is real CPU time, not a faked clock, so the plugin's own timing sees it as a user's
slower code would be seen.
"""

from __future__ import annotations

import os
import time

import pytest

TARGET = os.environ.get("GPUBENCH_PLANT_TARGET", "")
FACTOR = float(os.environ.get("GPUBENCH_PLANT_FACTOR", "1.18"))


def _slowed(call):
    def slowed(self, *args, **kwargs):
        start = time.perf_counter()
        out = call(self, *args, **kwargs)
        until = start + (time.perf_counter() - start) * FACTOR
        while time.perf_counter() < until:
            pass
        return out

    return slowed


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    if not TARGET or TARGET not in item.nodeid:
        return (yield)
    from transformers import PreTrainedModel

    original = PreTrainedModel.__call__
    PreTrainedModel.__call__ = _slowed(original)
    try:
        return (yield)
    finally:
        PreTrainedModel.__call__ = original
