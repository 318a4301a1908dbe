"""Launch pieces that need no server: redaction, ports, options, usage errors."""

from __future__ import annotations

import socket

import pytest

from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.launch.ports import free_port, require_free
from pytest_gpubench.launch.secrets import Redactor


def test_redactor_masks_secret_env_values_and_key_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_abcdefghijk")
    monkeypatch.setenv("SOME_PATH", "/usr/local/not-a-secret")
    r = Redactor(extra=["sk-extra-123456"])
    assert r.redact("token=hf_abcdefghijk key sk-extra-123456 /usr/local/not-a-secret") == (
        "token=*** key *** /usr/local/not-a-secret"
    )
    assert r.argv(["serve", "--api-key", "plain-key-999", "--hf-token=zzz", "--port", "1"]) == [
        "serve", "--api-key", "***", "--hf-token=***", "--port", "1",
    ]  # fmt: skip


def test_free_port_is_free_and_a_taken_port_is_named() -> None:
    port = free_port()
    require_free("127.0.0.1", port)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        with pytest.raises(GpubenchError, match=f"port {port} on 127.0.0.1 is already in use"):
            require_free("127.0.0.1", port)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gpubench-launcher=kubernetes"], "*unknown launcher 'kubernetes': choose one of "
                                             "process, docker*"),
        (["--gpubench-server-timeout=soon"], "*server timeout 'soon' is not a positive number*"),
    ],
)  # fmt: skip
def test_bad_server_options_are_usage_errors(pytester: pytest.Pytester, args, message) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_server_options_are_documented(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        ["*--gpubench-server-url=VALUE*", "*--gpubench-launcher=VALUE*",
         "*--gpubench-server-timeout=VALUE*", "*--gpubench-log-dir=VALUE*"]
    )  # fmt: skip


def test_llm_server_mistakes_fail_with_one_line(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_no_engine(llm_server):
            llm_server(model="m.gguf")

        def test_no_model(llm_server):
            llm_server(engine="llamacpp")

        def test_bad_engine(llm_server):
            llm_server(engine="tgi", model="m")
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(
        [
            "*llm_server needs engine=: 'vllm', 'llamacpp', 'sglang' or 'ollama'",
            "*llm_server needs model=, or a @pytest.mark.model('id') on the test",
            "*unknown engine 'tgi': choose one of vllm, llamacpp, sglang, ollama",
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_docker_launcher_without_daemon_is_a_clear_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    pytester.makepyfile(
        """
        def test_docker(llm_server):
            llm_server(engine="llamacpp", model="m.gguf", launcher="docker", image="x")
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*cannot reach the Docker daemon*start dockerd or set DOCKER_HOST"]
    )


def test_nested_in_process_runs_keep_the_outer_runs_sigterm_handler(
    pytester: pytest.Pytester,
) -> None:
    import signal

    from pytest_gpubench.launch import cleanup

    before = signal.getsignal(signal.SIGTERM)
    pytester.makepyfile("def test_x(): pass")
    pytester.runpytest().assert_outcomes(passed=1)
    assert signal.getsignal(signal.SIGTERM) is before
    if before is cleanup._on_sigterm:  # the outer run installed it (SIGTERM was default)
        assert cleanup._depth >= 1


def test_a_nested_run_that_fails_to_configure_leaves_the_outer_runs_servers_alone(
    pytester: pytest.Pytester,
) -> None:
    """A nested in-process run stopped by a usage error never entered; it must not leave
    either, or the outer run looks finished and its servers are stopped by the next nested
    run's end (seen: the live llama.cpp tests after these ones, exit status 0)."""
    from pytest_gpubench.launch import cleanup

    before = cleanup._depth
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("--gpubench-launcher=kubernetes")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert cleanup._depth == before
