"""SGLang's server (``python -m sglang.launch_server``).

SGLang cannot be installed on the machines this project is tested on (it needs a CUDA build),
so this engine is tested against recorded responses only, never a live server.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from pytest_gpubench.engines.base import (
    PLACEMENT_KEYS,
    SPLIT_OPTIONS,
    BaseEngine,
    Launch,
    ModelRef,
    generic_flags,
    parallel_flags,
)
from pytest_gpubench.engines.memory import EngineMemory
from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.models import kvcache

ENV_PYTHON = "GPUBENCH_SGLANG_PYTHON"
MODULE = "sglang.launch_server"
#: SGLang's server arguments (docs.sglang.ai "Server Arguments": --tp-size, --pp-size, --dp-size)
PARALLEL = {
    "tensor_parallel_size": "--tp-size",
    "pipeline_parallel_size": "--pp-size",
    "data_parallel_size": "--dp-size",
}


class SGLang(BaseEngine):
    name = "sglang"
    default_port = 30000
    default_image = "lmsysorg/sglang:latest"
    gpu_image = "lmsysorg/sglang:latest"
    container_executable = ["python3", "-m", MODULE]  # noqa: RUF012
    health_path = "/health"  # 200 once the scheduler serves
    counter_names = {  # noqa: RUF012
        "prompt_tokens": "sglang:prompt_tokens_total",
        "generation_tokens": "sglang:generation_tokens_total",
        "requests_running": "sglang:num_running_reqs",
        "requests_waiting": "sglang:num_queue_reqs",
    }
    tokenize_style = "vllm"
    packages = ("sglang",)
    memory = EngineMemory(
        "sglang",
        utilization=0.88,
        one_gpu=True,
        mla_mode=kvcache.MLA_LATENT,
        default_kv_dtype="bf16",
        overhead_gib=1.5,
        overhead_source="taken equal to vLLM's (same PyTorch runtime); UNCONFIRMED for SGLang",
        utilization_source=(
            "SGLang mem_fraction_static ~0.88 on a single large GPU; UNCONFIRMED, SGLang "
            "picks it from the GPU's memory size"
        ),
    )

    def local_executable(self, explicit: str | Sequence[str] | None) -> list[str]:
        if explicit:
            return [explicit, "-m", MODULE] if isinstance(explicit, str) else list(explicit)
        python = os.environ.get(ENV_PYTHON)
        if not python and importlib.util.find_spec("sglang") is not None:
            python = sys.executable
        if python:
            return [python, "-m", MODULE]
        raise GpubenchError(
            "SGLang not found: install it in this environment, set GPUBENCH_SGLANG_PYTHON to a "
            "python that has it, pass executable=..., or use launcher='docker'"
        )

    def launch(self, model: ModelRef, host: str, port: int, options: Mapping[str, Any]) -> Launch:
        argv = ["--model-path", model.source, "--served-model-name", model.served_name]
        argv += ["--host", host, "--port", str(port), "--enable-metrics"]
        if options.get("context"):
            argv += ["--context-length", str(options["context"])]
        if options.get("api_key"):  # SGLang takes the key only as a flag; logs redact it
            argv += ["--api-key", str(options["api_key"])]
        if any(options.get(k) for k in SPLIT_OPTIONS):
            raise GpubenchError(
                "split_mode and tensor_split are llama.cpp options; SGLang takes "
                "tensor_parallel_size, pipeline_parallel_size and data_parallel_size"
            )
        argv += parallel_flags("SGLang", options, PARALLEL)
        argv += generic_flags(options, skip=(*PLACEMENT_KEYS, *SPLIT_OPTIONS))
        return Launch(argv)

    def version(self, client: httpx.Client) -> str | None:
        for path in ("/version", "/get_server_info"):
            try:
                resp = client.get(path)
                if resp.status_code == 200 and resp.json().get("version"):
                    return str(resp.json()["version"])
            except (httpx.HTTPError, ValueError, AttributeError):
                continue
        return None

    def response_timings(self, body: Mapping[str, Any]) -> dict[str, float]:
        """``meta_info`` of SGLang's native ``/generate`` response: prompt_tokens,
        completion_tokens, cached_tokens, e2e_latency (s)."""
        meta = body.get("meta_info")
        if not isinstance(meta, Mapping):
            return {}
        return {k: float(v) for k, v in meta.items() if isinstance(v, (int, float))}


ENGINE = SGLang()
