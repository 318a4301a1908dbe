"""LLM serving benchmarks: the seeds' models and engines, with the seeds' workload.

``pytest benchmarks/ -m llm_inference --device=spark`` runs what fits; ``-rs`` lists what did
not fit, and what was skipped for missing weights or engines, each with the reason.
"""

from __future__ import annotations

import shutil

import pytest
from serving_cases import (
    CAPACITY_MAX,
    CAPACITY_SLO,
    LLM_CASES,
    SCENARIOS,
    SWEEP_CONCURRENCY,
    SWEEP_WORKLOAD,
    TINY_SERVER_OPTIONS,
    TINY_SWEEP_CONCURRENCY,
    TINY_SWEEP_WORKLOAD,
)


def model_mark(case, concurrency: int):
    """The case's model for the fit estimate, at the concurrency the benchmark reaches."""
    return pytest.mark.model(
        case.model,
        quant=case.quant,
        context=case.context,
        concurrency=concurrency,
        engine=case.engine,
    )


PARAMS = [
    pytest.param(
        case,
        scenario,
        marks=model_mark(case, scenario.concurrency),
        id=f"{case.id}-{scenario.name}",
    )
    for case in LLM_CASES
    for scenario in SCENARIOS
]


@pytest.mark.llm_inference
@pytest.mark.parametrize(("case", "scenario"), PARAMS)
def test_llm_inference(case, scenario, case_server, serve_bench) -> None:
    server = case_server(case)
    result = serve_bench(server, **scenario.workload)
    assert result.failed == 0
    assert result.short_outputs == 0, "the server stopped before max_tokens; see the warning"


SWEEP_PARAMS = [
    pytest.param(case, marks=model_mark(case, max(SWEEP_CONCURRENCY)), id=case.id)
    for case in LLM_CASES
]
CAPACITY_PARAMS = [
    pytest.param(case, marks=model_mark(case, CAPACITY_MAX), id=case.id) for case in LLM_CASES
]


@pytest.mark.llm_inference
@pytest.mark.parametrize("case", SWEEP_PARAMS)
def test_llm_sweep(case, case_server, serve_bench) -> None:
    """One point per concurrency (output tok/s, per user, per GPU, TTFT, TPOT at each)."""
    server = case_server(case)
    result = serve_bench.sweep(server, concurrency=list(SWEEP_CONCURRENCY), **SWEEP_WORKLOAD)
    assert all(p.metrics["failed"].value == 0 for p in result.points)


@pytest.mark.llm_inference
@pytest.mark.parametrize("case", CAPACITY_PARAMS)
def test_llm_capacity(case, case_server, serve_bench) -> None:
    """The most concurrent users whose p90 TTFT and TPOT meet CAPACITY_SLO."""
    server = case_server(case)
    result = serve_bench.capacity(
        server,
        slo=CAPACITY_SLO,
        percentile=90,
        max_concurrency=CAPACITY_MAX,
        **SWEEP_WORKLOAD,
    )
    assert result.points


@pytest.fixture
def tiny_llamacpp_server(llm_server, tmp_path_factory):
    """llama-server on the tiny Llama GGUF, or a skip naming what is missing."""
    from pytest_gpubench.engines.installed import find_llamacpp

    binary = shutil.which("llama-server") or find_llamacpp()
    if not binary:
        pytest.skip(
            "engine missing: llama.cpp (no llama-server on PATH and none provisioned); run "
            "`python -m pytest_gpubench.launch.provision llamacpp`"
        )
    try:
        from pytest_gpubench.testing.tiny_models import build_tiny_llama

        tiny = build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))
    except ImportError as exc:
        pytest.skip(f"the tiny model needs torch, transformers, tokenizers and gguf: {exc}")
    return llm_server(
        engine="llamacpp",
        model=tiny.gguf_path,
        served_name=tiny.served_name,
        executable=str(binary),
        options=dict(TINY_SERVER_OPTIONS),
    )


@pytest.mark.llm_inference
def test_tiny_llm_sweep_cpu(tiny_llamacpp_server, serve_bench) -> None:
    """The CPU-sized sweep: a real curve from a ~1 M-parameter model on llama-server."""
    result = serve_bench.sweep(
        tiny_llamacpp_server, concurrency=list(TINY_SWEEP_CONCURRENCY), **TINY_SWEEP_WORKLOAD
    )
    assert result.points and all(p.metrics["failed"].value == 0 for p in result.points)
