"""A test's markers are parsed once, at collection, and every later reader gets that parse.

Real pytest runs through ``pytester``: the fit verdict, the roofline, llm_server's flags and
the baseline check all read the item's parsed markers (selection/markers.py) instead of the
raw ``@pytest.mark`` again.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from pytest_gpubench.selection import markers

TOLERANCE_TESTS = """
import pytest

@pytest.mark.gpubench_tolerance(tok_s=0.5)
def test_a(gpubench):
    gpubench.time(lambda: None, rounds=1, warmup_rounds=0)
    gpubench.metric("tok_s", 100.0, "tok/s", True, headline=True)
"""


def test_tolerances_are_parsed_once_per_test_and_still_judge_the_baseline(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Collection parses the tolerance; the baseline check reads that parse (it parsed the
    marker a second time before). A 40% drop stays within the marker's 50%."""
    pytester.makepyfile(test_tol=TOLERANCE_TESTS)
    pytester.runpytest("--device=cpu", "--gpubench-save-baseline").assert_outcomes(passed=1)
    stored = json.loads((pytester.path / "baselines" / "cpu.json").read_text())
    stored["benchmarks"][0]["extra_info"]["metrics"]["tok_s"]["value"] = 166.0  # now 40% lower
    (pytester.path / "baselines" / "cpu.json").write_text(json.dumps(stored))

    parsed: Counter[str] = Counter()
    real = markers._tolerances

    def counting(item: pytest.Item) -> dict[str, float]:
        parsed[item.nodeid] += 1
        return real(item)

    monkeypatch.setattr(markers, "_tolerances", counting)
    result = pytester.runpytest("--device=cpu", "--gpubench-baseline", "--gpubench-confirm-runs=0")
    result.assert_outcomes(passed=1)
    assert parsed == Counter({"test_tol.py::test_a": 1})


def test_without_the_tolerance_marker_the_same_drop_fails(pytester: pytest.Pytester) -> None:
    """The counterpart: the stashed tolerance above is what let the drop pass."""
    pytester.makepyfile(test_tol=TOLERANCE_TESTS.replace("@pytest.mark.gpubench_tolerance", "#"))
    pytester.runpytest("--device=cpu", "--gpubench-save-baseline").assert_outcomes(passed=1)
    stored = json.loads((pytester.path / "baselines" / "cpu.json").read_text())
    stored["benchmarks"][0]["extra_info"]["metrics"]["tok_s"]["value"] = 166.0
    (pytester.path / "baselines" / "cpu.json").write_text(json.dumps(stored))
    result = pytester.runpytest("--device=cpu", "--gpubench-baseline", "--gpubench-confirm-runs=0")
    result.assert_outcomes(failed=1)


ROOFLINE_TESTS = """
import pytest

@pytest.mark.model("meta-llama/Llama-3.1-8B-Instruct")
@pytest.mark.parametrize("quant", ["bf16", "q8_0"])
def test_decode(gpubench, quant):
    gpubench.time(lambda: None, rounds=1, warmup_rounds=0)
    gpubench.roofline_decode(111.5)
"""


def test_the_roofline_uses_the_quant_the_test_ran_as_the_fit_estimate_does(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A parametrized ``quant`` fills in the marker (selection/markers.py) for the fit; the
    roofline reads the same parse, so the Q8_0 run is judged at Q8_0's 8.5 bits per weight
    (models/formats.py) rather than the catalog's default bf16, and the marker is parsed once."""
    parsed: Counter[str] = Counter()
    real = markers._model

    def counting(item: pytest.Item, mark: pytest.Mark) -> object:
        parsed[item.nodeid] += 1
        return real(item, mark)

    monkeypatch.setattr(markers, "_model", counting)
    pytester.makepyfile(ROOFLINE_TESTS)
    result = pytester.runpytest("--device=h100", "--benchmark-json=out.json")
    result.assert_outcomes(passed=2)
    bound = {
        b["param"]: b["extra_info"]["metrics"]["roofline_bound_tok_s"]["value"]
        for b in json.loads((pytester.path / "out.json").read_text())["benchmarks"]
    }
    # bf16: 16 bits per weight; q8_0: 8.5 on the linears, so nearly twice the tokens per second
    assert bound["bf16"] == pytest.approx(223, rel=0.01)
    assert 1.6 < bound["q8_0"] / bound["bf16"] < 16 / 8.5
    assert set(parsed.values()) == {1} and len(parsed) == 2


def test_the_parsed_model_marker_keeps_the_server_keywords_as_written(
    pytester: pytest.Pytester,
) -> None:
    item = pytester.getitem(
        """
        import pytest

        @pytest.mark.model("meta-llama/Llama-3.1-8B-Instruct", context="8k",
                           tensor_parallel_size=2, quant="q4_k_m")
        def test_func(): pass
        """
    )
    marked = markers.model_marker(item)
    assert marked is not None
    assert marked.server_options == {"context": "8k", "tensor_parallel_size": 2}
    assert marked.request.context == 8192 and marked.request.tensor_parallel == 2
    assert markers.model_of(item) is marked.request  # the same parse, not a new one
