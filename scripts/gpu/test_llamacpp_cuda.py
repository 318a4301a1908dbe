"""llama.cpp built with CUDA on the GPU machine: serve_bench through llm_server, next to
llama-bench on the same GGUF (a Llama-3.1-8B-shaped random Q4_K_M written by
write_random_gguf.py and quantized by the build's llama-quantize; see llamacpp_build.sh).

Run on the GPU machine after llamacpp_build.sh (GPUBENCH_LLAMA_DIR, default /tmp/llama):

    python3 -m pytest -p pytest_gpubench.plugin scripts/gpu/test_llamacpp_cuda.py --device=auto
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

LLAMA = Path(os.environ.get("GPUBENCH_LLAMA_DIR", "/tmp/llama"))
GGUF = LLAMA / "llama8b-q4_k_m.gguf"
SERVER = LLAMA / "build" / "bin" / "llama-server"
MODEL = pytest.mark.model(
    "meta-llama/Llama-3.1-8B-Instruct", quant="q4_k_m", engine="llamacpp", context=16384
)

pytestmark = pytest.mark.skipif(
    not (GGUF.exists() and SERVER.exists()),
    reason=f"needs {SERVER} and {GGUF}: run scripts/gpu/llamacpp_build.sh first",
)


def llama_bench() -> dict[str, float]:
    """avg tokens/s of llama-bench's pp512 and tg128 rows (llama-bench.json)."""
    rows = json.loads((LLAMA / "llama-bench.json").read_text())
    out = {}
    for row in rows:
        test = "pp512" if row.get("n_prompt") and not row.get("n_gen") else "tg128"
        out[test] = float(row["avg_ts"])
        out[test + "_std"] = float(row.get("stddev_ts", 0.0))
    return out


def server(llm_server, *, context: int = 16384, parallel: int = 10, n_gpu_layers: int = 99):
    """llama-server on the GGUF; each of ``parallel`` slots gets context / parallel tokens."""
    return llm_server(
        engine="llamacpp",
        model=str(GGUF),
        executable=str(SERVER),
        options={
            "context": context,
            "n_gpu_layers": n_gpu_layers,
            "flash_attn": "on",
            "parallel": parallel,
        },
    )


@pytest.mark.llm_inference
@MODEL
def test_llama8b_q4km_single_stream_vs_llama_bench(llm_server, serve_bench, gpubench):
    """One user, short prompt, 128 forced tokens: decode speed as llama-bench's tg128 sees it."""
    r = serve_bench(
        server(llm_server),
        input_len=16,
        output_len=128,
        num_prompts=20,
        concurrency=1,
        warmups=3,
    )
    assert r.failed == 0
    decode = 1000.0 / r.metrics["tpot_ms"].value
    gpubench.metric(
        "decode_tok_s",
        decode,
        "tok/s",
        True,
        headline=True,
        description="1000 / mean TPOT, single stream",
    )
    bench = llama_bench()
    gpubench.metric(
        "llama_bench_tg128_tok_s",
        bench["tg128"],
        "tok/s",
        True,
        headline=True,
        spread={"std": bench["tg128_std"]},
    )
    gpubench.metric(
        "llama_bench_pp512_tok_s", bench["pp512"], "tok/s", True, spread={"std": bench["pp512_std"]}
    )
    gpubench.metric(
        "decode_vs_llama_bench_pct", 100 * decode / bench["tg128"], "%", True, headline=True
    )
    # serve_bench recorded the decode roofline at the batch the server ran (1 here)


@pytest.mark.llm_inference
@MODEL
def test_llama8b_q4km_seed_workload_concurrency_10(llm_server, serve_bench, gpubench):
    """The seeds' vLLM workload shape: ~1000 in / ~300 out, 10 warm-ups, 10 users at a time."""
    r = serve_bench(
        server(llm_server),
        input_len=1000,
        output_len=300,
        num_prompts=100,
        concurrency=10,
        warmups=10,
        range_ratio=0.3,
    )
    assert r.failed == 0


def _no_cuda_gpu() -> bool:
    from pytest_gpubench.devices.detect import detect

    return not detect().gpus


@pytest.mark.llm_inference
@MODEL
@pytest.mark.skipif(_no_cuda_gpu(), reason="needs an NVIDIA GPU (NVML finds none)")
def test_llama8b_partial_offload_flagged_with_layer_counts(llm_server, serve_bench, gpubench):
    """20 of the 8B's 32 layers on the GPU (llama.cpp counts 33: the output layer is one): the
    result carries placement.offloaded with the counts, a PlacementWarning, and NVML's memory."""
    from pytest_gpubench.serving.placement import PlacementWarning

    split = server(llm_server, parallel=1, n_gpu_layers=20)
    with pytest.warns(PlacementWarning, match="20 of 33 layers on the GPU, 13 on the CPU"):
        r = serve_bench(split, input_len=16, output_len=32, num_prompts=4, concurrency=1)
    assert r.failed == 0
    placement = gpubench.benchmark.extra_info["placement"]
    assert placement["offloaded"] is True
    assert (placement["gpu_layers"], placement["total_layers"]) == (20, 33)
    assert placement["gpu_model_mib"] > 0 and placement["cpu_model_mib"] > 0
    assert placement["measured_source"] == "nvml" and placement["measured_gib"] > 1.0
    assert "estimate_error_pct" in placement


SWEEP_SLOTS = 64  # llama-server --parallel: every user of the sweep has a slot of its own
SLOT_TOKENS = 2048  # room for the seeds' ~1000 in / ~300 out (+-30%) per slot
QUANTS = {"q4_k_m": GGUF, "q8_0": LLAMA / "llama8b-q8_0.gguf"}


def sweep_server(llm_server, gguf: Path = GGUF, **options):
    """64 slots of 2,048 tokens each (context 131,072; KV 16 GiB at f16 for the 8B); ``options``
    adds llama-server flags (``cache_ram=0`` -> ``--cache-ram 0``)."""
    return llm_server(
        engine="llamacpp",
        model=str(gguf),
        executable=str(SERVER),
        options={
            "context": SWEEP_SLOTS * SLOT_TOKENS,
            "n_gpu_layers": 99,
            "flash_attn": "on",
            "parallel": SWEEP_SLOTS,
            **options,
        },
    )


def quant_case(quant: str):
    """One sweep case per quantization, fit-checked at the sweep server's whole context."""
    marks = [
        pytest.mark.model(
            "meta-llama/Llama-3.1-8B-Instruct",
            quant=quant,
            engine="llamacpp",
            context=SWEEP_SLOTS * SLOT_TOKENS,
        ),
        pytest.mark.skipif(
            not QUANTS[quant].exists(), reason=f"needs {QUANTS[quant]} (llamacpp_build.sh)"
        ),
    ]
    return pytest.param(quant, marks=marks, id=quant)


@pytest.mark.llm_inference
@pytest.mark.parametrize("quant", [quant_case("q4_k_m"), quant_case("q8_0")])
def test_llama8b_concurrency_sweep(llm_server, serve_bench, quant):
    """Issue 17 part 7: the seeds' workload shape at 1..64 users, each with a slot; the points
    go into the baseline (per-point metrics) and `pytest-gpubench pareto` draws the frontier of
    each quantization."""
    r = serve_bench.sweep(
        sweep_server(llm_server, QUANTS[quant]),
        concurrency=[1, 2, 4, 8, 16, 32, 64],
        input_len=1000,
        output_len=300,
        range_ratio=0.3,
        # within one 10-minute GPU call: at ~350 output tok/s, 64 users x 4 requests x 300
        # tokens alone would take ~4.5 min
        time_budget_s=420,
    )
    assert all(p.metrics["failed"].value == 0 for p in r.points)


@pytest.mark.llm_inference
@pytest.mark.parametrize("quant", [quant_case("q4_k_m")])
def test_llama8b_capacity(llm_server, serve_bench, quant):
    """How many users at p90 TTFT <= 2 s and TPOT <= 50 ms (20 tok/s each, faster than
    reading), up to 64 users: a sweep, then the search started from its verdicts, in one test
    (one entry: the frontier and the capacity on it). Both have a time budget, so the test ends
    within one 10-minute GPU call whatever happens (a lower bound, said in the results).

    The earlier version started from the sweep stored in baselines/h200.json; those sweeps
    re-sent earlier points' prompts (served from llama-server's prompt cache) and were taken
    out of the baseline, so the sweep is measured again here."""
    assert _capacity(llm_server, serve_bench, quant).max_concurrency >= 1


def _capacity(llm_server, serve_bench, quant: str, **server_options):
    """The sweep, then the capacity search from its verdicts, on one server."""
    server = sweep_server(llm_server, QUANTS[quant], **server_options)
    shape = dict(input_len=1000, output_len=300, range_ratio=0.3)
    sweep = serve_bench.sweep(
        server, concurrency=[1, 2, 4, 8, 16, 32, 64], time_budget_s=180, **shape
    )
    return serve_bench.capacity(
        server,
        slo={"ttft_ms": 2000, "tpot_ms": 50},
        known=sweep,
        percentile=90,
        max_concurrency=SWEEP_SLOTS,
        prompts_per_user=3,
        time_budget_s=290,
        **shape,
    )


@pytest.mark.llm_inference
@pytest.mark.parametrize("quant", [quant_case("q4_k_m")])
def test_llama8b_capacity_without_host_prompt_cache(llm_server, serve_bench, quant):
    """The capacity test on the server configured for the workload (``--cache-ram 0``): with
    the default cache the H200 served 4 users, bound by the cache's stalls (59% of the run);
    the sweep without it met the SLO at 8 users (p90 TPOT 24 ms) and stopped there as
    saturated, so the limit lies higher. Not run yet (the lease that found this was spent)."""
    assert _capacity(llm_server, serve_bench, quant, cache_ram=0).max_concurrency >= 1


@pytest.mark.llm_inference
@pytest.mark.parametrize("quant", [quant_case("q4_k_m")])
def test_llama8b_sweep_without_host_prompt_cache(llm_server, serve_bench, quant):
    """The Q4_K_M sweep with llama-server's host prompt cache off (``--cache-ram 0``).

    On the H200 (2026-12-01) the default cache (8 GiB) copied each idle slot's KV state to host
    memory when a new request came (about 120 ms for a 1,000-token prompt) and, once full,
    evicted an entry per copy (about 127 ms each): 200 s of the capacity test's 350 s, with
    every slot waiting. Output fell from 301 tok/s at 4 users to 158 at 8, and c1's TTFT was
    251 ms against 123 ms with the cache off (``docs/h200.md``). Prompts never repeat here, so
    the cache cannot pay off; the default stays measured by the tests above.

    ``GPUBENCH_SWEEP_USERS`` (``8,16``), ``GPUBENCH_SWEEP_BUDGET_S`` and
    ``GPUBENCH_LLAMA_FLAGS`` (``no_kv_unified``: one more flag on) narrow it for an ad-hoc
    A/B within what is left of a GPU call."""
    r = serve_bench.sweep(
        sweep_server(llm_server, QUANTS[quant], cache_ram=0, **_env_flags()),
        concurrency=[int(c) for c in os.environ.get("GPUBENCH_SWEEP_USERS", USERS).split(",")],
        input_len=1000,
        output_len=300,
        range_ratio=0.3,
        time_budget_s=int(os.environ.get("GPUBENCH_SWEEP_BUDGET_S", "420")),
    )
    assert all(p.metrics["failed"].value == 0 for p in r.points)


USERS = "1,2,4,8,16,32,64"


def _env_flags() -> dict:
    """``GPUBENCH_LLAMA_FLAGS=no_kv_unified`` -> ``{"no_kv_unified": True}``."""
    return {f: True for f in os.environ.get("GPUBENCH_LLAMA_FLAGS", "").split(",") if f}
