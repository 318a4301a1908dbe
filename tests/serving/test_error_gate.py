"""serve_bench's error-rate gate and its warnings (``aggregate.check_result``), by hand.

The default allowed error rate is 0: one failed request of twenty fails the test.
"""

from __future__ import annotations

import warnings

import pytest

from pytest_gpubench.serving.aggregate import check_result
from pytest_gpubench.serving.bench import ServeBench, ServeResult, ServingWarning
from pytest_gpubench.serving.client import RequestResult, RequestSpec
from pytest_gpubench.serving.metrics import serving_metrics
from pytest_gpubench.serving.run import RunResult

SPEC = RequestSpec("completions", {"prompt": "x"}, max_tokens=4, input_tokens=3)


def good(tokens: int = 4, usage: int | None = 4) -> RequestResult:
    times = [0.125 * (i + 1) for i in range(tokens)]
    return RequestResult(
        SPEC, ok=True, ttft=0.125, end=times[-1], token_times=times, usage_completion_tokens=usage
    )


def bad(error: str = "HTTP 500: boom") -> RequestResult:
    return RequestResult(SPEC, ok=False, error=error)


def result(results: list[RequestResult]) -> ServeResult:
    run = RunResult(results, [], 0.0, 1.0, "count")
    return ServeResult(serving_metrics(results, 1.0), [run])


def check(res: ServeResult, max_error_rate: float | None = None, ignore_eos: bool = True):
    bench = ServeBench(None, None)  # type: ignore[arg-type]  # the run's default only
    rate = bench.max_error_rate if max_error_rate is None else max_error_rate
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_result(res, rate, ignore_eos)
    return [str(w.message) for w in caught if issubclass(w.category, ServingWarning)]


def test_the_default_allows_no_failed_request() -> None:
    assert ServeBench(None, None).max_error_rate == 0.0  # type: ignore[arg-type]
    res = result([good() for _ in range(19)] + [bad()])
    assert (res.completed, res.failed, res.error_rate) == (19, 1, 1 / 20)
    with pytest.raises(pytest.fail.Exception) as info:
        check(res)
    assert str(info.value) == (
        "serve_bench: 1 of 20 requests failed (error rate 5.0% > allowed 0.0%): 1 x HTTP 500: boom"
    )


def test_an_error_rate_at_the_allowed_rate_passes() -> None:
    res = result([good() for _ in range(19)] + [bad()])
    assert check(res, 0.05) == []
    assert check(res, 0.5) == []
    with pytest.raises(pytest.fail.Exception, match=r"error rate 5\.0% > allowed 4\.0%"):
        check(res, 0.04)


def test_no_failures_pass_at_zero() -> None:
    assert check(result([good() for _ in range(5)]), 0.0) == []
    empty = ServeResult({}, [])
    assert empty.error_rate == 0.0 and empty.short_outputs == 0 and empty.stopped_by == ""


def test_short_outputs_warn_when_eos_was_ignored() -> None:
    res = result([good(), good(3, 3), good(2, 2)])
    assert res.short_outputs == 2
    assert check(res, 0.0, ignore_eos=True) == [
        "2 of 3 requests produced fewer output tokens than asked (9 of 12 tokens in all): the "
        "server ignored ignore_eos/max_tokens, so throughput is not for the requested workload"
    ]
    assert check(res, 0.0, ignore_eos=False) == []


def test_token_count_mismatches_warn() -> None:
    res = result([good(), good(4, None), good(4, None)])
    assert check(res, 0.0) == [
        "2 of 3 requests had no usage from the server or reported fewer tokens than the text "
        "chunks received; their output counts are the client's chunk count"
    ]
    # metrics without the count (a failed run): no warning, no error
    assert check(ServeResult({}, [RunResult([good()], [], 0.0, 1.0, "count")]), 0.0) == []
