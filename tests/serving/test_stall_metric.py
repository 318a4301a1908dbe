"""server_stall_fraction over rounds, and the warning that names the fix."""

from __future__ import annotations

import pytest

from pytest_gpubench.engines.stalls import Stall, StallReport
from pytest_gpubench.metrics.core import UNGATED
from pytest_gpubench.serving.stalls import STALL_WARN_FRACTION, stall_message, stall_metric


def report(span: float, seconds: float, slow: int = 1) -> StallReport:
    return StallReport(span, (Stall("the cache", seconds, slow + 3, slow, "turn it off"),))


def test_rounds_pool_their_seconds_not_their_fractions() -> None:
    # 9 of 10 s, then 1 of 90 s: 10 of 100 s stalled (the mean of the fractions, 45.6%, would
    # let one short round speak for the long one)
    m = stall_metric([report(10.0, 9.0), None, report(90.0, 1.0, slow=4)])
    assert m is not None and m.value == pytest.approx(0.10)
    assert m.spread == {"stalled_s": 10.0, "span_s": 100.0, "steps": 11.0, "slow_steps": 5.0}
    assert m.unit == "fraction" and m.higher_is_better is False
    assert "server_stall_fraction" in UNGATED  # a setting's cost, warned about, not gated
    assert stall_metric([None]) is None  # no log (a server the plugin did not start)
    clean = stall_metric([StallReport(30.0, ())])
    assert clean is not None and clean.value == 0.0


def test_the_warning_names_the_share_the_cause_and_the_fix() -> None:
    reports = [report(100.0, 59.0, slow=1760)]
    text = stall_message(stall_metric(reports), reports)
    assert text is not None
    assert text.startswith("the server stalled 59% of the run (59.0 of 100.0 s in its own log)")
    assert "the cache: 59.0 s, 1760 copies and evictions of 1 ms or more; turn it off" in text
    below = [report(100.0, 100 * STALL_WARN_FRACTION - 0.1)]
    assert stall_message(stall_metric(below), below) is None
    at = [report(100.0, 100 * STALL_WARN_FRACTION)]
    assert stall_message(stall_metric(at), at) is not None
