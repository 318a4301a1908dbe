"""The documentation's example engine (docs/extending/example-engine.md), run as written:
one module, registered through the hook.

The "binary" is the test suite's stub OpenAI server (pytest_gpubench/testing/stub_server.py),
started for real by llm_server's process launcher: no real engine is needed to show that an
engine the plugin has never heard of gets launch, readiness, tokenize, server-side counters,
the fit estimate's memory row and a version in the baseline from its one module.
"""

from __future__ import annotations

import json

import pytest


def test_example_is_about_thirty_lines(example_engine: str) -> None:
    code = [line for line in example_engine.splitlines() if line.strip()]
    assert len(code) <= 40


TEST = """
import pytest


@pytest.mark.model("meta-llama/Llama-3.1-8B-Instruct", engine="openai-server", context=4096)
def test_serve(llm_server, serve_bench):
    server = llm_server("openai-server", model="my-model")
    assert server.version == "stub-1.0"
    result = serve_bench(server, input_len=8, output_len=16, num_prompts=4, concurrency=2)
    assert result.completed == 4 and result.failed == 0
    assert result["server_output_tokens"] == 4 * 16  # from the engine's counter name
    assert server.counters()["generation_tokens"] == 4 * 16
"""


def test_readme_engine_serves_benchmarks_and_reaches_the_baseline(
    pytester: pytest.Pytester, example_engine: str
) -> None:
    pytester.makeconftest(example_engine)
    pytester.makepyfile(test_served=TEST)
    result = pytester.runpytest_subprocess(
        "--device=cpu", "--gpubench-save-baseline=saved.json", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=1)
    doc = json.loads((pytester.path / "saved.json").read_text())
    assert doc["gpubench"]["environment"]["engines"] == {"openai-server": "stub-1.0"}


def test_readme_engine_memory_row_drives_the_fit_estimate(
    pytester: pytest.Pytester, example_engine: str
) -> None:
    """The plan's breakdown carries each engine's own overhead: 2.0 GiB from the example's
    row, 1.5 GiB from vLLM's (engines/vllm.py)."""
    pytester.makeconftest(example_engine)
    pytester.makepyfile(
        test_plan="""
        import pytest

        @pytest.mark.model("meta-llama/Llama-3.1-8B-Instruct", engine="openai-server")
        def test_ours(): pass

        @pytest.mark.model("meta-llama/Llama-3.1-8B-Instruct", engine="vllm")
        def test_vllm(): pass
        """
    )
    result = pytester.runpytest_subprocess("--device=h100", "--gpubench-plan")
    assert result.ret == 0, result.stdout.str()
    out = result.stdout.str()
    ours = next(line for line in out.splitlines() if "test_ours" in line)
    theirs = next(line for line in out.splitlines() if "test_vllm" in line)
    assert "overhead 2.0" in ours, ours
    assert "overhead 1.5" in theirs, theirs


def test_unknown_engine_in_the_marker_names_the_registered_ones(
    pytester: pytest.Pytester, example_engine: str
) -> None:
    pytester.makeconftest(example_engine)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.model("meta-llama/Llama-3.1-8B-Instruct", engine="openai-servr")
        def test_typo(): pass
        """
    )
    result = pytester.runpytest_subprocess("--device=h100")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown engine 'openai-servr'. Did you mean openai-server*"])
