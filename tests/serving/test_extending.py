"""Serving's extension points, used as a user would: a request source and a load shape each
registered from a conftest (one module each) and used through ``serve_bench`` in a real pytest
run against the stub server (pytest_gpubench/testing/stub_server.py); and an unknown keyword
as one line naming the nearest valid ones."""

from __future__ import annotations

import json

import pytest

from plumbing.leftovers import failure_lines
from plumbing.servers import SERVER_CLASSES

# one module: a request source that sends numbered questions, and a load shape whose gaps
# grow by 0.05 s (0, 0.05, 0.15, 0.3, ...): neither exists in the plugin
CONFTEST = """
import itertools

from pytest_gpubench.serving.client import RequestSpec


class Questions:
    name = "questions"

    def needs_tokenizer(self, workload):
        return False

    def draw(self, draw):
        out = []
        for i in range(draw.count):
            text = f"question {draw.stream}-{draw.key[-1]}-{i}: what is {i} + {i}?"
            body = {"prompt": text, **draw.workload.extra}
            out.append(RequestSpec("completions", body, draw.workload.output_len, None, 0))
        return out


class Ramp:
    name = "ramp"

    def offsets(self, load):
        t = 0.0
        for i in itertools.count():
            yield t
            t += 0.05 * (i + 1)


def pytest_gpubench_register_request_sources(register):
    register(Questions())


def pytest_gpubench_register_load_shapes(register):
    register(Ramp())
"""

BENCH = (
    SERVER_CLASSES
    + """
URL = {url!r}

def test_custom(serve_bench):
    r = serve_bench(Server(URL), source="questions", arrival="ramp", num_prompts=5,
                    concurrency=5, output_len=3, warmups=2)
    prompts = [x.spec.body["prompt"] for x in r.results]
    assert prompts == [f"question 0-0-{{i}}: what is {{i}} + {{i}}?" for i in range(5)]
    assert r.completed == 5 and r.failed == 0
    sent = sorted(x.scheduled for x in r.results)
    due = [t - sent[0] for t in sent]
    assert due == pytest.approx([0.0, 0.05, 0.15, 0.3, 0.5], abs=1e-9), due
    assert all(x.start >= x.scheduled for x in r.results)
"""
)


def test_a_source_and_a_load_shape_registered_from_a_conftest(pytester, stub_server) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile("import pytest\n" + BENCH.format(url=stub_server.base_url))
    result = pytester.runpytest("--benchmark-json=out.json", "--device=cpu")
    result.assert_outcomes(passed=1)
    serving = json.loads((pytester.path / "out.json").read_text())["benchmarks"][0]["extra_info"]
    assert serving["serving"]["source"] == "questions"
    assert serving["serving"]["arrival"] == "ramp"
    assert serving["serving"]["requests_used"] == 5


def test_a_registered_name_is_gone_after_the_run(pytester, stub_server) -> None:
    """Registrations last one pytest run: the next in-process run without the conftest does
    not know the source (the message names the registered ones)."""
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile("import pytest\n" + BENCH.format(url=stub_server.base_url))
    pytester.runpytest("--device=cpu").assert_outcomes(passed=1)
    (pytester.path / "conftest.py").unlink()
    pytester.makepyfile(
        SERVER_CLASSES
        + f"""
URL = {stub_server.base_url!r}

def test_gone(serve_bench):
    serve_bench(Server(URL), source="questions", num_prompts=2)
"""
    )
    result = pytester.runpytest("--device=cpu")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*serve_bench: source='questions' is no registered request source*registered: trace,*"]
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            "serve_bench(Server(URL), num_promts=10)",
            "serve_bench got unknown keyword 'num_promts' (did you mean num_prompts?); its "
            "keywords are arrival, burstiness,",
        ),
        (
            "serve_bench(Server(URL), input_length=10, concurency=2)",
            "serve_bench got unknown keywords 'input_length' (did you mean input_len, "
            "output_len?), 'concurency' (did you mean concurrency?);",
        ),
        (
            "serve_bench.sweep(Server(URL), concurrency=[1, 2], ouput_len=4)",
            "serve_bench.sweep got unknown keyword 'ouput_len' (did you mean output_len, "
            "input_len?);",
        ),
        (
            "serve_bench(Server(URL), arrival='ramp')",
            "serve_bench: arrival must be 'constant', 'poisson' or 'gamma', got 'ramp'",
        ),
    ],
)
def test_an_unknown_keyword_is_one_line_naming_the_nearest(
    pytester, stub_server, call, message
) -> None:
    pytester.makepyfile(
        SERVER_CLASSES
        + f"""
URL = {stub_server.base_url!r}

def test_misuse(serve_bench):
    {call}
"""
    )
    result = pytester.runpytest("--device=cpu")
    result.assert_outcomes(failed=1)
    lines = failure_lines(result, "test_misuse")
    assert len(lines) == 1, result.stdout.str()  # the message alone: no traceback
    assert lines[0].startswith(message), lines[0]


def test_load_and_limits_as_values_are_the_keywords(pytester, stub_server) -> None:
    """``load=Load(...)``, ``limits=Limits(...)``: the same run as the keywords they hold
    (the recorded settings of the two tests are equal but for the prompts' draw)."""
    pytester.makepyfile(
        SERVER_CLASSES
        + f"""
from pytest_gpubench.serving.options import Limits, Load

URL = {stub_server.base_url!r}

def test_values(serve_bench):
    r = serve_bench(Server(URL), load=Load(num_prompts=6, concurrency=2, warmups=1),
                    limits=Limits(timeout_s=30, slo={{"ttft_ms": 5000}}), input_len=8,
                    output_len=4)
    assert r.requests_used == 6

def test_keywords(serve_bench):
    r = serve_bench(Server(URL), num_prompts=6, concurrency=2, warmups=1, timeout_s=30,
                    slo={{"ttft_ms": 5000}}, input_len=8, output_len=4)
    assert r.requests_used == 6
"""
    )
    result = pytester.runpytest("--benchmark-json=out.json", "--device=cpu")
    result.assert_outcomes(passed=2)
    benches = json.loads((pytester.path / "out.json").read_text())["benchmarks"]
    infos = {b["name"]: dict(b["extra_info"]["serving"]) for b in benches}
    for info in infos.values():
        info.pop("prompt_draw")
    assert infos["test_values"] == infos["test_keywords"]
    assert infos["test_values"]["concurrency"] == 2
    assert infos["test_values"]["num_prompts"] == 6
    assert infos["test_values"]["slo_ms"] == {"ttft_ms": 5000}


def test_a_setting_given_twice_is_one_line(pytester, stub_server) -> None:
    pytester.makepyfile(
        SERVER_CLASSES
        + f"""
from pytest_gpubench.serving.options import Load

URL = {stub_server.base_url!r}

def test_twice(serve_bench):
    serve_bench(Server(URL), load=Load(concurrency=4), concurrency=2)
"""
    )
    result = pytester.runpytest("--device=cpu")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["serve_bench: concurrency is given twice: as a keyword and in load=Load(...)"]
    )
