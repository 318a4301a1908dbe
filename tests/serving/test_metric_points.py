"""Per-point figures of a sweep (serving/point_report.py) from a real telemetry sampler.

The sampler runs through the timed call as it does around a sweep; each point's window is
two ``sampler.mark()`` readings. NVML is a stand-in (no GPU here: tests/fakes/nvml): a
constant 250 W whose energy counter integrates over the test clock, 87% busy, so a point of
2.1 s on that clock used 525 J exactly. The requests are written out with their timings, so
the decode batch and rate are known by construction: each of ``users`` requests streams its
first token 0.1 s after the start and 100 more 0.02 s apart (100 tokens in 2 s of decoding).
"""

from __future__ import annotations

import json

import pytest

from pytest_gpubench.metrics import roofline
from pytest_gpubench.models.catalog import load_spec

POINTS = """
import json
import pytest
from pytest_gpubench.testing import fake_clock
from pytest_gpubench.serving.client import RequestResult, RequestSpec
from pytest_gpubench.serving.point_report import point_report

def requests(users, start):
    spec = RequestSpec("completions", {"prompt": "x"}, max_tokens=101, input_tokens=500)
    out = []
    for _ in range(users):
        times = [start + 0.1 + 0.02 * i for i in range(101)]
        out.append(RequestResult(spec, start=start, ok=True, ttft=0.1, end=times[-1],
                                 token_times=times, usage_prompt_tokens=500,
                                 usage_completion_tokens=101))
    return out

@pytest.mark.model("meta-llama/Llama-3.1-8B-Instruct", quant="q4_k_m")
def test_points(gpubench, monkeypatch):
    fake_clock.install(monkeypatch)
    found = {}
    def sweep():
        for users in (1, 4):
            t0 = gpubench.sampler.mark()
            results = requests(users, fake_clock.now())
            fake_clock.advance(2.1)
            t1 = gpubench.sampler.mark()
            report = point_report(gpubench, results, users * 101 / 2.1, (t0, t1), users)
            found[users] = report.as_dict()
    gpubench.time(sweep, rounds=1, warmup_rounds=0)
    print("POINTS", json.dumps(found))
"""


def test_each_point_gets_its_roofline_energy_busy_and_verdict(pytester, fake_nvml) -> None:
    fake_nvml("NVIDIA H100 80GB HBM3|81559|9.0")
    pytester.makepyfile(POINTS)
    result = pytester.runpytest_subprocess(
        "-s", "--benchmark-timer=pytest_gpubench.testing.fake_clock.now"
    )
    result.assert_outcomes(passed=1)
    line = next(x for x in result.outlines if "POINTS " in x)
    points = json.loads(line.split("POINTS ", 1)[1])
    spec, _ = load_spec("meta-llama/Llama-3.1-8B-Instruct")
    for users in (1, 4):
        p = points[str(users)]
        # 500 prompt tokens + half of 101 generated: context 550; 100 tokens each in 2 s
        bound = roofline.decode_bound(spec, "q4_k_m", 3350.0, batch=users, context=550)
        assert p["roofline_bound_tok_s"] == pytest.approx(bound.tokens_per_s, rel=1e-6)
        assert p["roofline_pct"] == pytest.approx(100 * 50 * users / bound.tokens_per_s, rel=1e-3)
        # 250 W x 2.1 s = 525 J over the users x 101 tokens streamed in the window
        assert p["energy_per_output_token_j"] == pytest.approx(525 / (101 * users), rel=1e-3)
        assert p["gpu_util_pct"] == pytest.approx(87.0)
        # 87% busy, yet a few % of the bound: not "gpu", and the figure is said
        assert p["roofline_pct"] < 50
        assert p["bound"]["bound"] == "kernel", p["bound"]
        assert f"(batch {users}, context 550)" in p["bound"]["reason"]


def test_no_sampler_or_no_gpu_gives_no_figures() -> None:
    from types import SimpleNamespace

    from pytest_gpubench.bench.telemetry import Sampler
    from pytest_gpubench.serving.point_report import point_report

    assert point_report(SimpleNamespace(sampler=None), [], 1.0, (0.0, 1.0), 1) is None
    no_nvml = SimpleNamespace()  # nvmlInit missing: the sampler runs without GPU telemetry
    with Sampler(interval=10.0, nvml=no_nvml) as sampler:
        start = sampler.mark()
        end = sampler.mark()
    report = point_report(SimpleNamespace(sampler=sampler), [], 100.0, (start, end), 4)
    assert report is not None and report.verdict is None and report.as_dict() == {}
