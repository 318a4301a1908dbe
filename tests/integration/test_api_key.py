"""A server started with an API key: every request the plugin sends carries it (live llama-server).

Before, the load client and the server-side tokenizer sent no key: llama-server first said
"no usable /tokenize endpoint", then answered 401 to every request.
"""

from __future__ import annotations

import httpx

KEY = "sk-gpubench-test-0123456789"


def test_an_api_key_reaches_load_tokenize_metrics_and_readiness(
    llm_server, serve_bench, tiny_model, llama_server_bin
) -> None:
    server = llm_server(
        engine="llamacpp",
        model=tiny_model.gguf_path,
        served_name=tiny_model.served_name,
        executable=str(llama_server_bin),
        options={"context": 2048, "parallel": 2, "threads": 1, "no_webui": True, "api_key": KEY},
    )  # readiness polled /v1/models with the key, or this would have timed out
    body = {"model": server.model, "prompt": "hello", "max_tokens": 2}
    refused = httpx.post(server.base_url + "/v1/completions", json=body, timeout=30)
    assert refused.status_code == 401  # the key is really required
    result = serve_bench(server, input_len=16, output_len=8, num_prompts=4, concurrency=2)
    assert result.failed == 0 and result.completed == 4  # load requests and /tokenize
    assert result["server_output_tokens"] >= 4 * 8  # /metrics scraped with the key too
