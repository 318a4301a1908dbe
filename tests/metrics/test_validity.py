"""The validity verdict's rules (metrics/validity.py), one case per rule and at each line."""

from __future__ import annotations

import pytest

from pytest_gpubench.metrics.validity import (
    CLIENT_SATURATED,
    THROTTLE_SHARE,
    TOKEN_MISMATCH,
    ValidityFacts,
    judge_validity,
    throttle_shares,
)


def test_nothing_seen_is_valid() -> None:
    v = judge_validity(ValidityFacts())
    assert v.valid and v.reasons == () and v.message == "valid"
    assert v.as_dict() == {"valid": True, "reasons": []}


@pytest.mark.parametrize(("cpu_s", "valid"), [(9.0, False), (8.99, True)])
def test_a_cpu_bound_client_makes_it_invalid(cpu_s: float, valid: bool) -> None:
    # 9 CPU seconds in a 10 s span is 0.9 cores: the event loop's one core is full
    v = judge_validity(ValidityFacts(client_cpu_s=cpu_s, wall_s=10.0))
    assert v.valid is valid and CLIENT_SATURATED == 0.9
    if not valid:
        assert "0.90 cores" in v.reasons[0] and "aiohttp" in v.reasons[0]


@pytest.mark.parametrize(("client", "valid"), [(10_101, False), (10_100, True), (9_900, True)])
def test_token_counts_more_than_one_percent_apart(client: float, valid: bool) -> None:
    v = judge_validity(ValidityFacts(client_tokens=client, server_tokens=10_000))
    assert v.valid is valid and TOKEN_MISMATCH == 0.01
    if not valid:
        assert v.reasons == ("the client counted 10101 output tokens, the server 10000 "
                             "(1.0% apart, > 1%)",)  # fmt: skip


def test_throttle_shares_read_the_slowdown_bits_only() -> None:
    # 0x1 idle and 0x2 application clocks are settings, not slowdowns; 0x4 power cap,
    # 0x40 hardware thermal; None: a sample without a reading
    samples = [0x0, 0x1, 0x2, 0x4, 0x4 | 0x40, None, 0x0, 0x0]
    assert throttle_shares(samples) == {"power cap": 2 / 7, "thermal (hardware)": 1 / 7}
    assert throttle_shares([None, None]) == {} and throttle_shares([0x1, 0x2]) == {}


@pytest.mark.parametrize(("share", "valid"), [(THROTTLE_SHARE, False), (0.049, True)])
def test_a_throttled_gpu_makes_it_invalid(share: float, valid: bool) -> None:
    v = judge_validity(ValidityFacts(throttle_share={"power cap": share, "sync boost": 0.01}))
    assert v.valid is valid
    if not valid:
        assert v.reasons == ("the GPU throttled (power cap 5% of the samples)",)


def test_another_process_on_the_gpu_makes_it_invalid() -> None:
    v = judge_validity(ValidityFacts(other_gpu_processes=["4242 python3"]))
    assert not v.valid and v.reasons == ("another process used the GPU: 4242 python3",)


@pytest.mark.parametrize(
    ("cached", "declared", "valid"),
    [(0.06, None, False), (0.05, None, True), (0.55, 0.5, True), (0.56, 0.5, False)],
)
def test_prompt_cache_hits_beyond_the_declared_prefix(cached, declared, valid) -> None:
    v = judge_validity(ValidityFacts(cached_fraction=cached, declared_cached_fraction=declared))
    assert v.valid is valid
    if not valid:
        assert f"{cached:.0%} of prompt tokens from its cache" in v.reasons[0]


def test_every_reason_is_listed() -> None:
    v = judge_validity(
        ValidityFacts(
            client_cpu_s=10.0,
            wall_s=10.0,
            client_tokens=50,
            server_tokens=100,
            throttle_share={"thermal (software)": 0.5},
            other_gpu_processes=["7 x"],
            cached_fraction=1.0,
        )
    )
    assert not v.valid and len(v.reasons) == 5
    assert v.message.startswith("invalid: the load client was CPU-bound")
