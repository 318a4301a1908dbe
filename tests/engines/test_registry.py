"""The one engine registry and the one Prometheus parser."""

from __future__ import annotations

import pytest

from pytest_gpubench.engines import get_engine, memory_for, prometheus, registry
from pytest_gpubench.engines.vllm import VLLM
from pytest_gpubench.errors import GpubenchError


def test_every_alias_resolves_the_same_in_launch_and_fit() -> None:
    """One alias table: what llm_server accepts, the fit estimate accepts too."""
    for alias in ("llama.cpp", "llama-cpp", "llama_cpp", "LlamaCpp"):
        assert get_engine(alias).name == "llamacpp"
        assert memory_for(alias) is get_engine("llamacpp").memory
    assert memory_for("hf").name == memory_for("diffusers").name == "transformers"


def test_a_scope_restores_an_overridden_builtin() -> None:
    builtin = get_engine("vllm")

    class Patched(VLLM):
        name = "vllm"

    scope = registry.Scope()
    with pytest.raises(GpubenchError, match="taken by 'vllm'"):
        scope.register(Patched())
    scope.register(Patched(), replace=True)
    assert isinstance(get_engine("vllm"), Patched)
    scope.close()
    assert get_engine("vllm") is builtin
    assert registry.engine_names()[:2] == ["vllm", "llamacpp"]  # in its place, not appended


def test_a_scope_removes_its_new_engines_and_aliases() -> None:
    class Mine(VLLM):
        name = "mine"
        aliases = ("my-engine",)

    scope = registry.Scope()
    scope.register(Mine())
    assert get_engine("my-engine").name == "mine"
    scope.close()
    assert registry.find_engine("mine") is None and registry.find_engine("my-engine") is None


def test_an_object_without_the_engine_fields_is_refused() -> None:
    with pytest.raises(GpubenchError, match="lacks"):
        registry.register(object())  # type: ignore[arg-type]


def test_prometheus_label_values_may_hold_braces_and_quotes() -> None:
    """The two regex parsers this one replaced both dropped such a sample."""
    text = (
        "# TYPE vllm:prompt_tokens_total counter\n"
        'vllm:prompt_tokens_total{model_name="a}b"} 3\n'
        'vllm:prompt_tokens_total{model_name="say \\"hi\\""} 4\n'
    )
    samples = prometheus.parse(text)
    assert prometheus.total(samples, "vllm:prompt_tokens_total") == 7
    assert samples['vllm:prompt_tokens_total{model_name="a}b"}'] == 3


def test_prometheus_total_skips_nan_and_reports_absence() -> None:
    samples = prometheus.parse('x_total 2\nx_total{a="1"} NaN\n')
    assert prometheus.total(samples, "x_total") == 2
    assert prometheus.total(samples, "y_total") is None
