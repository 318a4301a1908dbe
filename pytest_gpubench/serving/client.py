"""Streaming OpenAI-compatible client: one request in, one ``RequestResult`` out.

The hot path (per network read) does exactly one thing: append ``(perf_counter(), bytes)``.
SSE framing and JSON decoding happen after the stream has ended, so the client's own work
cannot delay the timestamp of the next chunk, and no tokenizer is ever called while a request
is in flight. An SSE event is timestamped with the read that delivered its last byte, which is
when ``vllm bench serve`` timestamps it too.

Transport: aiohttp by default. Measured on one core against the local stub server
(``tests/serving/test_client_ceiling.py``, numbers in docs/measurements.md), aiohttp absorbed about
2-3x the streamed events per second that httpx's ``AsyncClient.aiter_raw`` did, and a slower
client inflates ITL first under high concurrency. httpx stays available
(``transport="httpx"``) so the comparison can be re-run.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pytest_gpubench.engines.registry import engines

Endpoint = Literal["completions", "chat"]
TransportName = Literal["aiohttp", "httpx"]

ENDPOINT_PATHS: dict[str, str] = {
    "completions": "/v1/completions",
    "chat": "/v1/chat/completions",
}

_EVENT_END = re.compile(rb"\r?\n\r?\n")
STALE_RETRIES = 16  # attempts for a request that never reached the server
IDLE_TIMEOUT_S = 120.0  # longest silence inside a started stream before it counts as stalled


@dataclass(frozen=True)
class RequestSpec:
    """One prepared request: the body minus ``model``/``stream`` (the client adds those)."""

    endpoint: Endpoint
    body: dict[str, Any]
    max_tokens: int
    input_tokens: int | None = None  # what the workload generator counted; None if unknown
    images: int = 0
    arrival: float | None = None  # trace replay: seconds after the start it is due
    turn: int = 0  # multi-turn: 1 for a conversation's first turn; 0 outside conversations
    conversation: int | None = None  # multi-turn: the conversation's index in the dataset


@dataclass
class RequestResult:
    """What one request did, in seconds on the ``time.perf_counter`` clock."""

    spec: RequestSpec
    start: float = 0.0  # request sent
    scheduled: float = 0.0  # when the schedule wanted it sent (queue time = start - scheduled)
    ok: bool = False
    error: str = ""
    ttft: float | None = None  # first chunk carrying generated text
    end: float | None = None  # last chunk carrying choices (token or finish)
    token_times: list[float] = field(default_factory=list)  # absolute time of each text chunk
    usage_prompt_tokens: int | None = None
    usage_completion_tokens: int | None = None
    # prompt tokens the server served from its prefix cache (usage.prompt_tokens_details)
    usage_cached_tokens: int | None = None
    server_timings: dict[str, Any] | None = None  # the engine's ``response_timings``
    finish_reason: str | None = None
    responded: bool = False  # an HTTP status came back (a failure after that is not retried)
    attempts: int = 0
    text_parts: list[str] = field(default_factory=list, repr=False)  # the generated text

    @property
    def text(self) -> str:
        """The generated text (a multi-turn conversation's next history message)."""
        return "".join(self.text_parts)

    @property
    def client_output_chunks(self) -> int:
        return len(self.token_times)

    @property
    def prompt_cache(self) -> tuple[int, int] | None:
        """(prompt tokens the server took from its prefix cache, prompt tokens) as the server
        reported them: OpenAI ``usage.prompt_tokens_details.cached_tokens`` (vLLM, SGLang,
        llama.cpp), else llama.cpp's ``timings`` (``cache_n`` reused, ``prompt_n`` computed);
        None where the server says neither."""
        if self.usage_cached_tokens is not None and self.usage_prompt_tokens:
            return self.usage_cached_tokens, self.usage_prompt_tokens
        t = self.server_timings or {}
        if "cache_n" in t and "prompt_n" in t and t["cache_n"] + t["prompt_n"] > 0:
            return int(t["cache_n"]), int(t["cache_n"] + t["prompt_n"])
        return None

    @property
    def output_tokens(self) -> int:
        """Server usage when reported; otherwise the client's count of text chunks."""
        if self.usage_completion_tokens is not None:
            return self.usage_completion_tokens
        return self.client_output_chunks

    @property
    def e2el(self) -> float | None:
        return None if self.end is None else self.end - self.start

    @property
    def itl(self) -> list[float]:
        t = self.token_times
        return [b - a for a, b in itertools.pairwise(t)]

    @property
    def tpot(self) -> float | None:
        """(E2E - TTFT) / (output tokens - 1): the decode time per token after the first."""
        n = self.output_tokens
        if self.ttft is None or self.end is None or n < 2:
            return None
        return (self.end - self.start - self.ttft) / (n - 1)


def build_payload(spec: RequestSpec, model: str, extra: dict[str, Any] | None) -> dict[str, Any]:
    payload: dict[str, Any] = {"model": model, **spec.body}
    payload["max_tokens"] = spec.max_tokens
    payload["stream"] = True
    payload["stream_options"] = {"include_usage": True}
    if extra:
        payload.update(extra)
    return payload


TimingsParser = Callable[[Mapping[str, Any]], Mapping[str, float]]


def any_engine_timings(body: Mapping[str, Any]) -> Mapping[str, float]:
    """The server-side timings of a chunk from a server of unknown engine: the first
    registered engine that finds any (``Engine.response_timings``)."""
    for engine in engines():
        found = engine.response_timings(body)
        if found:
            return found
    return {}


def parse_stream(
    chunks: list[tuple[float, bytes]],
    result: RequestResult,
    timings: TimingsParser = any_engine_timings,
) -> None:
    """Fill ``result`` from the raw ``(time, bytes)`` reads of one SSE response.

    ``timings`` reads the engine's per-response numbers from each event (its
    ``response_timings``); the last event that has some wins.
    """
    if not chunks:
        result.error = "empty response: the server sent no data"
        return
    ends: list[int] = []
    total = 0
    for _, data in chunks:
        total += len(data)
        ends.append(total)
    buf = b"".join(data for _, data in chunks)
    pos = 0
    events: list[tuple[float, bytes]] = []
    for match in _EVENT_END.finditer(buf):
        idx = bisect.bisect_left(ends, match.end())
        events.append((chunks[min(idx, len(chunks) - 1)][0], buf[pos : match.start()]))
        pos = match.end()
    if buf[pos:].strip():  # the last event may lack its blank line
        events.append((chunks[-1][0], buf[pos:]))
    for t, raw in events:
        data_lines = [line[5:].lstrip() for line in raw.splitlines() if line.startswith(b"data:")]
        if not data_lines:
            continue  # comments (": ping") and event:/id: lines carry no payload
        payload = b"\n".join(data_lines).strip()
        if payload == b"[DONE]":
            break
        try:
            data = json.loads(payload)
        except (ValueError, RecursionError):
            result.error = f"malformed SSE event: {_shown(payload)!r}"
            return
        try:
            problem = _apply_event(data, t, result, timings)
        except Exception as exc:  # a timings parser, or a shape nobody foresaw: counted
            problem = f"{type(exc).__name__}: {exc}"
        if problem is not None:
            result.error = f"malformed SSE event ({problem}): {_shown(payload)!r}"
            return
        if result.error:  # the server reported an error in the stream
            return
    if result.ttft is None:
        result.error = "the stream ended without generating any text"
        return
    result.ok = True


def _shown(payload: bytes) -> str:
    return payload[:120].decode(errors="replace")


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _apply_event(data: Any, t: float, result: RequestResult, timings: TimingsParser) -> str | None:
    """Fold one decoded SSE event into ``result``; what is wrong with it, or None.

    Every field is checked for its type, so well-formed JSON of the wrong shape is a failed
    request with a message, never an exception: the client must survive any server.
    """
    if not isinstance(data, dict):
        return "not an object"
    if "error" in data:
        err = data["error"]
        msg = err.get("message", err) if isinstance(err, dict) else err
        result.error = f"server error in stream: {msg}"
        return None
    choices = data.get("choices")
    if choices is not None and not isinstance(choices, list):
        return "'choices' is not a list"
    if choices:
        choice = choices[0]
        if not isinstance(choice, dict):
            return "'choices[0]' is not an object"
        delta = choice.get("delta")
        if delta is None:
            delta = {}
        elif not isinstance(delta, dict):
            return "'delta' is not an object"
        text = (
            choice.get("text")
            or delta.get("content")
            or delta.get("reasoning_content")
            or delta.get("reasoning")
        )
        if text and not isinstance(text, str):
            return "the generated text is not a string"
        finish = choice.get("finish_reason")
        if finish is not None and not isinstance(finish, str):
            return "'finish_reason' is not a string"
        if text:
            if result.ttft is None:
                result.ttft = t - result.start
            result.token_times.append(t)
            result.text_parts.append(text)
        if finish:
            result.finish_reason = finish
        result.end = t
    usage = data.get("usage")
    if usage is not None and not isinstance(usage, dict):
        return "'usage' is not an object"
    if usage:
        for key in ("prompt_tokens", "completion_tokens"):
            if usage.get(key) is not None and not _count(usage[key]):
                return f"usage.{key} is not a whole number >= 0"
        if usage.get("prompt_tokens") is not None:
            result.usage_prompt_tokens = usage["prompt_tokens"]
        if usage.get("completion_tokens") is not None:
            result.usage_completion_tokens = usage["completion_tokens"]
        details = usage.get("prompt_tokens_details")
        if isinstance(details, dict) and details.get("cached_tokens") is not None:
            if not _count(details["cached_tokens"]):
                return "usage.prompt_tokens_details.cached_tokens is not a whole number >= 0"
            result.usage_cached_tokens = details["cached_tokens"]
    found = timings(data)
    if found:
        numbers = {
            str(k): float(v)
            for k, v in found.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }
        if numbers:
            result.server_timings = numbers
    return None


class StreamStalled(Exception):
    """A started stream sent no data for ``idle_s`` seconds (the idle watchdog ended it)."""

    def __init__(self, idle_s: float) -> None:
        super().__init__(f"no data for {idle_s:g} s")
        self.idle_s = idle_s


class IdleWatch:
    """Ends a stream that has started and then sends nothing for ``idle_s`` seconds.

    A timer, not a per-read timeout: it wakes ``idle_s`` after the last read it knows of and
    looks at the time of the last ``(time, bytes)`` the hot path appended, so a read costs
    nothing extra. Until the first read it only re-arms: the wait for the first token (a
    request queued behind others, a long prefill) is bounded by the total timeout, not by
    this one. When it fires it cancels the reading task; ``__exit__`` turns that into
    ``StreamStalled``.
    """

    def __init__(self, chunks: list[tuple[float, bytes]], idle_s: float | None) -> None:
        self.chunks = chunks
        self.idle_s = idle_s
        self.fired = False
        self.task: asyncio.Task | None = None
        self.handle: asyncio.TimerHandle | None = None

    def __enter__(self) -> IdleWatch:
        if self.idle_s is not None:
            self.task = asyncio.current_task()
            self.handle = asyncio.get_running_loop().call_later(self.idle_s, self._check)
        return self

    def _check(self) -> None:
        assert self.idle_s is not None and self.task is not None
        wait = self.idle_s
        if self.chunks:
            wait = self.idle_s - (time.perf_counter() - self.chunks[-1][0])
            if wait <= 0:
                self.fired = True
                self.task.cancel()
                return
        self.handle = asyncio.get_running_loop().call_later(wait, self._check)

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        if self.handle is not None:
            self.handle.cancel()
        if self.fired and kind is not None and issubclass(kind, asyncio.CancelledError):
            uncancel = getattr(self.task, "uncancel", None)  # Python 3.11+
            if uncancel is not None and uncancel() > 0:
                return  # cancelled from outside as well: let that cancellation through
            assert self.idle_s is not None
            raise StreamStalled(self.idle_s) from None


class Transport(Protocol):
    async def post_stream(
        self, url: str, payload: dict[str, Any], result: RequestResult
    ) -> tuple[int, list[tuple[float, bytes]]]: ...

    async def aclose(self) -> None: ...


class AiohttpTransport:
    def __init__(
        self,
        timeout_s: float,
        connections: int,
        headers: Mapping[str, str] | None = None,
        idle_timeout_s: float | None = None,
    ) -> None:
        import aiohttp

        self._aiohttp = aiohttp
        self.idle_timeout_s = idle_timeout_s
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            connector=aiohttp.TCPConnector(limit=connections, force_close=False),
            headers={"Content-Type": "application/json", **(headers or {})},
        )

    async def post_stream(
        self, url: str, payload: dict[str, Any], result: RequestResult
    ) -> tuple[int, list[tuple[float, bytes]]]:
        body = json.dumps(payload).encode()
        chunks: list[tuple[float, bytes]] = []
        clock = time.perf_counter
        result.start = result.start or clock()
        async with self.session.post(url, data=body) as resp:
            result.responded = True
            if resp.status != 200:
                return resp.status, [(clock(), await resp.read())]
            with IdleWatch(chunks, self.idle_timeout_s):
                async for data in resp.content.iter_any():
                    chunks.append((clock(), data))
        return 200, chunks

    async def aclose(self) -> None:
        await self.session.close()


class HttpxTransport:
    def __init__(
        self,
        timeout_s: float,
        connections: int,
        headers: Mapping[str, str] | None = None,
        idle_timeout_s: float | None = None,
    ) -> None:
        import httpx

        self.idle_timeout_s = idle_timeout_s
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            headers={"Content-Type": "application/json", **(headers or {})},
        )

    async def post_stream(
        self, url: str, payload: dict[str, Any], result: RequestResult
    ) -> tuple[int, list[tuple[float, bytes]]]:
        body = json.dumps(payload).encode()
        chunks: list[tuple[float, bytes]] = []
        clock = time.perf_counter
        result.start = result.start or clock()
        async with self.client.stream("POST", url, content=body) as resp:
            result.responded = True
            if resp.status_code != 200:
                return resp.status_code, [(clock(), await resp.aread())]
            with IdleWatch(chunks, self.idle_timeout_s):
                async for data in resp.aiter_raw():
                    chunks.append((clock(), data))
        return 200, chunks

    async def aclose(self) -> None:
        await self.client.aclose()


def _stale_connection(exc: Exception) -> bool:
    name = type(exc).__name__
    return name in {
        "ServerDisconnectedError",  # aiohttp
        "ClientOSError",  # aiohttp: "Can not write request body"
        "RemoteProtocolError",  # httpx
        "ReadError",
        "WriteError",
    }


class StreamingClient:
    """Sends ``RequestSpec``s to one server and never raises for a failed request."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        transport: TransportName = "aiohttp",
        timeout_s: float = 3600.0,
        connections: int = 1024,
        extra_body: dict[str, Any] | None = None,
        timings: TimingsParser = any_engine_timings,
        headers: Mapping[str, str] | None = None,
        idle_timeout_s: float | None = IDLE_TIMEOUT_S,
    ) -> None:
        """``timings`` is the engine's ``response_timings`` when the engine is known;
        ``headers`` go with every request (``Server.headers``: the API key). ``timeout_s``
        bounds a whole request; ``idle_timeout_s`` (None: off) the silence inside a stream
        that has started (``IdleWatch``)."""
        self.timings = timings
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.extra_body = extra_body
        self.timeout_s = timeout_s
        self.idle_timeout_s = idle_timeout_s
        impl = {"aiohttp": AiohttpTransport, "httpx": HttpxTransport}[transport]
        self.transport: Transport = impl(
            timeout_s, connections, dict(headers or {}), idle_timeout_s
        )

    async def send(self, spec: RequestSpec, scheduled: float | None = None) -> RequestResult:
        result = RequestResult(spec)
        url = self.base_url + ENDPOINT_PATHS[spec.endpoint]
        payload = build_payload(spec, self.model, self.extra_body)
        try:
            while True:
                result.attempts += 1
                try:
                    status, chunks = await self.transport.post_stream(url, payload, result)
                    break
                except Exception as exc:
                    if (
                        result.responded
                        or result.attempts >= STALE_RETRIES
                        or not _stale_connection(exc)
                    ):
                        raise
                    # A kept-alive connection the server had already closed (llama-server
                    # closes after every streamed response): the request never left, so it
                    # is sent again; the pool may hand out several such connections before
                    # a fresh one. Its clock keeps the first start.
        except Exception as exc:  # refused, reset, timed out, protocol errors: counted, not raised
            if isinstance(exc, StreamStalled):
                result.error = f"stream stalled: {exc}"
            elif isinstance(exc, asyncio.TimeoutError) or "Timeout" in type(exc).__name__:
                result.error = f"timed out after {self.timeout_s:g} s"
            else:
                result.error = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
        else:
            if status != 200:
                body = chunks[0][1][:300].decode(errors="replace") if chunks else ""
                result.error = f"HTTP {status}: {body}".strip()
            else:
                try:
                    parse_stream(chunks, result, self.timings)
                except Exception as exc:  # parse_stream checks shapes; this is the backstop
                    result.ok = False
                    result.error = f"unusable stream: {type(exc).__name__}: {exc}"
        result.scheduled = result.start if scheduled is None else min(scheduled, result.start)
        return result

    async def aclose(self) -> None:
        await self.transport.aclose()
