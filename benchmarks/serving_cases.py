"""The seeds' serving benchmarks as data: which model, on which engine, from which weights.

Sources: the gpu-benchmarking seed (vLLM runs with ``vllm bench serve``: 100 prompts of ~1000
input / ~300 output tokens +-30%, 10 warm-ups, concurrency 10, ignore-eos, seed 42, NGC vLLM
container; VLM runs with 0 and 1 random image per request from 512x512, 720x1280,
1024x1024, 1080x1920; llama.cpp runs sequential, single user) and the DGX Spark write-ups
(gpt-oss-120b, Llama-3.3-70B, GLM-4.7-Flash on llama.cpp/ollama).

``weights`` is what a user downloads: a Hugging Face repo (vLLM loads the folder) or a repo
plus a GGUF file name (llama.cpp). ``context`` is the server's context length the seeds used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pytest_gpubench.serving.images import SEED_BUCKETS


@dataclass(frozen=True)
class Case:
    model: str  # catalog id for the model(...) marker and the fit estimate (the base model)
    engine: str  # "vllm" or "llamacpp"
    quant: str
    context: int
    repo: str  # Hugging Face repo holding the weights
    file: str | None = None  # GGUF file within the repo (llama.cpp)
    server_options: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.model.split('/')[-1]}-{self.quant}-{self.engine}"


LLM_CASES: tuple[Case, ...] = (
    Case("openai/gpt-oss-20b", "vllm", "mxfp4", 8000, "openai/gpt-oss-20b"),
    Case(
        "openai/gpt-oss-20b",
        "llamacpp",
        "Q4_K_XL",
        8192,
        "unsloth/gpt-oss-20b-GGUF",
        "gpt-oss-20b-UD-Q4_K_XL.gguf",
    ),
    Case("openai/gpt-oss-120b", "vllm", "mxfp4", 32000, "openai/gpt-oss-120b"),
    Case(
        "openai/gpt-oss-120b",
        "llamacpp",
        "mxfp4",
        32768,
        "ggml-org/gpt-oss-120b-GGUF",
        "gpt-oss-120b-mxfp4-00001-of-00003.gguf",
    ),
    Case(
        "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16",
        "vllm",
        "fp8",
        32000,
        "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-FP8",
    ),
    Case(
        "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16",
        "llamacpp",
        "Q8_K_XL",
        32768,
        "unsloth/Nemotron-3-Nano-30B-A3B-GGUF",
        "Nemotron-3-Nano-30B-A3B-UD-Q8_K_XL.gguf",
    ),
    Case(
        "zai-org/GLM-4.7-Flash",
        "llamacpp",
        "Q4_K_M",
        65536,
        "unsloth/GLM-4.7-Flash-GGUF",
        "GLM-4.7-Flash-Q4_K_M.gguf",
    ),
    Case(
        "meta-llama/Llama-3.3-70B-Instruct",
        "llamacpp",
        "Q4_K_M",
        32768,
        "unsloth/Llama-3.3-70B-Instruct-GGUF",
        "Llama-3.3-70B-Instruct-Q4_K_M.gguf",
    ),
    Case(
        "meta-llama/Llama-3.3-70B-Instruct",
        "vllm",
        "nvfp4",
        8192,
        "RedHatAI/Llama-3.3-70B-Instruct-NVFP4",
    ),
)

VLM_CASES: tuple[Case, ...] = (
    Case("Qwen/Qwen3-VL-8B-Instruct", "vllm", "fp8", 8000, "Qwen/Qwen3-VL-8B-Instruct-FP8"),
    Case(
        "Qwen/Qwen3-VL-30B-A3B-Instruct", "vllm", "fp8", 32000, "Qwen/Qwen3-VL-30B-A3B-Instruct-FP8"
    ),
    Case("Qwen/Qwen3-VL-32B-Instruct", "vllm", "fp8", 32000, "Qwen/Qwen3-VL-32B-Instruct-FP8"),
    Case(
        "Qwen/Qwen3-VL-8B-Instruct",
        "llamacpp",
        "Q4_K_XL",
        8192,
        "unsloth/Qwen3-VL-8B-Instruct-GGUF",
        "Qwen3-VL-8B-Instruct-UD-Q4_K_XL.gguf",
        {"mmproj": "mmproj-F16.gguf"},
    ),
)


@dataclass(frozen=True)
class Scenario:
    name: str
    concurrency: int
    workload: dict[str, Any]


# The seeds' vllm bench serve run, and a single user (the seeds' llama.cpp scripts ran one
# request at a time): adaptive, so it stops once output tok/s is known to +-2%, at most after
# the seeds' 100 prompts.
SEED_WORKLOAD = {
    "input_len": 1000,
    "output_len": 300,
    "range_ratio": 0.3,
    "endpoint": "chat",
    "seed": 42,
}
SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "concurrency10", 10, {**SEED_WORKLOAD, "num_prompts": 100, "concurrency": 10, "warmups": 10}
    ),
    Scenario(
        "single_user",
        1,
        {**SEED_WORKLOAD, "concurrency": 1, "warmups": 2, "precision": 0.02, "max_requests": 100},
    ),
)
IMAGE_COUNTS = (0, 1)
IMAGE_BUCKETS = SEED_BUCKETS


# Sweeps and capacity searches of the same cases (serve_bench.sweep / .capacity): the seeds'
# request shape at concurrency 1..32, stopping once throughput stops rising; the capacity is
# the most concurrent users whose p90 meets a chat user's SLO. The SLO is our choice, not the
# seeds': a first token within 2 s and 50 ms per token after it (20 tok/s, faster than
# people read).
SWEEP_CONCURRENCY = (1, 2, 4, 8, 16, 32)
SWEEP_WORKLOAD = {**SEED_WORKLOAD, "prompts_per_user": 4}
CAPACITY_SLO = {"ttft_ms": 2000.0, "tpot_ms": 50.0}
CAPACITY_MAX = 64

# The CPU-sized sweep in the main job: the tiny Llama GGUF (pytest_gpubench/testing/
# tiny_models.py) on llama-server with 4 slots and one thread, so a laptop draws a real curve
# (throughput rising to the slots' worth, then flat, as latency climbs).
TINY_SWEEP_CONCURRENCY = (1, 2, 4, 8)
TINY_SWEEP_WORKLOAD = {
    "input_len": 64,
    "output_len": 128,
    "endpoint": "completions",
    "seed": 42,
    "prompts_per_user": 4,
}
TINY_SERVER_OPTIONS = {"context": 4096, "parallel": 4, "threads": 1, "no_webui": True}
