"""The streaming client: SSE parsed after the stream, failures counted, never raised."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest

from pytest_gpubench.serving.client import (
    RequestResult,
    RequestSpec,
    StreamingClient,
    parse_stream,
)
from pytest_gpubench.testing.stub_server import WRONG_SHAPES

SPEC = RequestSpec("completions", {"prompt": "w1 w2 w3"}, max_tokens=8, input_tokens=3)


def event(obj) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def tok(text: str) -> bytes:
    return event({"choices": [{"index": 0, "text": text, "finish_reason": None}]})


def parsed(reads: list[tuple[float, bytes]]) -> RequestResult:
    result = RequestResult(SPEC, start=1.0)
    parse_stream(reads, result)
    return result


def test_events_split_across_reads_get_the_time_of_the_read_that_completed_them() -> None:
    first, second = tok("a"), tok("b")
    reads = [
        (1.5, first[:7]),  # half an event: no token yet
        (2.0, first[7:] + second[:3]),
        (3.0, second[3:]),
        (3.5, event({"choices": [{"index": 0, "text": "", "finish_reason": "length"}]})),
        (3.6, event({"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 2}})),
        (3.7, b"data: [DONE]\n\n"),
    ]
    r = parsed(reads)
    assert r.ok and r.error == ""
    assert r.ttft == pytest.approx(1.0)
    assert r.token_times == [2.0, 3.0]
    assert r.itl == [pytest.approx(1.0)]
    assert r.e2el == pytest.approx(2.5)  # the finish chunk ends the request, not usage
    assert (r.usage_prompt_tokens, r.usage_completion_tokens) == (4, 2)
    assert r.tpot == pytest.approx(2.5 - 1.0)
    assert r.finish_reason == "length"


def test_role_only_and_comment_chunks_do_not_count_as_the_first_token() -> None:
    reads = [
        (1.1, b": ping\n\n"),
        (1.2, event({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})),
        (1.7, event({"choices": [{"index": 0, "delta": {"content": "Hi"}}]})),
        (1.9, event({"choices": [{"index": 0, "delta": {"reasoning_content": "hm"}}]})),
    ]
    r = parsed(reads)
    assert r.ttft == pytest.approx(0.7)
    assert r.client_output_chunks == 2
    assert r.usage_completion_tokens is None and r.output_tokens == 2  # client count fallback


def test_crlf_framing_is_understood() -> None:
    r = parsed([(1.4, tok("x").replace(b"\n", b"\r\n")), (1.5, b"data: [DONE]\r\n\r\n")])
    assert r.ok and r.token_times == [1.4]


@pytest.mark.parametrize(
    ("reads", "message"),
    [
        ([(1.1, tok("a")), (1.2, b'data: {"choices": [\n\n')], "malformed SSE event"),
        ([(1.1, event({"error": {"message": "out of memory"}}))], "server error in stream: out of"),
        ([(1.1, b"data: [DONE]\n\n")], "the stream ended without generating any text"),
        ([], "empty response"),
    ],
)
def test_bad_streams_are_failures_with_a_message(reads, message) -> None:
    r = parsed(reads)
    assert not r.ok
    assert r.error.startswith(message)


def send(url: str, spec: RequestSpec = SPEC, **kw) -> RequestResult:
    async def go() -> RequestResult:
        client = StreamingClient(url, "stub-model", **kw)
        try:
            return await client.send(spec)
        finally:
            await client.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
@pytest.mark.parametrize("endpoint", ["completions", "chat"])
def test_a_real_stream_is_timed_and_counted(stub_server, transport, endpoint) -> None:
    body = (
        {"prompt": "w1 w2 w3"}
        if endpoint == "completions"
        else {"messages": [{"role": "user", "content": "w1 w2 w3"}]}
    )
    r = send(stub_server.base_url, RequestSpec(endpoint, body, 20), transport=transport)
    assert r.ok, r.error
    assert r.usage_completion_tokens == 20 == r.client_output_chunks
    assert r.usage_prompt_tokens == (3 if endpoint == "completions" else 6)
    assert 0 < r.ttft <= r.e2el
    assert len(r.itl) == 19 and all(g >= 0 for g in r.itl)
    assert r.server_timings["predicted_n"] == 20


def test_http_errors_are_counted_with_status_and_body(start_stub) -> None:
    stub = start_stub("--fail-every", "1")
    r = send(stub.base_url)
    assert not r.ok
    assert r.error.startswith("HTTP 500:") and "injected failure" in r.error


def test_a_refused_connection_is_a_failed_request_not_an_exception() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = send(f"http://127.0.0.1:{port}")
    assert not r.ok and "Connect" in r.error


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_a_request_past_its_timeout_is_a_failure(start_stub, transport) -> None:
    stub = start_stub("--ttft-ms", "2000")
    r = send(stub.base_url, timeout_s=0.3, transport=transport)
    assert not r.ok and r.error == "timed out after 0.3 s"


# Well-formed JSON of the wrong shape. The stub server (a stub: real engines cannot be made to
# send these on demand) serves the same shapes for the end-to-end tests below.
def _wrong_stream(shape) -> list[tuple[float, bytes]]:
    finish = event({"choices": [{"index": 0, "text": "", "finish_reason": "length"}]})
    usage = event({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}})
    wrong = b"data: " + json.dumps(shape).encode() + b"\n\n"
    if isinstance(shape, dict) and "usage" in shape:
        return [(1.1, tok("a")), (1.2, tok("b")), (1.3, finish), (1.4, wrong)]
    return [(1.1, tok("a")), (1.2, wrong), (1.3, tok("b")), (1.4, finish), (1.5, usage)]


@pytest.mark.parametrize("name", sorted(WRONG_SHAPES))
def test_json_of_the_wrong_shape_is_a_failed_request(name) -> None:
    r = parsed(_wrong_stream(WRONG_SHAPES[name]))
    assert not r.ok
    assert r.error.startswith("malformed SSE event ("), r.error


@pytest.mark.parametrize(
    ("shape", "problem"),
    [
        ({"choices": "abc"}, "'choices' is not a list"),
        ({"choices": [None]}, "'choices[0]' is not an object"),
        ({"choices": [{"delta": "tok"}]}, "'delta' is not an object"),
        ({"choices": [{"delta": {"content": ["x"]}}]}, "the generated text is not a string"),
        ({"choices": [{"text": "a", "finish_reason": 1}]}, "'finish_reason' is not a string"),
        ({"usage": "lots"}, "'usage' is not an object"),
        ({"usage": {"completion_tokens": "9"}}, "usage.completion_tokens is not a whole number"),
        ({"usage": {"prompt_tokens": -1}}, "usage.prompt_tokens is not a whole number"),
        ({"usage": {"prompt_tokens": True}}, "usage.prompt_tokens is not a whole number"),
        (
            {"usage": {"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": 2.5}}},
            "usage.prompt_tokens_details.cached_tokens is not a whole number",
        ),
    ],
)
def test_the_message_says_what_is_wrong(shape, problem) -> None:
    r = parsed([(1.1, tok("a")), (1.2, event(shape))])
    assert not r.ok and r.error.startswith(f"malformed SSE event ({problem}"), r.error


def test_a_timings_parser_that_raises_is_a_failed_request_not_a_crash() -> None:
    def broken(body):
        raise KeyError("timings")

    result = RequestResult(SPEC, start=1.0)
    parse_stream([(1.1, tok("a"))], result, broken)
    assert not result.ok and result.error.startswith("malformed SSE event (KeyError: 'timings')")


def test_non_numeric_server_timings_are_dropped() -> None:
    result = RequestResult(SPEC, start=1.0)
    parse_stream([(1.1, tok("a"))], result, lambda body: {"prompt_n": "3", "prompt_ms": 2})
    assert result.ok and result.server_timings == {"prompt_ms": 2.0}


@pytest.mark.parametrize("name", ["choices-string", "choices-null-item", "tokens-string"])
def test_a_server_sending_the_wrong_shape_is_counted(start_stub, name) -> None:
    stub = start_stub("--wrong-shape", name)
    r = send(stub.base_url)
    assert not r.ok and r.error.startswith("malformed SSE event ("), r.error


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_a_stream_that_stalls_ends_after_the_idle_timeout(start_stub, transport) -> None:
    stub = start_stub("--stall-after", "3")
    t0 = time.perf_counter()
    r = send(stub.base_url, transport=transport, idle_timeout_s=0.3)
    took = time.perf_counter() - t0
    assert not r.ok and r.error == "stream stalled: no data for 0.3 s"
    assert 0.3 <= took < 60  # not the 3600 s total timeout (60: room for a busy machine)


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_the_wait_for_the_first_token_is_not_a_stall(start_stub, transport) -> None:
    """A queued request or a long prefill sends nothing for a while: only the total timeout
    bounds that. Nor does a slow, steady stream trip it."""
    stub = start_stub("--ttft-ms", "700", "--tokens-per-s", "20")
    r = send(stub.base_url, transport=transport, idle_timeout_s=0.2)
    assert r.ok, r.error
    assert r.ttft >= 0.7 and r.client_output_chunks == 8
