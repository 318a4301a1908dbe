"""The stall parsers on a real recorded log (the H200's llama-server, default host prompt
cache) and on edge cases written here: the expected seconds are the log's own timestamps,
subtracted by hand in the comments."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_gpubench.engines import find_engine
from pytest_gpubench.engines.stalls import LLAMACPP_HOST_CACHE, from_llamacpp_log

RECORDED = Path(__file__).parent / "recorded"


def test_llamacpp_host_cache_copies_and_evictions_from_the_h200_log() -> None:
    """69 unedited lines of the H200 capacity run (docs/h200-run/server-log-stalls.txt): one
    new request (task 8851) makes the server save three idle slots; one is cached already,
    two need room first."""
    text = (RECORDED / "llamacpp_h200_host_prompt_cache.log").read_text()
    report = from_llamacpp_log(text)
    assert report is not None
    (stall,) = report.stalls
    assert stall.cause == LLAMACPP_HOST_CACHE
    # saving 4.21.267.747 -> making room 4.21.267.761:       0.014 ms
    # making room 4.21.267.761 -> cache state 4.21.358.532: 90.771 ms
    # saving 4.21.359.231 -> "already in the cache" .244:    0.013 ms
    # saving 4.21.359.709 -> making room 4.21.359.729:       0.020 ms
    # making room 4.21.359.729 -> cache state 4.21.475.483: 115.754 ms
    assert stall.seconds == pytest.approx(0.206572, abs=1e-6)
    assert (stall.steps, stall.slow) == (5, 2)
    # first line 4.21.267.130, last 4.21.475.483
    assert report.span_s == pytest.approx(0.208353, abs=1e-6)
    assert report.fraction == pytest.approx(0.206572 / 0.208353)
    assert "cache_ram" in stall.advice


def test_llamacpp_stamps_carry_minutes_and_an_idle_log_has_no_stall() -> None:
    text = (
        "0.59.900.000 I srv   prompt_save:  - saving prompt with length 900, total state size "
        "= 112.5 MiB (draft: 0.000 MiB)\n"
        "1.00.150.250 I srv        update:  - cache state: 1 prompts, 112.5 MiB\n"
        "1.02.000.000 I srv  update_slots: all slots are idle\n"
    )
    report = from_llamacpp_log(text)
    assert report is not None
    assert report.seconds == pytest.approx(0.25025)  # 60.150250 - 59.900000
    assert report.span_s == pytest.approx(2.1)
    idle = from_llamacpp_log("0.01.000.000 I srv  update_slots: all slots are idle\n" * 2)
    assert idle is not None and idle.stalls == () and idle.fraction == 0.0
    assert from_llamacpp_log("no timestamps here\n") is None


def test_only_llamacpp_reads_stalls_from_its_log() -> None:
    text = (RECORDED / "llamacpp_h200_host_prompt_cache.log").read_text()
    assert find_engine("llamacpp").log_stalls(text).seconds == pytest.approx(0.206572, abs=1e-6)
    assert find_engine("vllm").log_stalls(text) is None
