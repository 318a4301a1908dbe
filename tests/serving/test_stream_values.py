"""parse_stream on hand-written SSE streams: what each event does to the request's record.

Times are those of the reads (seconds); the request was sent at 1.0, so TTFT is the first text
read's time minus 1.0 and TPOT is (e2el - ttft) / (usage tokens - 1).
"""

from __future__ import annotations

import json

import pytest

from pytest_gpubench.serving.client import RequestResult, RequestSpec, parse_stream

SPEC = RequestSpec("chat", {"messages": []}, max_tokens=8)


def ev(payload) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def text(t: str, key: str = "content") -> bytes:
    return ev({"choices": [{"index": 0, "delta": {key: t}}]})


def parsed(reads, timings=None) -> RequestResult:
    r = RequestResult(SPEC, start=1.0)
    if timings is None:
        parse_stream(reads, r)
    else:
        parse_stream(reads, r, timings)
    return r


def test_usage_and_chunk_count_differ_and_tpot_uses_usage() -> None:
    # three text chunks but the server counted 5 tokens (several tokens per chunk)
    reads = [
        (1.25, ev({"choices": [{"index": 0, "delta": {"role": "assistant"}}]})),
        (1.5, text("Hel")),
        (2.0, text("lo, wor")),
        (2.5, text("ld")),
        (3.0, ev({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})),
        (3.25, ev({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 5}})),
        (3.5, b"data: [DONE]\n\n"),
    ]
    r = parsed(reads)
    assert r.ok and r.error == ""
    assert r.ttft == 0.5
    assert r.token_times == [1.5, 2.0, 2.5]
    assert r.end == 3.0 and r.e2el == 2.0
    assert (r.usage_prompt_tokens, r.usage_completion_tokens) == (7, 5)
    assert r.client_output_chunks == 3 and r.output_tokens == 5
    assert r.tpot == (2.0 - 0.5) / (5 - 1)
    assert r.finish_reason == "stop"


def test_every_text_field_counts() -> None:
    for key in ("content", "reasoning_content", "reasoning"):
        r = parsed([(1.5, text("x", key)), (2.0, text("y", key))])
        assert r.ok and r.token_times == [1.5, 2.0], key
    r = parsed([(1.5, ev({"choices": [{"text": "x"}]})), (2.0, ev({"choices": [{"text": "y"}]}))])
    assert r.ok and r.token_times == [1.5, 2.0]
    assert r.usage_completion_tokens is None and r.output_tokens == 2


def test_done_ends_the_stream_and_the_last_event_may_lack_its_blank_line() -> None:
    r = parsed([(1.5, text("a")), (2.0, b"data: [DONE]\n\n"), (2.5, text("b"))])
    assert r.ok and r.token_times == [1.5]
    r = parsed([(1.5, text("a")), (2.0, text("b")[:-2])])  # no trailing blank line
    assert r.ok and r.token_times == [1.5, 2.0]
    r = parsed([(1.5, text("a")), (2.0, b"\n\n  \n")])
    assert r.ok and r.token_times == [1.5]


def test_multi_line_data_is_joined() -> None:
    body = json.dumps({"choices": [{"delta": {"content": "z"}}]})
    half = len(body) // 2
    raw = (
        b"event: message\nid: 1\ndata: " + body[:half].encode() + b"\ndata:" + body[half:].encode()
    )
    r = parsed([(1.5, raw + b"\n\n")])
    assert r.ok and r.token_times == [1.5]


def test_failures_and_their_messages() -> None:
    assert parsed([]).error == "empty response: the server sent no data"
    r = parsed([(1.5, b": ping\n\n"), (2.0, b"data: [DONE]\n\n")])
    assert not r.ok and r.error == "the stream ended without generating any text"
    r = parsed([(1.5, text("a")), (2.0, ev({"error": {"message": "out of memory"}}))])
    assert not r.ok and r.error == "server error in stream: out of memory"
    r = parsed([(1.5, ev({"error": "overloaded"}))])
    assert r.error == "server error in stream: overloaded"
    r = parsed([(1.5, b"data: {nope\n\n")])
    assert not r.ok and r.error == "malformed SSE event: '{nope'"
    long = b"data: " + b"x" * 300 + b"\n\n"
    assert parsed([(1.5, long)]).error == "malformed SSE event: " + repr("x" * 120)
    r = parsed([(1.5, ev({"usage": {"completion_tokens": -1}}))])
    assert r.error.startswith(
        "malformed SSE event (usage.completion_tokens is not a whole number >= 0): "
    )
    r = parsed([(1.5, ev({"usage": {"prompt_tokens": True}}))])
    assert r.error.startswith("malformed SSE event (usage.prompt_tokens is not a whole number")


def test_zero_usage_counts_and_partial_usage() -> None:
    r = parsed([(1.5, text("a")), (2.0, ev({"usage": {"prompt_tokens": 0}}))])
    assert r.ok and r.usage_prompt_tokens == 0 and r.usage_completion_tokens is None
    r = parsed([(1.5, text("a")), (2.0, ev({"usage": {"completion_tokens": 0}}))])
    assert r.usage_completion_tokens == 0 and r.usage_prompt_tokens is None
    r = parsed([(1.5, text("a")), (2.0, ev({"usage": {}})), (2.5, ev({"usage": None}))])
    assert r.ok and r.usage_prompt_tokens is None


def test_server_timings_keep_numbers_only_and_the_last_wins() -> None:
    def timings(body):
        return body.get("t") or {}

    reads = [
        (1.5, ev({"choices": [{"text": "a"}], "t": {"prompt_ms": 5, "x": "slow"}})),
        (2.0, ev({"choices": [{"text": "b"}], "t": {"prompt_ms": 7.5, "flag": True}})),
        (2.5, ev({"choices": [{"text": "c"}], "t": {"only": "text"}})),
    ]
    r = parsed(reads, timings)
    assert r.ok and r.server_timings == {"prompt_ms": 7.5}
    assert type(r.server_timings["prompt_ms"]) is float
    r = parsed([(1.5, ev({"choices": [{"text": "a"}], "t": {"n": 3}}))], timings)
    assert r.server_timings == {"n": 3.0}


def test_a_finish_chunk_without_text_ends_the_request() -> None:
    r = parsed(
        [(1.5, text("a")), (2.0, text("b")), (4.0, ev({"choices": [{"finish_reason": "length"}]}))]
    )
    assert r.end == 4.0 and r.e2el == 3.0 and r.finish_reason == "length"
    assert r.token_times == [1.5, 2.0]
    # a null finish_reason keeps the last one seen
    r = parsed([(1.5, ev({"choices": [{"text": "a", "finish_reason": None}]}))])
    assert r.finish_reason is None and r.end == 1.5


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        ([1, 2], "not an object"),
        ({"choices": {}}, "'choices' is not a list"),
        ({"choices": ["x"]}, "'choices[0]' is not an object"),
        ({"choices": [{"delta": "x"}]}, "'delta' is not an object"),
        ({"choices": [{"text": 5}]}, "the generated text is not a string"),
        ({"choices": [{"text": "a", "finish_reason": 1}]}, "'finish_reason' is not a string"),
        ({"usage": [1]}, "'usage' is not an object"),
    ],
)
def test_shapes(payload, problem) -> None:
    r = parsed([(1.5, ev(payload))])
    assert not r.ok
    assert r.error == f"malformed SSE event ({problem}): {json.dumps(payload)!r}"


# SSE framing as the WHATWG HTML standard defines it ("Server-sent events", event stream
# interpretation) and OpenAI-compatible servers send it: an event is its lines up to a blank
# line, and is dispatched only when that blank line has arrived; a "data:" field's value is the
# rest of its line less one leading space, and several data lines join with "\n". The events
# below are written out byte for byte.


def test_an_event_is_timed_by_the_read_that_brought_its_blank_line() -> None:
    # a server that writes line by line: the event's text arrives at 1.5, the blank line that
    # completes (dispatches) it at 2.0; the request's first token is at 2.0
    reads = [
        (1.5, b'data: {"choices": [{"index": 0, "text": "Hi"}]}\n'),
        (2.0, b"\n"),
        (2.5, b'data: {"choices": [{"index": 0, "text": " there"}]}\n\n'),
        (3.0, b"data: [DONE]\n\n"),
    ]
    r = parsed(reads)
    assert r.ok and r.token_times == [2.0, 2.5]
    assert r.ttft == 1.0


def test_a_last_event_without_its_blank_line_is_timed_by_the_last_read() -> None:
    # the server closed the connection after the last event's data line (no blank line)
    reads = [
        (1.5, b'data: {"choices": [{"index": 0, "text": "a"}]}\n\n'),
        (2.0, b'data: {"choices": [{"index": 0, "text": "b"}]}\n\n'),
        (2.5, b'data: {"choices": [{"index": 0, "text": "c"}]}\n\n'),
        (3.0, b'data: {"choices": [{"index": 0, "text": "d", "finish_reason": "stop"}]}'),
    ]
    r = parsed(reads)
    assert r.ok and r.token_times == [1.5, 2.0, 2.5, 3.0]
    assert r.end == 3.0 and r.finish_reason == "stop"


def test_a_malformed_multi_line_event_is_shown_as_its_joined_data() -> None:
    # two data lines, one space after each colon: the data is "{nope" "\n" "more"
    r = parsed([(1.5, b"data: {nope\ndata: more\n\n")])
    assert r.error == "malformed SSE event: '{nope\\nmore'"


def test_a_malformed_event_cut_inside_a_character_is_still_shown() -> None:
    # 1 + 2 x 100 bytes of UTF-8: the first 120 bytes end inside the 60th "é"
    r = parsed([(1.5, ("data: x" + "é" * 100 + "\n\n").encode())])
    assert r.error == "malformed SSE event: " + repr("x" + "é" * 59 + "\ufffd")
    r = parsed([(1.5, b"data: \xff{\n\n")])  # not UTF-8 at all
    assert r.error == "malformed SSE event: " + repr("\ufffd{")


def test_an_error_object_without_a_message_is_shown_whole() -> None:
    # OpenAI's error object has "message"; one without it is shown as it came
    r = parsed([(1.5, text("a")), (2.0, ev({"error": {"type": "server_error", "code": 503}}))])
    assert not r.ok
    assert r.error == "server error in stream: {'type': 'server_error', 'code': 503}"
