"""The model marker and `pytest-gpubench fit` as a user meets them, through real pytest runs."""

from __future__ import annotations

import json
import sys

import pytest

MODEL_TESTS = """
import pytest

@pytest.mark.model("openai/gpt-oss-120b", quant="mxfp4", context="32k")
def test_120b():
    pass

@pytest.mark.model("gpt-oss-20b", quant="gguf-mxfp4", context=8192, engine="llamacpp")
def test_20b():
    pass
"""


def test_model_marker_skips_with_the_breakdown(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(MODEL_TESTS)
    result = pytester.runpytest("--device=rtx4090", "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "*= gpubench: did not fit on rtx4090 =*",
            "test * needs * available * device * estimate",
            "*::test_120b * 70.4 GiB * 24.0 GiB * rtx4090 * gpt-oss-120b mxfp4 @32k on vllm: *",
            "SKIPPED * gpt-oss-120b mxfp4 @32k on vllm: (weights 60.8 + KV 1.1 + overhead 1.5)"
            " / 0.90 gpu_memory_utilization = 70.4 GiB > rtx4090 24.0 GiB",
        ]
    )
    assert pytester.runpytest("--device=h100").ret == pytest.ExitCode.OK


def test_vllm_needs_one_gpu_llamacpp_splits_layers(pytester: pytest.Pytester) -> None:
    """40 GB over two cards: llama.cpp fits a 33.7 GiB GLM-4.7-Flash Q8_0, vLLM does not."""
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.model("glm-4.7-flash", quant="q8_0", context="112k", kv_dtype="q8_0")
        @pytest.mark.parametrize("engine", ["llamacpp", "vllm"])
        def test_glm(engine):
            pass
        """
    )
    result = pytester.runpytest("--device=rtx4090+rtx5070ti", "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "SKIPPED * GLM-4.7-Flash q8_0 @112k on vllm on rtx4090+rtx5070ti: GPU 0 (rtx4090) "
            "needs * > 24.0 GiB"
        ]
    )


def test_needs_vram_overrides_the_model_estimate(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.needs_vram(20)
        @pytest.mark.model("openai/gpt-oss-120b")
        def test_measured():
            pass
        """
    )
    result = pytester.runpytest("--device=rtx4090", "-rs")
    result.assert_outcomes(passed=1)


def test_plan_shows_model_needs(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(MODEL_TESTS)
    result = pytester.runpytest("--device=rtx4090", "--gpubench-plan")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "plan for rtx4090 *: 1 of 2 benchmarks would run",
            "*::test_120b * 70.4 GiB * skip: gpt-oss-120b mxfp4 @32k on vllm: *",
            "*::test_20b * 14.0 GiB * run (gpt-oss-20b gguf-mxfp4 @8k on llamacpp: weights 12.8"
            " + KV 0.2 + overhead 1.0)",
        ]
    )


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        (
            '"gpt-oss-12b"',
            "*test_bad*marker @pytest.mark.model: unknown model 'gpt-oss-12b'. Did you mean "
            "openai/gpt-oss-120b, openai/gpt-oss-20b?*",
        ),
        (
            '"gpt-oss-20b", quant="q3_k"',
            "*test_bad*marker @pytest.mark.model: unknown quant 'q3_k'.* Known quants: awq, bf16,*",
        ),
        ('"gpt-oss-20b", context="lots"', "*context must be a positive number of tokens*"),
        ('"gpt-oss-20b", engine="tgi"', "*unknown engine 'tgi'. Known engines: llamacpp, *"),
        ('"gpt-oss-20b", kv_dtype="int3"', "*unknown kv_dtype 'int3'*Known KV cache dtypes*"),
        ('"gpt-oss-20b", batch=4', "*unknown keyword(s) batch*"),
    ],
)
def test_bad_model_markers_are_usage_errors_without_traceback(
    pytester: pytest.Pytester, marker: str, message: str
) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.model({marker})
        def test_bad():
            pass
        """
    )
    result = pytester.runpytest("--device=rtx4090")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_config_missing_a_field_names_the_field_and_the_file(pytester: pytest.Pytester) -> None:
    cfg = pytester.path / "mymodel" / "config.json"
    cfg.parent.mkdir()
    cfg.write_text(json.dumps({"model_type": "llama", "hidden_size": 64, "vocab_size": 100}))
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.model({str(cfg.parent)!r})
        def test_local():
            pass
        """
    )
    result = pytester.runpytest("--device=rtx4090")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: *test_local*{cfg}: field 'num_hidden_layers' is missing; the memory estimate*"]
    )


def test_local_config_and_hf_cache_folder_are_accepted(pytester: pytest.Pytester) -> None:
    """A Hugging Face cache folder (models--org--name/snapshots/REV/config.json) and a plain
    config.json path both work; refs/main picks the snapshot."""
    src = pytester.path / "src.json"
    tiny = {
        "model_type": "llama",
        "hidden_size": 256,
        "intermediate_size": 512,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 1000,
        "max_position_embeddings": 4096,
    }
    src.write_text(json.dumps(tiny))
    repo = pytester.path / "hub" / "models--acme--tiny"
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123" / "config.json").write_text(json.dumps(tiny))
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.model({str(src)!r}, context=1024)
        def test_file():
            pass

        @pytest.mark.model({str(repo)!r}, context=1024)
        def test_cache_folder():
            pass

        @pytest.mark.model("acme/tiny", context=1024)
        def test_cache_id():
            pass
        """
    )
    pytester._monkeypatch.setenv("HF_HUB_CACHE", str(pytester.path / "hub"))
    result = pytester.runpytest("--device=rtx4090", "--gpubench-plan")
    result.stdout.fnmatch_lines(
        [
            "*::test_file * run (src bf16 @1k on vllm: *",
            "*::test_cache_folder * run (acme/tiny bf16 @1k on vllm: *",
            "*::test_cache_id * run (acme/tiny bf16 @1k on vllm: *",
        ]
    )


def cli(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.run(sys.executable, "-m", "pytest_gpubench.cli", *args)


def test_fit_prints_breakdown_and_every_device(pytester: pytest.Pytester) -> None:
    result = cli(pytester, "fit", "openai/gpt-oss-120b", "--quant", "mxfp4", "--context", "32k")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "gpt-oss-120b mxfp4 @32k on vllm",
            "  params     116.83B total, 5.17B active per token",
            "  weights      60.8 GiB  MXFP4*",
            "  KV cache      1.1 GiB  bf16, 32k tokens x 1 sequence(s); layers: 18 full-attention,"
            " 18 sliding-window (128)",
            "  overhead      1.5 GiB  vLLM memory-profiling logs*",
            "  need         70.4 GiB  total / gpu_memory_utilization 0.90, on one GPU",
            "device * GPU * need GiB * available GiB * share * fits",
            "h100 * - * 70.4 * 80.0 * weights 60.8 + KV 1.1 + overhead 1.5 * yes",
            "rtx4090 * - * 70.4 * 24.0 * no",
            "rtx4090+rtx5070ti * 0 rtx4090 * 70.4 * 24.0 * no",  # vLLM: the largest GPU
        ]
    )


def test_fit_json_has_the_documented_keys(pytester: pytest.Pytester) -> None:
    result = cli(
        pytester, "fit", "glm-4.7-flash", "--quant", "q8_0", "--context", "114688",
        "--kv-dtype", "q8_0", "--engine", "llamacpp", "--device", "rtx4090+rtx5070ti", "--json",
    )  # fmt: skip
    assert result.ret == 0
    data = json.loads(result.stdout.str())
    for key in ("params_b", "active_params_b", "weights_gb", "kv_cache_gb", "overhead_gb"):
        assert isinstance(data[key], float)
    assert data["kv_cache_gb"] == pytest.approx(3146 / 1024, abs=0.01)  # llama.cpp's MLA latent
    assert data["total_gb"] == pytest.approx(
        data["weights_gb"] + data["kv_cache_gb"] + data["state_gb"] + data["overhead_gb"], abs=0.01
    )
    assert data["fits"] == {"rtx4090+rtx5070ti": True}


def test_fit_matrix_lists_catalog_by_devices(pytester: pytest.Pytester) -> None:
    result = cli(pytester, "fit", "--matrix")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "what runs where: *",
            "model * quant * engine * need GiB * 2xh200 * rtx4090 * spark",
            "gpt-oss-120b * mxfp4 * vllm * 69.3 * yes * - * yes",
            "Llama-3.3-70B-Instruct * q4_k_m * llamacpp * 41.8 * yes * - * yes",
        ]
    )
    matrix = json.loads(cli(pytester, "fit", "--matrix", "--json").stdout.str())
    assert {row["model"] for row in matrix} >= {"openai/gpt-oss-20b", "PekingU/rtdetr_v2_r50vd"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("fit", "llama-3.3-70"), "pytest-gpubench: error: unknown model 'llama-3.3-70'. Did you "
         "mean meta-llama/Llama-3.3-70B-Instruct*"),
        (("fit", "gpt-oss-20b", "--quant", "q3"), "pytest-gpubench: error: unknown quant 'q3'.*"),
        (("fit", "gpt-oss-20b", "--device", "rtx9090"), "*unknown device 'rtx9090'*"),
        (("fit",), "pytest-gpubench: error: fit needs a MODEL*"),
    ],
)  # fmt: skip
def test_fit_errors_are_one_line(pytester: pytest.Pytester, args, message) -> None:
    result = cli(pytester, *args)
    assert result.ret == 2
    result.stderr.fnmatch_lines([message])
    assert "Traceback" not in result.stderr.str()


def test_a_local_gguf_file_needs_its_size(pytester: pytest.Pytester) -> None:
    """A .gguf has no config.json: the need is the file plus llama.cpp's overhead, and the
    reason says the KV cache was not estimated (found when the server tests used a GGUF)."""
    gguf = pytester.path / "tiny.gguf"
    gguf.write_bytes(b"GGUF" + bytes(4096))
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.model({str(gguf)!r})
        def test_served():
            pass
        """
    )
    pytester.runpytest("--device=rtx4090").assert_outcomes(passed=1)
    plan = pytester.runpytest("--device=rtx4090", "--gpubench-plan")
    plan.stdout.fnmatch_lines(["*::test_served * 1.0 GiB * run*"])


def test_config_with_zero_attention_heads_names_the_field(pytester: pytest.Pytester) -> None:
    """0 heads was a ZeroDivisionError (hidden_size // heads) from inside the estimate."""
    cfg = pytester.path / "mymodel" / "config.json"
    cfg.parent.mkdir()
    fields = {"model_type": "llama", "hidden_size": 64, "vocab_size": 100}
    fields.update(num_hidden_layers=2, num_attention_heads=0, intermediate_size=128)
    cfg.write_text(json.dumps(fields))
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.model({str(cfg.parent)!r})
        def test_local():
            pass
        """
    )
    result = pytester.runpytest("--device=rtx4090")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: *test_local*{cfg}: field 'num_attention_heads' must be a whole number >= 1, "
         "got 0;*"]
    )  # fmt: skip
    assert "Traceback" not in result.stderr.str() + result.stdout.str()
