"""Engine parallelism and the per-GPU fit, against shares worked out by hand.

Independent figures:

- Llama-3.3-70B / Llama-3.1-8B sizes from their config.json (hidden, intermediate, layers,
  heads, KV heads, vocab): per layer q/o h x h, k/v h x kv_heads*128, MLP 3 x h x i, two norms;
  embedding and LM head vocab x h each. FP8 (vLLM's fp8 checkpoints): linears 1 byte,
  embedding / LM head / norms bf16.
- vLLM: each GPU holds (weights + KV) / tp + overhead, over gpu_memory_utilization 0.9; pipeline
  stages split layers as ``vllm.distributed.utils.get_pp_indices`` (remainder to the stages
  before the last); data parallel: a whole copy per replica.
- llama.cpp ``--split-mode layer``: slot il of n_layer + 1 (the last is the output layer) goes
  to GPU upper_bound(cumulative fractions, il / (n_layer + 1)) (``llama-model.cpp``
  ``load_tensors``); default fractions: each GPU's memory. Worked out by hand below.
"""

from __future__ import annotations

import dataclasses
import sys

import pytest

from pytest_gpubench.devices import load_profiles
from pytest_gpubench.engines.base import ModelRef
from pytest_gpubench.engines.registry import get_engine
from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.models import split
from pytest_gpubench.selection.estimate import ModelRequest, estimate
from pytest_gpubench.selection.fit import judge
from pytest_gpubench.selection.markers import Requirements

GIB = 2**30
PROFILES = load_profiles()
L70 = "meta-llama/Llama-3.3-70B-Instruct"
L8 = "meta-llama/Llama-3.1-8B-Instruct"


def layer_params(h: int, i: int, kv_heads: int, head_dim: int = 128) -> tuple[int, int]:
    """(linear params, norm params) of one Llama decoder layer."""
    linear = 2 * h * h + 2 * h * kv_heads * head_dim + 3 * h * i
    return linear, 2 * h


# Llama-3.3-70B: h 8192, i 28672, 80 layers, 8 KV heads, vocab 128256
LIN70, NORM70 = layer_params(8192, 28672, 8)
EMBED70 = 128256 * 8192
W70_FP8 = 80 * LIN70 * 1 + (80 * NORM70 + 8192) * 2 + 2 * EMBED70 * 2  # bytes
KV70_4K = 2 * 80 * 8 * 128 * 2 * 4096  # K and V, bf16, 4096 tokens
# Llama-3.1-8B: h 4096, i 14336, 32 layers, 8 KV heads
LIN8, NORM8 = layer_params(4096, 14336, 8)
LAYER8_BF16 = (LIN8 + NORM8) * 2
EMBED8_BF16 = 128256 * 4096 * 2
KV8_PER_LAYER_128K = 2 * 8 * 128 * 2 * 131072  # one layer's K and V, fp16, 128k tokens


def test_70b_fp8_weights_by_hand() -> None:
    e = estimate(ModelRequest(L70, quant="fp8", engine="vllm"))
    assert W70_FP8 == 72_656_371_712  # ~72.7 GB: 70.55B params, embeddings and head in bf16
    assert e.weights_gib * GIB == pytest.approx(W70_FP8)
    assert e.kv_gib * GIB == pytest.approx(KV70_4K)


def test_70b_fp8_tensor_parallel_2_on_2xh200_is_half_per_gpu() -> None:
    e = estimate(ModelRequest(L70, quant="fp8", engine="vllm", tensor_parallel=2))
    per_gpu = ((W70_FP8 + KV70_4K) / 2 / GIB + 1.5) / 0.9  # 39.95 GiB
    assert e.per_gpu_need_gib == pytest.approx(per_gpu)
    assert e.need_gib == pytest.approx(2 * per_gpu)
    shares = e.shares(PROFILES.get("2xh200"))
    assert [(s.index, s.gpu) for s in shares] == [(0, "h200"), (1, "h200")]
    assert all(s.need_gib == pytest.approx(per_gpu) and s.available_gib == 141 for s in shares)
    assert e.fits(PROFILES.get("2xh200"))
    # one H100 (80 GiB) would hold 40 GiB, but tp 2 needs two; a 32 GiB RTX 5090 is short
    assert not e.fits(PROFILES.get("h100")) and e.fits(PROFILES.get("2xh100"))
    assert not e.fits(PROFILES.get("2xrtx5090"))


def test_the_fit_command_reports_the_per_gpu_need(capsys) -> None:
    from pytest_gpubench.cli.main import main

    argv = ["fit", L70, "--quant", "fp8", "--engine", "vllm", "--tensor-parallel", "2"]
    assert main([*argv, "--device", "2xh200"]) == 0
    out = capsys.readouterr().out
    per_gpu = ((W70_FP8 + KV70_4K) / 2 / GIB + 1.5) / 0.9
    assert f"  per GPU    {per_gpu:>6.1f} GiB  the busiest of 2 GPUs (tp2)" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("2xh200")]
    assert [r[:5] for r in rows] == [
        ["2xh200", "0", "h200", f"{per_gpu:.1f}", "141.0"],
        ["2xh200", "1", "h200", f"{per_gpu:.1f}", "141.0"],
    ]
    assert all(r[-1] == "yes" for r in rows)


def test_too_few_gpus_is_the_reason() -> None:
    req = Requirements(model=ModelRequest(L70, quant="fp8", engine="vllm", tensor_parallel=4))
    v = judge("t", req, PROFILES.get("2xh200"))
    assert not v.runs
    assert (
        v.reason
        == "Llama-3.3-70B-Instruct fp8 @4k on vllm tp4 on 2xh200: needs 4 GPUs, 2xh200 has 2"
    )


def test_pipeline_stages_follow_vllms_partition() -> None:
    assert split.pp_layers(80, 2) == [40, 40]
    assert split.pp_layers(10, 4) == [2, 3, 3, 2]  # get_pp_indices: remainder before the last
    assert split.pp_layers(7, 3) == [2, 3, 2]
    e = estimate(ModelRequest(L70, quant="fp8", engine="vllm", pipeline_parallel=2))
    body = W70_FP8 - 2 * EMBED70 * 2  # everything but the embedding and the head
    stage = ((body / 2 + EMBED70 * 2 + KV70_4K / 2) / GIB + 1.5) / 0.9
    shares = e.shares(PROFILES.get("2xh200"))
    assert [s.need_gib for s in shares] == pytest.approx([stage, stage])
    assert "stage 0: 40 layers" in shares[0].what and "stage 1: 40 layers" in shares[1].what


def test_data_parallel_is_a_whole_copy_per_gpu() -> None:
    e = estimate(ModelRequest(L70, quant="fp8", engine="vllm", data_parallel=2, concurrency=4))
    # each replica: the whole model and the KV of 2 of the 4 sequences
    replica = ((W70_FP8 + 2 * KV70_4K) / GIB + 1.5) / 0.9
    assert [s.need_gib for s in e.shares(PROFILES.get("2xh200"))] == pytest.approx(
        [replica, replica]
    )
    assert e.fits(PROFILES.get("2xh200")) and not e.fits(PROFILES.get("h200"))


def test_llamacpp_layer_slots_by_hand() -> None:
    # 24:16 -> cumulative [0.6, 1.0]; il/33 < 0.6 for il <= 19: 20 layers on GPU 0
    assert split.llamacpp_layer_slots(32, [24, 16]) == [0] * 20 + [1] * 13
    # 1:3 -> [0.25, 1.0]; il/33 < 0.25 for il <= 8
    assert split.llamacpp_layer_slots(32, [1, 3]) == [0] * 9 + [1] * 24
    # 1:1 over 80 layers: 81 slots, il/81 < 0.5 for il <= 40
    assert split.llamacpp_layer_slots(80, [1, 1]) == [0] * 41 + [1] * 40
    assert split.llamacpp_layer_slots(4, [0, 1]) == [1] * 5  # a zero share: no layers


def test_layer_split_over_4090_and_5070ti_is_judged_per_gpu() -> None:
    """8B bf16 at 128k on llama.cpp: 32 GiB in all fits 40 GiB, but --tensor-split 1,3 puts
    23 layers and the output on the 16 GiB card."""
    device = PROFILES.get("rtx4090+rtx5070ti")
    base = dict(engine="llamacpp", context="128k")
    default = estimate(ModelRequest(L8, **base))
    assert default.need_gib <= device.memory_gib  # the total fits
    gpu0 = (20 * (LAYER8_BF16 + KV8_PER_LAYER_128K) + EMBED8_BF16) / GIB + 1.0
    gpu1 = (12 * (LAYER8_BF16 + KV8_PER_LAYER_128K) + EMBED8_BF16) / GIB + 1.0
    shares = default.shares(device)
    assert [(s.gpu, s.need_gib) for s in shares] == [
        ("rtx4090", pytest.approx(gpu0, rel=1e-5)),
        ("rtx5070ti", pytest.approx(gpu1, rel=1e-5)),
    ]
    assert default.fits(device)

    skewed = ModelRequest(L8, **base, tensor_split=(1.0, 3.0))
    gpu1 = (23 * (LAYER8_BF16 + KV8_PER_LAYER_128K) + EMBED8_BF16) / GIB + 1.0  # 22.5 GiB
    v = judge("t", Requirements(model=skewed), device)
    assert not v.runs
    assert v.need.gib == pytest.approx(gpu1, rel=1e-5) and v.available_gib == 16.0
    assert v.reason.startswith(
        "Llama-3.1-8B-Instruct bf16 @128k on llamacpp tensor-split 1:3 on rtx4090+rtx5070ti: "
        f"GPU 1 (rtx5070ti) needs {gpu1:.1f} GiB (23 layers + output: weights "
    )
    assert "GPU 0" not in v.reason  # the 4090 holds its 9 layers
    assert v.reason.endswith("> 16.0 GiB")


def test_row_split_keeps_the_kv_cache_on_the_main_gpu() -> None:
    device = PROFILES.get("rtx4090+rtx5070ti")
    e = estimate(ModelRequest(L8, engine="llamacpp", context="128k", split_mode="row"))
    matrices = 32 * LAYER8_BF16 + EMBED8_BF16  # layers and output, split 24:16 by rows
    gpu0 = (0.6 * matrices + EMBED8_BF16 + 32 * KV8_PER_LAYER_128K) / GIB + 1.0
    gpu1 = 0.4 * matrices / GIB + 1.0
    assert [s.need_gib for s in e.shares(device)] == pytest.approx([gpu0, gpu1], rel=1e-5)
    none = estimate(ModelRequest(L8, engine="llamacpp", context="128k", split_mode="none"))
    assert [(s.gpu, s.need_gib) for s in none.shares(device)] == [("rtx4090", none.need_gib)]


def test_options_an_engine_does_not_take_are_refused() -> None:
    with pytest.raises(GpubenchError, match=r"split_mode and tensor_split are llama[.]cpp's"):
        estimate(ModelRequest(L8, engine="vllm", split_mode="row"))
    with pytest.raises(GpubenchError, match="are vLLM's and SGLang's options; llamacpp"):
        estimate(ModelRequest(L8, engine="llamacpp", tensor_parallel=2))
    for bad, message in (
        (dict(split_mode="rows"), "split_mode must be one of layer, row, none"),
        (dict(tensor_split=(True, 1)), "tensor_split shares must be numbers"),
        (dict(tensor_split=[3, 1]), "tensor_split must be a tuple"),
        (dict(tensor_split=(0, 0)), "tensor_split needs a positive share"),
        (dict(pipeline_parallel=0), "pipeline_parallel must be a positive whole number"),
        (dict(data_parallel=True), "data_parallel must be a positive whole number, got True"),
    ):
        with pytest.raises(GpubenchError, match=message):
            estimate(ModelRequest(L8, engine="llamacpp", **bad))


def launch_argv(engine: str, **options) -> list[str]:
    return get_engine(engine).launch(ModelRef("m", "m"), "127.0.0.1", 1, options).argv


def test_engines_spell_their_own_flags() -> None:
    argv = launch_argv("llamacpp", split_mode="layer", tensor_split=[3, 1], main_gpu=0)
    assert argv[argv.index("--split-mode") + 1] == "layer"
    assert argv[argv.index("--tensor-split") + 1] == "3,1"  # one argument, comma-separated
    assert argv[argv.index("--main-gpu") + 1] == "0"
    vllm = launch_argv("vllm", tensor_parallel_size=2, pipeline_parallel=2, data_parallel_size=1)
    assert vllm[-7:-1] == [
        "--tensor-parallel-size", "2", "--pipeline-parallel-size", "2",
        "--data-parallel-size", "1",
    ]  # fmt: skip
    assert vllm[-1] == "--enable-prompt-tokens-details"  # after them: usage's cached tokens
    sglang = launch_argv("sglang", tensor_parallel=2, data_parallel_size=2)
    assert sglang[-4:] == ["--tp-size", "2", "--dp-size", "2"]
    with pytest.raises(GpubenchError, match=r"llama[.]cpp has no option tensor_parallel_size"):
        launch_argv("llamacpp", tensor_parallel_size=2)
    with pytest.raises(GpubenchError, match=r"split_mode and tensor_split are llama[.]cpp options"):
        launch_argv("vllm", tensor_split=[1, 1])
    with pytest.raises(GpubenchError, match="must be a positive whole number, got '2'"):
        launch_argv("vllm", tensor_parallel_size="2")


def test_the_model_marker_takes_the_same_options(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.model("{L8}", engine="llamacpp", context="128k", tensor_split=(1, 3))
        def test_skewed():
            pass

        @pytest.mark.model("{L8}", engine="llamacpp", context="128k")
        def test_default_split():
            pass

        @pytest.mark.model("{L70}", quant="fp8", engine="vllm", tensor_parallel_size=2)
        def test_tp2():
            pass
        """
    )
    result = pytester.runpytest("--device=rtx4090+rtx5070ti", "-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(
        [
            "SKIPPED * tensor-split 1:3 on rtx4090+rtx5070ti: GPU 1 (rtx5070ti) needs 22.* GiB "
            "(23 layers + output: *) > 16.0 GiB",
            "SKIPPED * Llama-3.3-70B-Instruct fp8 @4k on vllm tp2 on rtx4090+rtx5070ti: "
            "GPU 0 (rtx4090) needs 40.0 GiB *> 24.0 GiB; GPU 1 (rtx5070ti) needs 40.0 GiB *",
        ]
    )
    bad = pytester.makepyfile(
        test_bad=f"""
        import pytest

        @pytest.mark.model("{L8}", engine="llamacpp", split_mode="rows")
        def test_typo():
            pass
        """
    )
    result = pytester.runpytest(str(bad), "--device=rtx4090")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*marker @pytest.mark.model: split_mode must be one of*"])


# --- per-GPU shares at their edges, worked out by hand (llama.cpp 8B bf16 @128k: overhead 1.0,
# no utilization; vLLM 70B fp8: overhead 1.5 over 0.9). Layer counts from the slot rule above.
LAYER_KV8 = LAYER8_BF16 + KV8_PER_LAYER_128K
CPP128K = dict(engine="llamacpp", context="128k")
MIXED = PROFILES.get("rtx4090+rtx5070ti")  # 24 + 16 GiB


def cpp_what(n: int, w: float, k: float, output: bool = False) -> str:
    out = " + output" if output else ""
    return f"{n} layers{out}: weights {w / GIB:.1f} + KV {k / GIB:.1f} + overhead 1.0"


def test_one_layer_on_gpu_0_keeps_the_embedding_there() -> None:
    # 1:32 -> cumulative [1/33, 1]: slot 0 < 1/33 on GPU 0, slot 1 (1/33, not below) on GPU 1
    e = estimate(ModelRequest(L8, **CPP128K, tensor_split=(1, 32)))
    w0, w1 = LAYER8_BF16 + EMBED8_BF16, 31 * LAYER8_BF16 + EMBED8_BF16
    assert [(s.index, s.gpu, s.available_gib, s.what) for s in e.shares(MIXED)] == [
        (0, "rtx4090", 24.0, cpp_what(1, w0, KV8_PER_LAYER_128K)),
        (1, "rtx5070ti", 16.0, cpp_what(31, w1, 31 * KV8_PER_LAYER_128K, output=True)),
    ]
    assert [s.need_gib for s in e.shares(MIXED)] == pytest.approx(
        [(w0 + KV8_PER_LAYER_128K) / GIB + 1.0, (w1 + 31 * KV8_PER_LAYER_128K) / GIB + 1.0],
        rel=1e-5,
    )


def test_the_output_layer_alone_on_the_last_gpu() -> None:
    # 32:1 -> cumulative [32/33, 1]: the 32 layers below 32/33, the output slot (32/33) on GPU 1
    e = estimate(ModelRequest(L8, **CPP128K, tensor_split=(32, 1)))
    w0 = 32 * LAYER8_BF16 + EMBED8_BF16
    shares = e.shares(MIXED)
    assert [s.what for s in shares] == [
        cpp_what(32, w0, 32 * LAYER_KV8 - 32 * LAYER8_BF16),
        cpp_what(0, EMBED8_BF16, 0, output=True),  # the LM head: vocab x hidden, as the embedding
    ]
    assert [s.need_gib for s in shares] == pytest.approx(
        [(32 * LAYER_KV8 + EMBED8_BF16) / GIB + 1.0, EMBED8_BF16 / GIB + 1.0], rel=1e-5
    )
    assert e.short(MIXED) == [shares[0]]  # 32 layers + KV: 29.4 GiB > 24


def test_shares_summing_to_one_are_shares_and_missing_shares_are_zero() -> None:
    quarter = estimate(ModelRequest(L8, **CPP128K, tensor_split=(0.25, 0.75)))
    layers = [s.what.split(":")[0] for s in quarter.shares(MIXED)]
    assert layers == ["9 layers", "23 layers + output"]
    alone = estimate(ModelRequest(L8, **CPP128K, tensor_split=(1,)))  # GPU 1 gets share 0
    everything = 32 * LAYER_KV8 + 2 * EMBED8_BF16
    [share] = alone.shares(MIXED)
    assert (share.index, share.gpu) == (0, "rtx4090")
    assert share.need_gib == pytest.approx(everything / GIB + 1.0, rel=1e-5)
    assert share.need_gib == pytest.approx(alone.need_gib)
    assert alone.as_dict()["tensor_split"] == [1.0]
    assert quarter.as_dict()["tensor_split"] == [0.25, 0.75]


def test_row_split_skips_a_gpu_with_no_share() -> None:
    e = estimate(ModelRequest(L8, **CPP128K, split_mode="row", tensor_split=(1, 0, 1)))
    half = (32 * LAYER8_BF16 + EMBED8_BF16) / 2  # layers and output, by rows
    kv = 32 * KV8_PER_LAYER_128K
    w0, w2 = half + EMBED8_BF16, half
    row = "50% of each matrix: weights {:.1f} + KV {:.1f} + overhead 1.0"
    shares = e.shares(PROFILES.get("3xrtx4090"))
    assert [(s.index, s.gpu, s.available_gib, s.what) for s in shares] == [
        (0, "rtx4090", 24.0, row.format(w0 / GIB, kv / GIB)),
        (2, "rtx4090", 24.0, row.format(w2 / GIB, 0.0)),
    ]
    assert [s.need_gib for s in shares] == pytest.approx(
        [(w0 + kv) / GIB + 1.0, w2 / GIB + 1.0], rel=1e-5
    )


def test_one_gpu_holds_it_all() -> None:
    e = estimate(ModelRequest(L8, engine="llamacpp"))  # 4k: KV 0.5 GiB
    need = (32 * LAYER8_BF16 + 2 * EMBED8_BF16) / GIB + 0.5 + 1.0
    [share] = e.shares(PROFILES.get("h100"))
    assert (share.index, share.gpu, share.available_gib, share.what) == (0, "h100", 80.0, "all")
    assert share.need_gib == pytest.approx(need, rel=1e-5)
    [none] = estimate(ModelRequest(L8, engine="llamacpp", split_mode="none")).shares(MIXED)
    assert (none.index, none.gpu, none.what) == (0, "rtx4090", "all")


def test_a_claimed_fraction_divides_every_share() -> None:
    """An engine registered with utilization and one_gpu=False (none is built in): each GPU's
    share is (weights + KV + overhead) / utilization, as for the whole run."""
    for req, device in (
        (ModelRequest(L8, engine="llamacpp"), PROFILES.get("h100")),
        (ModelRequest(L8, **CPP128K), MIXED),
        (ModelRequest(L8, **CPP128K, split_mode="row"), MIXED),
    ):
        plain = estimate(req)
        claimed = dataclasses.replace(plain, utilization=0.8)
        assert [s.need_gib for s in claimed.shares(device)] == pytest.approx(
            [s.need_gib / 0.8 for s in plain.shares(device)]
        )
    assert claimed.need_gib == pytest.approx(plain.need_gib / 0.8)


def test_tensor_parallel_without_a_claimed_fraction() -> None:
    e = estimate(ModelRequest(L70, quant="fp8", engine="vllm", tensor_parallel=2))
    bare = dataclasses.replace(e, utilization=None)  # (weights + KV) / tp + overhead, as is
    assert bare.per_gpu_need_gib == pytest.approx((W70_FP8 + KV70_4K) / 2 / GIB + 1.5)


def test_the_largest_gpu_runs_a_one_gpu_engine() -> None:
    e = estimate(ModelRequest(L8, engine="vllm"))
    need = ((32 * LAYER8_BF16 + 2 * EMBED8_BF16) / GIB + 0.5 + 1.5) / 0.9
    [share] = e.shares(PROFILES.get("rtx5070ti+rtx4090"))
    assert (share.index, share.gpu, share.available_gib) == (1, "rtx4090", 24.0)
    assert share.need_gib == pytest.approx(need, rel=1e-5)


def test_per_gpu_figures_in_the_json() -> None:
    e = estimate(ModelRequest(L70, quant="fp8", engine="vllm", tensor_parallel=2))
    per_gpu = ((W70_FP8 + KV70_4K) / 2 / GIB + 1.5) / 0.9
    d = e.as_dict([PROFILES.get("2xh200")])
    assert d["per_gpu_need_gb"] == round(per_gpu, 3) != round(per_gpu, 4)
    what = f"weights {W70_FP8 / 2 / GIB:.1f} + KV {KV70_4K / 2 / GIB:.1f} + overhead 1.5"
    row = {"need_gb": round(per_gpu, 3), "available_gb": 141.0, "what": what}
    assert d["per_gpu"] == {
        "2xh200": [{"gpu": 0, "name": "h200", **row}, {"gpu": 1, "name": "h200", **row}]
    }
    assert what == "weights 33.8 + KV 0.6 + overhead 1.5"
    one = estimate(ModelRequest(L70, quant="fp8", engine="vllm"))
    assert "per_gpu_need_gb" not in one.as_dict()
    odd = dataclasses.replace(e, overhead_gib=1.23456)
    assert odd.as_dict()["overhead_gb"] == 1.235  # GiB to 3 decimals


def test_too_few_gpus_are_all_short() -> None:
    e = estimate(ModelRequest(L70, quant="fp8", engine="vllm", tensor_parallel=2))
    assert [s.label for s in e.short(MIXED)] == ["GPU 0 (rtx4090)", "GPU 1 (rtx5070ti)"]
    assert e.short(PROFILES.get("2xh200")) == []


def test_recurrent_state_is_in_every_share() -> None:
    """Nemotron-3-Nano: 23 Mamba2 layers of fp32 state, 6 attention layers of bf16 KV (see
    test_estimate_values); the state is held with the layers, like the KV cache."""
    model = "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16"
    d_inner, n_groups, d_state, kernel = 64 * 64, 8, 128, 4
    state = 23 * ((d_inner + 2 * n_groups * d_state) * (kernel - 1) + 64 * 64 * d_state) * 4
    kv = 2 * 6 * 2 * 128 * 2 * 4096
    vllm = estimate(ModelRequest(model, engine="vllm"))
    assert vllm.need_gib == pytest.approx(((vllm.weights_gib * GIB + kv + state) / GIB + 1.5) / 0.9)
    d = vllm.as_dict()
    assert (d["kv_cache_gb"], d["state_gb"]) == (round(kv / GIB, 3), round(state / GIB, 3))
    assert (d["kv_cache_gb"], d["state_gb"]) == (0.023, 0.047)  # 0.0234 and 0.0465 GiB
    cpp = estimate(ModelRequest(model, engine="llamacpp"))
    shares = cpp.shares(MIXED)
    assert len(shares) == 2
    assert sum(s.need_gib - 1.0 for s in shares) == pytest.approx(
        (cpp.weights_gib * GIB + kv + state) / GIB
    )


def test_a_tensor_split_of_true_is_refused_after_a_cached_one() -> None:
    estimate(ModelRequest(L8, engine="llamacpp", tensor_split=(1, 1)))
    with pytest.raises(GpubenchError, match="tensor_split shares must be numbers"):
        estimate(ModelRequest(L8, engine="llamacpp", tensor_split=(True, 1)))  # == (1, 1)


def test_a_one_layer_model_splits_its_two_slots() -> None:
    """A one-layer model (the tiny test models have one): 2 slots, the layer and the output.
    2:1 -> cumulative [2/3, 1]: slot 0 (0) and slot 1 (1/2) both below 2/3, on GPU 0."""
    e = estimate(ModelRequest(L8, **CPP128K, tensor_split=(2, 1)))
    tiny = dataclasses.replace(e, spec=dataclasses.replace(e.spec, num_layers=1))
    [share] = tiny.shares(MIXED)
    assert (share.index, share.what.split(":")[0]) == (0, "1 layers + output")
    assert share.need_gib == pytest.approx(tiny.total_gib)


def test_the_busiest_pipeline_stage_is_the_per_gpu_need() -> None:
    # 32 layers in 3 stages: [11, 11, 10]; the embedding on stage 0, the LM head on stage 2
    e = estimate(ModelRequest(L8, engine="vllm", pipeline_parallel=3))
    kv_layer = 2 * 8 * 128 * 2 * 4096  # bf16, 4k tokens
    stages = [11 * (LAYER8_BF16 + kv_layer) + EMBED8_BF16, 11 * (LAYER8_BF16 + kv_layer)]
    stages.append(10 * (LAYER8_BF16 + kv_layer) + EMBED8_BF16)
    needs = [(b / GIB + 1.5) / 0.9 for b in stages]
    assert [s.need_gib for s in e.shares(PROFILES.get("3xrtx4090"))] == pytest.approx(
        needs, rel=1e-5
    )
    assert e.per_gpu_need_gib == pytest.approx(needs[0], rel=1e-5)  # the busiest: stage 0
    assert e.need_gib == pytest.approx(sum(needs), rel=1e-5)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))
