"""The memory estimate and the fit verdict, against figures derived outside the estimator.

- parameter count: Llama-3.1-8B has 8,030,261,248 parameters (its model card / safetensors
  index, which transformers on the meta device reproduces);
- KV cache: 2 (K and V) x full-attention layers x KV heads x head_dim x bytes per element x
  context x concurrency, from the model's config.json written out below;
- recurrent state of a Mamba2 layer (Nemotron-H): conv state (d_inner + 2 n_groups d_state) x
  (conv_kernel - 1) plus SSM state heads x head_dim x d_state, in fp32, per sequence;
- vLLM: each GPU holds (weights + KV + state) / tp + overhead, over gpu_memory_utilization.
"""

from __future__ import annotations

import dataclasses
import re

import pytest

from pytest_gpubench.devices.profile import DeviceProfile
from pytest_gpubench.engines.registry import memory_for
from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.models import kvcache
from pytest_gpubench.selection.estimate import (
    ModelRequest,
    context_label,
    default_engine,
    estimate,
    parse_context,
)
from pytest_gpubench.selection.fit import Need, available_gib, fit_reason, judge, need_for
from pytest_gpubench.selection.markers import Requirements

GIB = 2**30
LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
LLAMA_PARAMS = 8_030_261_248  # model card
# config.json: 32 layers, 8 KV heads, head_dim 4096 / 32 = 128
LLAMA_KV_PER_TOKEN_BF16 = 2 * 32 * 8 * 128 * 2  # 131072 B = 128 KiB


def gpu(name: str, gib: float) -> DeviceProfile:
    return DeviceProfile(name, name, gib, False, None, {}, "9.0", "test")


def multi(name: str, *parts: DeviceProfile) -> DeviceProfile:
    return DeviceProfile(
        name, name, sum(p.memory_gib for p in parts), False, None, {}, "9.0", "test", parts=parts
    )


def test_llama_weights_are_its_published_parameter_count_in_bf16() -> None:
    e = estimate(ModelRequest(LLAMA))
    assert e.spec.total_params == LLAMA_PARAMS
    assert e.quant == "bf16"
    assert e.weights_gib == pytest.approx(LLAMA_PARAMS * 2 / GIB)
    assert e.file_gib == pytest.approx(LLAMA_PARAMS * 2 / GIB)
    assert e.as_dict()["params_b"] == 8.03


@pytest.mark.parametrize(
    ("context", "concurrency", "kv_dtype", "bytes_per_elem"),
    [
        (4096, 1, None, 2),  # vLLM's default KV dtype: bf16
        (4096, 4, None, 2),
        (32768, 1, None, 2),
        (8192, 3, "fp8", 1),
        (8192, 2, "f32", 4),
    ],
)
def test_llama_kv_cache_by_hand(context, concurrency, kv_dtype, bytes_per_elem) -> None:
    e = estimate(ModelRequest(LLAMA, context=context, concurrency=concurrency, kv_dtype=kv_dtype))
    expected = 2 * 32 * 8 * 128 * bytes_per_elem * context * concurrency
    assert e.kv_gib * GIB == pytest.approx(expected)
    assert e.state_gib == 0.0
    assert (e.context, e.concurrency) == (context, concurrency)


def test_kv_cache_grows_linearly_with_concurrency() -> None:
    one = estimate(ModelRequest(LLAMA, context="8k"))
    four = estimate(ModelRequest(LLAMA, context="8k", concurrency=4))
    assert four.kv_gib == pytest.approx(4 * one.kv_gib)
    assert four.weights_gib == one.weights_gib
    assert one.kv_gib == pytest.approx(1.0)  # 8192 tokens x 128 KiB


def test_default_context_is_4096_tokens() -> None:
    e = estimate(ModelRequest(LLAMA))
    assert e.context == 4096
    assert e.kv_gib == pytest.approx(0.5)


def test_vllm_need_by_hand() -> None:
    vllm = memory_for("vllm")
    e = estimate(ModelRequest(LLAMA, engine="vllm", context="32k", concurrency=2))
    weights, kv = LLAMA_PARAMS * 2 / GIB, 32768 * 2 * LLAMA_KV_PER_TOKEN_BF16 / GIB
    assert e.total_gib == pytest.approx(weights + kv + vllm.overhead_gib)
    assert e.overhead_gib == vllm.overhead_gib
    assert e.need_gib == pytest.approx((weights + kv + vllm.overhead_gib) / vllm.utilization)
    assert e.per_gpu is True
    assert e.engine == "vllm"


def test_tensor_parallel_splits_weights_and_kv_but_not_the_overhead() -> None:
    vllm = memory_for("vllm")
    e = estimate(ModelRequest(LLAMA, engine="vllm", tensor_parallel=2))
    weights, kv = LLAMA_PARAMS * 2 / GIB, 0.5
    per_gpu = ((weights + kv) / 2 + vllm.overhead_gib) / vllm.utilization
    assert e.need_gib == pytest.approx(2 * per_gpu)
    assert e.tensor_parallel == 2
    assert e.per_gpu is False  # spread over GPUs: judged against the device's total
    assert "tp2" in e.label


def test_fits_needs_the_gpus_for_tensor_parallel() -> None:
    e = estimate(ModelRequest(LLAMA, engine="vllm", tensor_parallel=2))
    h = gpu("h100", 80.0)
    assert not e.fits(gpu("big", 1000.0))  # one GPU, tp 2
    assert e.fits(multi("2xh100", h, h))
    assert not e.fits(multi("2xsmall", gpu("s", 10.0), gpu("s", 10.0)))  # 20 GiB < need ~21


def test_fits_and_judge_agree_at_the_boundary() -> None:
    """need == available fits in both places: Estimate.fits (<=) and judge (not >)."""
    e = estimate(ModelRequest(LLAMA, engine="llamacpp"))
    exact = gpu("exact", e.need_gib)
    below = gpu("below", e.need_gib - 0.001)
    assert e.fits(exact) and not e.fits(below)
    req = Requirements(model=ModelRequest(LLAMA, engine="llamacpp"))
    assert judge("t", req, exact).runs
    assert not judge("t", req, below).runs
    for profile in (exact, below):
        assert judge("t", req, profile).runs == e.fits(profile)
    # an explicit needs_vram, likewise
    assert judge("t", Requirements(vram_gib=24.0), gpu("g", 24.0)).runs
    assert not judge("t", Requirements(vram_gib=24.0), gpu("g", 23.9)).runs


def test_engine_defaults_and_overheads() -> None:
    cpp = memory_for("llamacpp")
    e = estimate(ModelRequest(LLAMA, engine="llamacpp"))
    # llama.cpp's default KV type is f16: same bytes as bf16
    assert e.kv_dtype == "fp16"
    assert e.kv_gib == pytest.approx(0.5)
    assert e.utilization is None
    assert e.need_gib == pytest.approx(LLAMA_PARAMS * 2 / GIB + 0.5 + cpp.overhead_gib)
    assert e.per_gpu is False


def test_mamba_recurrent_state_by_hand() -> None:
    model = "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16"
    pattern = "MEMEM*EMEMEM*EMEMEM*EMEMEM*EMEMEM*EMEMEMEM*EMEMEMEME"  # its config.json
    mamba, attn = pattern.count("M"), pattern.count("*")
    d_inner, n_groups, d_state, kernel = 64 * 64, 8, 128, 4
    per_layer = (d_inner + 2 * n_groups * d_state) * (kernel - 1) + 64 * 64 * d_state
    for concurrency in (1, 3):
        e = estimate(ModelRequest(model, engine="vllm", concurrency=concurrency))
        assert e.state_gib * GIB == pytest.approx(mamba * per_layer * 4 * concurrency)
        # only the 6 attention layers hold a KV cache: 2 KV heads x head_dim 128, bf16
        assert e.kv_gib * GIB == pytest.approx(2 * attn * 2 * 128 * 2 * 4096 * concurrency)
        assert e.total_gib == pytest.approx(e.weights_gib + e.kv_gib + e.state_gib + e.overhead_gib)
        kv = kvcache.kv_cache(
            e.spec, tokens=4096 * concurrency, window_tokens=0, sequences=concurrency,
            kv_dtype="bf16",
        )  # fmt: skip
        assert kv.state_bytes == mamba * per_layer * 4 * concurrency
        assert kv.total_bytes == kv.full_bytes + kv.state_bytes
    assert "+ state" in e.breakdown


def test_sliding_window_layers_hold_at_most_their_window_on_vllm() -> None:
    # gpt-oss-20b: 24 layers alternating sliding (window 128) and full; 8 KV heads x 64
    width = 2 * 8 * 64
    spec = estimate(ModelRequest("openai/gpt-oss-20b", engine="vllm")).spec
    for context, concurrency in ((4096, 1), (4096, 2), (100, 1)):
        kv = kvcache.kv_cache(
            spec,
            tokens=context * concurrency,
            window_tokens=min(context, 128) * concurrency,
            sequences=concurrency,
            kv_dtype="bf16",
        )
        assert kv.full_bytes == 12 * context * concurrency * width * 2
        assert kv.window_bytes == 12 * min(context, 128) * concurrency * width * 2
        assert kv.state_bytes == 0
        assert kv.total_bytes == kv.full_bytes + kv.window_bytes
        e = estimate(
            ModelRequest("openai/gpt-oss-20b", engine="vllm", context=context,
                         concurrency=concurrency)
        )  # fmt: skip
        assert e.kv_gib * GIB == pytest.approx(kv.full_bytes + kv.window_bytes)


@pytest.mark.parametrize(
    ("dtype", "size"),
    [
        ("fp16", 2.0), ("F16", 2.0), ("float16", 2.0), ("bf16", 2.0), ("auto", 2.0),
        ("f32", 4.0), ("fp8", 1.0), ("fp8_e4m3", 1.0), ("fp8_e5m2", 1.0), (" FP8 ", 1.0),
        # ggml blocks of 32 values: q8_0 32 bytes + fp16 scale; q4_0 16 + scale; q4_1 + min
        ("q8_0", 34 / 32), ("q5_1", 24 / 32), ("q5_0", 22 / 32), ("q4_1", 20 / 32),
        ("q4_0", 18 / 32),
    ],
)  # fmt: skip
def test_kv_bytes_per_element(dtype: str, size: float) -> None:
    assert kvcache.kv_bytes_per_element(dtype) == size


def test_kv_dtype_names() -> None:
    assert kvcache.normalize_kv_dtype(" F16 ") == "fp16"
    assert kvcache.normalize_kv_dtype("auto") == "bf16"
    assert kvcache.normalize_kv_dtype("Q8_0") == "q8_0"
    with pytest.raises(GpubenchError) as info:
        kvcache.kv_bytes_per_element("q8")
    assert str(info.value) == (
        "unknown kv_dtype 'q8'. Did you mean q8_0? Known KV cache dtypes: "
        "fp16, bf16, f32, fp8, q8_0, q5_1, q5_0, q4_1, q4_0"
    )
    with pytest.raises(GpubenchError) as info:
        kvcache.kv_bytes_per_element("zzzzzz")
    assert str(info.value).startswith("unknown kv_dtype 'zzzzzz'. Known KV cache dtypes: fp16")


def test_mla_cache_widths() -> None:
    # GLM-4.7-Flash config.json: kv_lora_rank 512, qk_rope_head_dim 64, 20 heads,
    # qk_nope_head_dim 192, v_head_dim 256
    spec = estimate(ModelRequest("zai-org/GLM-4.7-Flash")).spec
    geo = spec.kv
    assert kvcache.elements_per_token(spec, kvcache.MLA_LATENT) == geo.k_per_layer
    assert kvcache.elements_per_token(spec) == geo.k_per_layer
    assert kvcache.elements_per_token(spec, kvcache.MLA_LATENT_SPLIT_V) == (
        2 * geo.k_per_layer - geo.mla_rope
    )
    assert kvcache.elements_per_token(spec, kvcache.MLA_EXPANDED) == (
        geo.mla_expanded_k + geo.mla_expanded_v
    )
    llama = estimate(ModelRequest(LLAMA)).spec
    assert kvcache.elements_per_token(llama) == 2 * 8 * 128
    assert kvcache.elements_per_token(llama, kvcache.MLA_EXPANDED) == 2 * 8 * 128


@pytest.mark.parametrize(
    ("value", "tokens"),
    [(32768, 32768), ("32768", 32768), ("32k", 32768), ("32K", 32768), (" 8 k ", 8192),
     ("1m", 1048576), ("1M", 1048576), ("0.5k", 512), ("1", 1), (1, 1), (2048.0, 2048)],
)  # fmt: skip
def test_parse_context(value, tokens) -> None:
    assert parse_context(value) == tokens


@pytest.mark.parametrize("value", [True, 0, -5, "0", "0.5", "abc", "32g", None, [1]])
def test_parse_context_rejects(value) -> None:
    with pytest.raises(GpubenchError, match="context must be"):
        parse_context(value)


def test_context_label() -> None:
    assert [context_label(n) for n in (1024, 32768, 1000, 4095)] == ["1k", "32k", "1000", "4095"]


def test_labels_and_breakdown() -> None:
    e = estimate(ModelRequest(LLAMA, engine="vllm", context="32k", concurrency=4))
    assert e.label == "Llama-3.1-8B-Instruct bf16 @32k x4 on vllm"
    assert estimate(ModelRequest(LLAMA, engine="vllm")).label == (
        "Llama-3.1-8B-Instruct bf16 @4k on vllm"
    )
    assert e.breakdown == (
        "Llama-3.1-8B-Instruct bf16 @32k x4 on vllm: (weights 15.0 + KV 16.0 + overhead 1.5) "
        "/ 0.90 gpu_memory_utilization"
    )
    cpp = estimate(ModelRequest(LLAMA, engine="llamacpp"))
    assert cpp.breakdown == (
        "Llama-3.1-8B-Instruct bf16 @4k on llamacpp: weights 15.0 + KV 0.5 + overhead 1.0"
    )


def test_as_dict() -> None:
    e = estimate(ModelRequest(LLAMA, engine="llamacpp"))
    d = e.as_dict([gpu("small", 10.0), gpu("big", 80.0)])
    assert d["fits"] == {"small": False, "big": True}
    assert d["context"] == 4096 and d["concurrency"] == 1 and d["tensor_parallel"] == 1
    assert d["engine"] == "llamacpp" and d["kv_dtype"] == "fp16" and d["quant"] == "bf16"
    assert d["weights_gb"] == round(LLAMA_PARAMS * 2 / GIB, 3)
    assert d["kv_cache_gb"] == 0.5
    assert d["overhead_gb"] == 1.0
    assert d["total_gb"] == round(LLAMA_PARAMS * 2 / GIB + 1.5, 3)
    assert d["need_gb"] == d["total_gb"]
    assert d["breakdown"].endswith(f"= {e.need_gib:.1f} GiB")
    assert "fits" not in e.as_dict()


def test_request_validation() -> None:
    for field, bad in (("concurrency", 0), ("concurrency", -1), ("tensor_parallel", 1.5)):
        req = dataclasses.replace(ModelRequest(LLAMA), **{field: bad})
        with pytest.raises(GpubenchError, match=f"{field} must be a positive whole number"):
            estimate(req)
    with pytest.raises(GpubenchError, match=r"exceeds Llama-3\.1-8B-Instruct's max_position"):
        estimate(ModelRequest(LLAMA, context=131073))
    assert estimate(ModelRequest(LLAMA, context=131072)).context == 131072


@pytest.mark.parametrize(
    ("field", "good", "bad", "message"),
    [
        ("concurrency", 1, True, "concurrency must be a positive whole number, got True"),
        ("concurrency", 1, 1.0, "concurrency must be a positive whole number, got 1.0"),
        ("tensor_parallel", 1, True, "tensor_parallel must be a positive whole number, got True"),
        ("context", 1, True, "context must be a number of tokens such as '32k', got True"),
    ],
    ids=["concurrency-True", "concurrency-1.0", "tensor_parallel-True", "context-True"],
)
def test_a_bad_count_is_refused_even_after_its_equal_good_one(field, good, bad, message) -> None:
    """``estimate`` is cached per request, and ``True == 1``, ``1.0 == 1`` hash alike: the
    refusal must not depend on whether the equal good request was answered first."""
    ok = estimate(dataclasses.replace(ModelRequest(LLAMA, engine="llamacpp"), **{field: good}))
    assert getattr(ok, field) == 1
    req = dataclasses.replace(ModelRequest(LLAMA, engine="llamacpp"), **{field: bad})
    assert req == dataclasses.replace(ModelRequest(LLAMA, engine="llamacpp"), **{field: good})
    for _ in range(2):  # and a refused request is not cached either
        with pytest.raises(GpubenchError, match=f"^{re.escape(message)}$"):
            estimate(req)


def test_default_engine() -> None:
    spec = estimate(ModelRequest(LLAMA)).spec
    assert default_engine(spec, gguf=False) == "vllm"
    assert default_engine(spec, gguf=True) == "llamacpp"
    assert estimate(ModelRequest(LLAMA, quant="q4_k_m")).engine == "llamacpp"


# --- fit verdicts ----------------------------------------------------------------------------


def test_judge_memory_verdict_and_reason() -> None:
    v = judge("t::a", Requirements(vram_gib=30.0), gpu("l4", 24.0))
    assert not v.runs and v.did_not_fit
    assert v.reason == "needs 30.0 GiB, l4 has 24.0 GiB"
    assert v.available_gib == 24.0 and v.need == Need(30.0)
    ok = judge("t::a", Requirements(vram_gib=20.0), gpu("l4", 24.0))
    assert ok.runs and not ok.did_not_fit and ok.reason == "" and ok.available_gib == 24.0
    free = judge("t::a", Requirements(), gpu("l4", 24.0))
    assert free.runs and free.need is None and not free.did_not_fit


def test_per_gpu_need_is_judged_against_the_largest_gpu() -> None:
    two = multi("2xl4", gpu("l4", 24.0), gpu("l4", 24.0))
    assert available_gib(two, per_gpu=True) == 24.0
    assert available_gib(two, per_gpu=False) == 48.0
    assert judge("t", Requirements(vram_gib=30.0), two).runs
    v = judge("t", Requirements(vram_gib=30.0, per_gpu=True), two)
    assert not v.runs
    assert v.reason == "needs 30.0 GiB, 2xl4's largest GPU has 24.0 GiB"


def test_fit_reason_with_a_breakdown() -> None:
    need = Need(61.5, True, "gpt-oss-120b mxfp4 @32k: weights 60.0 + overhead 1.5", "model")
    assert fit_reason(need, gpu("l40s", 48.0), 48.0) == (
        "gpt-oss-120b mxfp4 @32k: weights 60.0 + overhead 1.5 = 61.5 GiB > l40s 48.0 GiB"
    )


def test_device_and_gpu_count_restrictions() -> None:
    v = judge("t", Requirements(devices=("h100", "a100")), gpu("l4", 24.0))
    assert not v.runs and not v.did_not_fit
    assert v.reason == "runs only on h100, a100; the selected device is l4"
    assert judge("t", Requirements(devices=("l4",)), gpu("l4", 24.0)).runs
    two = multi("2xl4", gpu("l4", 24.0), gpu("l4", 24.0))
    assert judge("t", Requirements(devices=("l4",)), two).runs  # a part's name counts
    v = judge("t", Requirements(gpus=2), gpu("l4", 24.0))
    assert v.reason == "needs 2 GPUs, 1 present on l4" and not v.runs
    assert judge("t", Requirements(gpus=2), two).runs
    assert not judge("t", Requirements(gpus=2), two, gpus_present=1).runs
    assert judge("t", Requirements(gpus=2), gpu("l4", 24.0), gpus_present=2).runs
    assert judge("t", Requirements(gpus=1), gpu("l4", 24.0)).runs


def test_need_for_a_model_marker_is_the_estimate() -> None:
    req = ModelRequest(LLAMA, engine="vllm")
    need = need_for("t", Requirements(model=req))
    e = estimate(req)
    assert need == Need(e.need_gib, True, e.breakdown, "model")
    assert need_for("t", Requirements(vram_gib=5.0, model=req)) == Need(5.0, False)
    assert need_for("t", Requirements()) is None
    with pytest.raises(GpubenchError, match=r"^t::x: marker @pytest.mark.model: "):
        need_for("t::x", Requirements(model=ModelRequest(LLAMA, concurrency=0)))


def test_a_local_gguf_needs_its_file_size_plus_overhead(tmp_path) -> None:
    f = tmp_path / "m.gguf"
    f.write_bytes(b"\0" * (GIB // 4))
    need = need_for("t", Requirements(model=ModelRequest(str(f))))
    assert need.gib == pytest.approx(0.25 + memory_for("llamacpp").overhead_gib)
    assert need.source == "gguf file" and need.per_gpu is False
    assert need.breakdown == (
        "m.gguf: weights 0.2 (file) + overhead 1.0, KV not estimated (no config.json)"
    )


def test_as_dict_in_full() -> None:
    vllm = memory_for("vllm")
    e = estimate(ModelRequest(LLAMA, engine="vllm", context="8k", concurrency=2))
    weights, kv = LLAMA_PARAMS * 2 / GIB, 2.0  # 8192 x 2 x 128 KiB
    need = (weights + kv + 1.5) / 0.9
    d = e.as_dict()
    config = d.pop("config")
    assert str(config).endswith("meta-llama--llama-3.1-8b-instruct.json")
    assert d == {
        "model": LLAMA,
        "quant": "bf16",
        "context": 8192,
        "concurrency": 2,
        "engine": "vllm",
        "kv_dtype": "bf16",
        "tensor_parallel": 1,
        "pipeline_parallel": 1,
        "data_parallel": 1,
        "split_mode": None,
        "tensor_split": None,
        "memory_unit": "GiB (2^30 bytes); the *_gb keys hold GiB",
        "params_b": 8.03,
        "active_params_b": round((LLAMA_PARAMS - 128256 * 4096) / 1e9, 3),  # less the embedding
        "weights_gb": round(weights, 3),
        "file_gb": round(weights, 3),
        "kv_cache_gb": 2.0,
        "state_gb": 0.0,
        "overhead_gb": 1.5,
        "total_gb": round(weights + kv + 1.5, 3),
        "need_gb": round(need, 3),
        "gpu_memory_utilization": 0.9,
        "one_gpu": True,
        "breakdown": f"{e.breakdown} = {need:.1f} GiB",
        "overhead_source": vllm.overhead_source,
    }


def test_mtp_layers_are_in_the_file_but_not_loaded() -> None:
    e = estimate(ModelRequest("zai-org/GLM-4.7-Flash", engine="llamacpp"))
    assert e.spec.groups.get("mtp", 0) > 0
    assert e.file_gib == pytest.approx(e.weights_gib + e.spec.groups["mtp"] * 2 / GIB)


def test_pipelines_run_in_process_and_have_no_kv_cache() -> None:
    for model in ("black-forest-labs/FLUX.2-klein-4B", "PekingU/rtdetr_v2_r50vd"):
        e = estimate(ModelRequest(model))
        assert e.engine == "transformers", model
        assert default_engine(e.spec, gguf=True) == "transformers"
        assert kvcache.elements_per_token(e.spec) == 0
        assert e.kv_gib == 0.0


def test_a_one_gpu_engine_is_judged_against_the_largest_gpu() -> None:
    e = estimate(ModelRequest(LLAMA, engine="vllm"))
    two = multi("2xsmall", gpu("s", 12.0), gpu("s", 18.0))
    assert e.available_gib(two) == 18.0
    assert not e.fits(two)  # ~18.8 GiB needed, 30 in all but 18 on the largest
    cpp = estimate(ModelRequest(LLAMA, engine="llamacpp"))
    assert cpp.available_gib(two) == 30.0 and cpp.fits(two)


def test_close_dtype_names_are_all_suggested() -> None:
    with pytest.raises(GpubenchError) as info:
        kvcache.kv_bytes_per_element("q_")
    assert str(info.value).startswith("unknown kv_dtype 'q_'. Did you mean q8_0, q5_1, q5_0? ")


# Equivalent mutants (scripts/mutation.py lists them):
# - Estimate.fits: `self.tensor_parallel > 1 and ...` -> `>= 1`: with tp 1 the second test,
#   max(gpu_count, 1) < 1, is never true.
# - parse_context: `if isinstance(value, str | float) else None` -> `or True`: every other type
#   but int (handled above) and bool (rejected above) prints as no number, so it is rejected
#   either way; only numpy integers would differ, and no caller passes those.


def test_verdicts_name_the_test_and_the_device() -> None:
    l4 = gpu("l4", 24.0)
    for req in (Requirements(), Requirements(vram_gib=1.0), Requirements(vram_gib=99.0),
                Requirements(devices=("h100",)), Requirements(gpus=4)):  # fmt: skip
        v = judge("t.py::x", req, l4)
        assert (v.nodeid, v.device) == ("t.py::x", "l4"), req
    with pytest.raises(GpubenchError, match=r"^t\.py::x: marker @pytest\.mark\.model: "):
        judge("t.py::x", Requirements(model=ModelRequest(LLAMA, concurrency=0)), l4)


def test_a_gguf_name_that_is_not_a_file_is_not_read_as_one(tmp_path) -> None:
    with pytest.raises(GpubenchError, match=r"marker @pytest\.mark\.model"):
        need_for("t", Requirements(model=ModelRequest(str(tmp_path / "missing.gguf"))))


# gguf_need: memory_for("llamacpp") -> "LLAMACPP" is equivalent: engine names are looked up
# case-insensitively.
