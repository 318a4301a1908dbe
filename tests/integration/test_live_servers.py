"""Done-means of the server fixtures: a user's benchmark file gets live vLLM and llama.cpp
servers (process- and Docker-launched) from ``llm_server``, each answering a streamed
completion, and reads their server-side numbers. Also: external servers, secrets."""

from __future__ import annotations

import json
import os
from pathlib import Path

import psutil
import pytest

from plumbing.leftovers import assert_nothing_left, unique_name

STREAM_HELPER = """
import json
import os
import httpx

def stream_completion(server, max_tokens=12):
    body = {"model": server.model, "prompt": "The quick brown fox", "max_tokens": max_tokens,
            "stream": True, "ignore_eos": True, "temperature": 0}
    texts, last = [], None
    with httpx.stream("POST", server.openai_base_url + "/completions", json=body,
                      headers=server.headers, timeout=120) as resp:
        assert resp.status_code == 200, resp.read()
        for line in resp.iter_lines():
            if not line.startswith("data: "):
                continue
            if line == "data: [DONE]":
                return texts, last, True
            last = json.loads(line[6:])
            texts += [c.get("text") or "" for c in last["choices"]]
    return texts, last, False
"""


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    return unique_name(request)


PROCESS_TESTS = """
import pytest
from conftest import stream_completion

GGUF = {gguf!r}
HF = {hf!r}
NAME = {name!r}

@pytest.mark.model(GGUF, context=1024)
def test_llamacpp_process_from_model_marker(llm_server):
    server = llm_server(engine="llamacpp", served_name=NAME + "-proc")
    texts, last, done = stream_completion(server)
    assert done and len(texts) >= 12 and "".join(texts)
    assert server.launcher == "process" and server.engine.name == "llamacpp"
    assert server.base_url.startswith("http://127.0.0.1:") and server.version
    assert server.response_timings(last)["predicted_n"] == 12
    assert server.counters()["generation_tokens"] >= 12
    assert "--ctx-size 1024" in server.command

def test_vllm_process(llm_server):
    server = llm_server(engine="vllm", model=HF, served_name=NAME + "-vllm",
                        options={{"context": 1024, "dtype": "bfloat16"}},
                        env={{"VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1"}})
    texts, last, done = stream_completion(server)
    # vLLM merges deltas its API server picks up later than the engine made them (a busy
    # machine): up to 12 chunks for the 12 tokens; the server's counter has the token count
    assert done and 1 <= len(texts) <= 12 and "".join(texts)
    assert server.engine.name == "vllm" and server.version
    counters = server.counters()
    assert counters["generation_tokens"] >= 12 and counters["prompt_tokens"] >= 1
    assert any(k.startswith("vllm:") for k in server.server_metrics())
"""

DOCKER_TEST = """
from conftest import stream_completion

def test_llamacpp_docker(llm_server):
    server = llm_server(engine="llamacpp", model={gguf!r}, served_name={name!r} + "-docker",
                        launcher="docker", image={image!r})
    texts, last, done = stream_completion(server)
    assert done and "".join(texts)
    assert server.launcher == "docker"
    assert ":ro" in server.command and "-p 127.0.0.1:" in server.command
    assert server.counters()["generation_tokens"] >= 12
"""


def test_llm_server_serves_vllm_and_llamacpp_as_processes(
    pytester: pytest.Pytester, tiny_model, llama_server_bin, vllm_python, name
) -> None:
    """Process launcher only: needs llama-server and vLLM-CPU, not Docker."""
    pytester.makeconftest(STREAM_HELPER.replace("import httpx", "import httpx, pytest"))
    pytester.makepyfile(
        test_serving=PROCESS_TESTS.format(
            gguf=str(tiny_model.gguf_path), hf=str(tiny_model.hf_dir), name=name
        )
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:randomly", "-v", "--gpubench-server-timeout=400", timeout=900
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*- gpubench servers -*",
            f"llamacpp '{name}-proc' (process) http://127.0.0.1:* ready in * log: *",
            f"vllm '{name}-vllm' (process) http://127.0.0.1:* version 0.32.0, ready in * log: *",
        ]
    )
    assert_nothing_left(name)


def test_llm_server_serves_llamacpp_in_docker(
    pytester: pytest.Pytester, tiny_model, llama_image, name
) -> None:
    """Docker launcher: the llama-server image built from the provisioned binary."""
    pytester.makeconftest(STREAM_HELPER)
    pytester.makepyfile(
        test_serving=DOCKER_TEST.format(
            gguf=str(tiny_model.gguf_path), name=name, image=llama_image
        )
    )
    result = pytester.runpytest_subprocess("-v", "--gpubench-server-timeout=400", timeout=900)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*- gpubench servers -*",
            f"llamacpp '{name}-docker' (docker) http://127.0.0.1:* ready in * log: *",
        ]
    )
    assert_nothing_left(name, _docker_client())


def _docker_client():
    import docker

    return docker.from_env()


def test_external_server_is_used_and_never_stopped(
    pytester: pytest.Pytester, tiny_model, llama_server_bin, name, tmp_path: Path
) -> None:
    from pytest_gpubench.launch.pool import ServerPool

    pool = ServerPool(log_dir=tmp_path)
    server = pool.get("llamacpp", tiny_model.gguf_path, served_name=name)
    try:
        pytester.makepyfile(
            f"""
            def test_external(llm_server):
                server = llm_server(engine="llamacpp")
                assert server.launcher == "external" and server.model == {name!r}
                assert server.base_url == {server.base_url!r} and server.log_path is None
            """
        )
        result = pytester.runpytest_subprocess(f"--gpubench-server-url={server.base_url}/v1")
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines([f"llamacpp '{name}' (external) * no log (not started here)"])
        assert server.alive(), "the plugin stopped a server it did not start"
    finally:
        pool.stop_all()
    assert_nothing_left(name)


def test_secrets_reach_the_server_environment_only(
    pytester: pytest.Pytester, tiny_model, llama_server_bin, name, monkeypatch
) -> None:
    token, key = "hf_plantedTokenZ9y8x7w6", "sk-planted-api-key-5v4u3t"
    monkeypatch.setenv("HF_TOKEN", token)
    pytester.makeconftest(STREAM_HELPER)
    pytester.makepyfile(
        f"""
        import json, pathlib
        import httpx, psutil
        from conftest import stream_completion

        def test_with_secrets(llm_server, record_property):
            server = llm_server(engine="llamacpp", model={str(tiny_model.gguf_path)!r},
                                served_name={name!r}, options={{"api_key": {key!r}}})
            proc = psutil.Process(server.handle.pid)
            assert proc.environ()["HF_TOKEN"] == {token!r}        # reached the server...
            assert proc.environ()["LLAMA_API_KEY"] == {key!r}
            assert {key!r} not in " ".join(proc.cmdline())       # ...but not its command line
            denied = httpx.get(server.openai_base_url + "/models")
            assert denied.status_code == 401                     # the key is really in force
            texts, last, done = stream_completion(server)
            assert done
            record_property("server", server.describe())
            pathlib.Path("result.json").write_text(json.dumps(server.describe()))
            print(repr(server), server.command)
        """
    )
    result = pytester.runpytest_subprocess("-s", "--junitxml=junit.xml")
    result.assert_outcomes(passed=1)
    written = [result.stdout.str(), (pytester.path / "junit.xml").read_text()]
    written += [p.read_text(errors="replace") for p in pytester.path.rglob("*") if p.is_file()
                and p.suffix in (".log", ".json", ".xml")]  # fmt: skip
    logs = list(pytester.path.rglob("*.log"))
    assert logs, "the server log was not kept"
    for text in written:
        assert token not in text and key not in text
    assert "LLAMA_API_KEY" in logs[0].read_text()  # the name is logged, the value never
    assert json.loads((pytester.path / "result.json").read_text())["engine"] == "llamacpp"
    assert_nothing_left(name)
    leaked = [p for p in psutil.process_iter(["environ"]) if token in str(p.info["environ"])]
    assert [p.pid for p in leaked if p.pid != os.getpid()] == []
