"""Placement parsers on real recorded logs, and on lines written from source or API docs.

``llamacpp_startup.log`` and ``vllm_startup.log`` were recorded unedited from live servers here
(scripts/record_engine_responses.py). A CUDA build of llama.cpp, vLLM's GPU build and Ollama do
not run here: their inputs are written by hand from llama.cpp's and vLLM's source format strings
(``*_from_source_*``) and from Ollama's API documentation (``*_from_docs_*``); see
recorded/README.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_gpubench.engines import get_engine
from pytest_gpubench.engines.llamacpp import placement_from_log as from_llamacpp_log
from pytest_gpubench.engines.ollama import placement_from_ps as from_ollama_ps
from pytest_gpubench.engines.placement import Placement
from pytest_gpubench.engines.vllm import placement_from_log as from_vllm_log

RECORDED = Path(__file__).parent / "recorded"


def recorded(name: str) -> str:
    """A log captured unedited from a live server here."""
    assert "_from_" not in name, name
    return (RECORDED / name).read_text()


def from_source(name: str) -> str:
    """Lines written by hand from the engine's source format strings (no such build here)."""
    assert "_from_source_" in name, name
    return (RECORDED / name).read_text()


def test_llamacpp_cpu_build_recorded_log_is_cpu_only_not_offloaded() -> None:
    p = get_engine("llamacpp").placement(recorded("llamacpp_startup.log"), None)
    assert p is not None and p.source == "llama.cpp log"
    assert p.gpu_used is False and not p.offloaded
    assert (p.gpu_layers, p.total_layers) == (0, 3)  # 2 layers + the output layer
    assert p.cpu_model_mib == pytest.approx(3.13)
    assert p.cpu_kv_mib == pytest.approx(2.00)
    assert p.cpu_compute_mib == pytest.approx(3.27)
    assert p.engine_gib == pytest.approx((3.13 + 2.00 + 3.27 + 0.03) / 1024, abs=1e-4)
    assert p.describe() == "CPU only (no GPU used)"
    assert p.as_dict()["offloaded"] is False


def test_llamacpp_cuda_partial_offload_from_source_lines() -> None:
    p = from_llamacpp_log(from_source("llamacpp_from_source_cuda_ngl20.log"))
    assert p is not None and p.offloaded
    assert (p.gpu_layers, p.total_layers, p.cpu_layers) == (20, 33, 13)
    assert p.gpu_model_mib == pytest.approx(2839.58)
    assert p.cpu_model_mib == pytest.approx(2127.53)
    assert (p.gpu_kv_mib, p.cpu_kv_mib) == (pytest.approx(1216.0), pytest.approx(832.0))
    assert p.kv_on_cpu and p.weights_on_cpu
    assert p.gpu_compute_mib == pytest.approx(258.5)
    assert p.cpu_compute_mib == pytest.approx(40.01)  # CUDA_Host is host memory
    assert p.engine_gib == pytest.approx((2839.58 + 1216.0 + 258.5) / 1024, abs=1e-3)
    assert p.describe() == ("20 of 33 layers on the GPU, 13 on the CPU; KV cache partly on the CPU")


def test_llamacpp_cuda_full_offload_is_not_offloaded_despite_cpu_mapped_embeddings() -> None:
    p = from_llamacpp_log(from_source("llamacpp_from_source_cuda_ngl99.log"))
    assert p is not None and p.gpu_used and not p.offloaded
    assert (p.gpu_layers, p.total_layers) == (33, 33)
    assert p.cpu_model_mib and p.cpu_model_mib > 0  # token embeddings stay in CPU_Mapped
    assert p.cpu_kv_mib == 0 and not p.kv_on_cpu
    assert p.describe() == "all 33 layers on the GPU"


def test_llamacpp_no_kv_offload_flags_the_kv_cache_on_the_cpu() -> None:
    p = from_llamacpp_log(from_source("llamacpp_from_source_cuda_nokvo.log"))
    assert p is not None and p.offloaded and p.kv_on_cpu and not p.weights_on_cpu
    assert p.gpu_kv_mib == 0 and p.cpu_kv_mib == pytest.approx(2048.0)
    assert p.describe() == "all 33 layers on the GPU; KV cache on the CPU"


def test_llamacpp_parser_tolerates_missing_and_old_lines() -> None:
    assert from_llamacpp_log("") is None
    assert from_llamacpp_log("srv  llama_server: model loaded\n") is None
    old = (
        "llm_load_tensors: offloaded 10/41 layers to GPU\n"
        "llama_new_context_with_model: KV self size  = 512.00 MiB\n"
    )
    p = from_llamacpp_log(old)
    assert p is not None and (p.gpu_layers, p.total_layers) == (10, 41) and p.offloaded
    assert p.gpu_kv_mib == 512.0


def test_llamacpp_restarted_server_log_uses_the_last_load() -> None:
    partial = from_source("llamacpp_from_source_cuda_ngl20.log")
    full = from_source("llamacpp_from_source_cuda_ngl99.log")
    p = from_llamacpp_log(partial + "# gpubench: restarted\n" + full)
    assert p is not None and (p.gpu_layers, p.offloaded) == (33, False)
    assert p.gpu_model_mib == pytest.approx(4685.30)


def test_ollama_ps_from_documented_response() -> None:
    """Ollama cannot run here: ``/api/ps`` as its docs/api.md documents it (the second model
    is a made-up split; recorded/README.md)."""
    payload = json.loads((RECORDED / "ollama_from_docs_ps.json").read_text())
    full = from_ollama_ps(payload, "mistral")
    assert full is not None and full.gpu_used and not full.offloaded
    assert full.cpu_model_mib == 0 and full.engine_gib == pytest.approx(
        5137025024 / 2**30, abs=1e-4
    )
    split = from_ollama_ps(payload, "glm-4.7-flash:q8_0")
    assert split is not None and split.offloaded and split.weights_on_cpu
    assert split.gpu_model_mib == pytest.approx(35840.0)
    assert split.cpu_model_mib == pytest.approx(5120.0)
    assert split.describe() == "88% of 40.0 GiB on the GPU, 5.0 GiB on the CPU"
    assert from_ollama_ps(payload, "absent") is None
    assert from_ollama_ps({"models": [{"name": "x:latest"}]}, "x") is None
    assert from_ollama_ps({}, None) is None


def test_ollama_engine_asks_api_ps_documented_response() -> None:
    """Through the engine, against an httpx.MockTransport replaying the documented body."""
    import httpx

    body = (RECORDED / "ollama_from_docs_ps.json").read_text()

    class Server:
        model = "glm-4.7-flash:q8_0"

        def client(self) -> httpx.Client:
            def handler(request: httpx.Request) -> httpx.Response:
                assert request.url.path == "/api/ps"
                return httpx.Response(200, text=body)

            return httpx.Client(base_url="http://ollama", transport=httpx.MockTransport(handler))

    p = get_engine("ollama").placement("", Server())
    assert p is not None and p.offloaded


def test_vllm_cpu_recorded_log() -> None:
    p = get_engine("vllm").placement(recorded("vllm_startup.log"), None)
    assert p is not None and p.source == "vllm log"
    assert p.gpu_used is False and not p.offloaded
    assert p.kv_tokens == 2_097_152 and p.max_concurrency == 2048.0
    assert p.cpu_kv_mib == pytest.approx(1024.0)  # VLLM_CPU_KVCACHE_SPACE=1


def test_vllm_gpu_offload_settings_from_source_lines() -> None:
    p = from_vllm_log(from_source("vllm_from_source_gpu_offload.log"))
    assert p is not None and p.gpu_used and p.offloaded
    assert (p.cpu_offload_gib, p.kv_offload_gib) == (4.0, 8.0)
    assert p.weights_on_cpu and p.kv_on_cpu
    assert p.kv_tokens == 889_168 and p.max_concurrency == pytest.approx(54.27)
    assert p.gpu_kv_mib == pytest.approx(108.54 * 1024)
    assert p.engine_gib == pytest.approx(10.96 + 108.54)
    assert p.describe().startswith(
        "4 GiB of weights offloaded to the CPU; KV cache partly on the CPU"
    )


def test_vllm_parser_tolerates_missing_lines() -> None:
    assert from_vllm_log("") is None
    p = from_vllm_log("INFO [gpu_worker.py:760] Available KV cache memory: 20.5 GiB\n")
    assert p is not None and p.gpu_used and not p.offloaded and p.gpu_kv_mib == 20.5 * 1024
    old = "INFO 05-01 # GPU blocks: 27153, # CPU blocks: 2048\n"  # CPU blocks: swap, not offload
    q = from_vllm_log(old)
    assert q is not None and q.gpu_used and not q.offloaded


def test_engines_without_placement_knowledge_say_none() -> None:
    assert get_engine("sglang").placement("anything", None) is None


def test_placement_dict_is_json_ready_and_measured_figure_kept() -> None:
    p = Placement("x", gpu_layers=44, total_layers=49, gpu_used=True, weights_on_cpu=True)
    q = p.with_measured(30.12345, "nvml")
    data = json.loads(json.dumps(q.as_dict()))
    assert data["offloaded"] is True and data["cpu_layers"] == 5
    assert (data["measured_gib"], data["measured_source"]) == (30.123, "nvml")
    assert data["describe"] == "44 of 49 layers on the GPU, 5 on the CPU"
    assert p.with_measured(None, "nvml") is p
