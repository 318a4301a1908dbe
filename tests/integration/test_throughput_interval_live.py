"""Output tok/s lies inside its own 95% interval on a live llama-server (issue 26, item 7).

Before, the interval averaged per-block rates and left the run's tail out: on a real
llama-server run it read 4,574..5,172 tok/s around a value of 4,336. The tiny model on this
machine's CPU stands in for the GPU run; what is checked is the estimator, not the speed.
Here, at 4 users, the old interval missed its value on both run lengths (4,583 tok/s against
4,599..5,634 and 3,565 against 3,684..4,137, on a 2-core machine busy with other work).
"""

from __future__ import annotations

import json

import pytest

from plumbing.servers import SERVER_CLASSES


def test_live_llamacpp_throughput_lies_inside_its_interval(
    pytester: pytest.Pytester, llamacpp_server
) -> None:
    s = llamacpp_server
    pytester.makepyfile(
        SERVER_CLASSES
        + f"""
import pytest

SERVER = Server({s.base_url!r}, {s.model!r}, Engine("llamacpp"))

@pytest.mark.parametrize("n", [200, 400])
def test_run(serve_bench, n):
    serve_bench(SERVER, input_len=64, output_len=64, num_prompts=n, concurrency=4, warmups=4)

def test_sweep(serve_bench):
    serve_bench.sweep(SERVER, concurrency=[1, 4], input_len=64, output_len=32,
                      prompts_per_user=16, min_prompts=16)
"""
    )
    result = pytester.runpytest("--benchmark-json=out.json", "--device=cpu")
    result.assert_outcomes(passed=3)
    data = json.loads((pytester.path / "out.json").read_text())
    checked = []
    for bench in data["benchmarks"]:
        for name, m in bench["extra_info"]["metrics"].items():
            if name.split(".")[0] == "output_tok_s":
                low, high = m["spread"]["ci95_low"], m["spread"]["ci95_high"]
                assert low <= m["value"] <= high, (bench["name"], name, m)
                assert m["spread"]["ci_blocks"] >= 3
                checked.append(name)
    assert sorted(checked) == ["output_tok_s"] * 2 + ["output_tok_s.c1", "output_tok_s.c4"]
