"""Streaming OpenAI-compatible client: one request in, one ``RequestResult`` out.

The hot path (per network read) does exactly one thing: append ``(perf_counter(), bytes)``.
SSE framing and JSON decoding happen after the stream has ended, so the client's own work
cannot delay the timestamp of the next chunk, and no tokenizer is ever called while a request
is in flight. An SSE event is timestamped with the read that delivered its last byte, which is
when ``vllm bench serve`` timestamps it too.

Transport: aiohttp by default. Measured on one core against the local stub server
(``tests/serving/test_client_ceiling.py``, numbers in the README), aiohttp absorbed about
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


@dataclass(frozen=True)
class RequestSpec:
    """One prepared request: the body minus ``model``/``stream`` (the client adds those)."""

    endpoint: Endpoint
    body: dict[str, Any]
    max_tokens: int
    input_tokens: int | None = None  # what the workload generator counted; None if unknown
    images: int = 0


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
    server_timings: dict[str, Any] | None = None  # the engine's ``response_timings``
    finish_reason: str | None = None
    responded: bool = False  # an HTTP status came back (a failure after that is not retried)
    attempts: int = 0

    @property
    def client_output_chunks(self) -> int:
        return len(self.token_times)

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
        except ValueError:
            result.error = f"malformed SSE event: {payload[:120].decode(errors='replace')!r}"
            return
        if not isinstance(data, dict):
            result.error = f"malformed SSE event (not an object): {payload[:120]!r}"
            return
        if "error" in data:
            err = data["error"]
            msg = err.get("message", err) if isinstance(err, dict) else err
            result.error = f"server error in stream: {msg}"
            return
        choices = data.get("choices")
        if choices:
            choice = choices[0]
            delta = choice.get("delta") or {}
            text = (
                choice.get("text")
                or delta.get("content")
                or delta.get("reasoning_content")
                or delta.get("reasoning")
            )
            if text:
                if result.ttft is None:
                    result.ttft = t - result.start
                result.token_times.append(t)
            if choice.get("finish_reason"):
                result.finish_reason = choice["finish_reason"]
            result.end = t
        usage = data.get("usage")
        if usage:
            result.usage_prompt_tokens = usage.get("prompt_tokens", result.usage_prompt_tokens)
            result.usage_completion_tokens = usage.get(
                "completion_tokens", result.usage_completion_tokens
            )
        found = timings(data)
        if found:
            result.server_timings = dict(found)
    if result.ttft is None:
        result.error = "the stream ended without generating any text"
        return
    result.ok = True


class Transport(Protocol):
    async def post_stream(
        self, url: str, payload: dict[str, Any], result: RequestResult
    ) -> tuple[int, list[tuple[float, bytes]]]: ...

    async def aclose(self) -> None: ...


class AiohttpTransport:
    def __init__(
        self, timeout_s: float, connections: int, headers: Mapping[str, str] | None = None
    ) -> None:
        import aiohttp

        self._aiohttp = aiohttp
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
            async for data in resp.content.iter_any():
                chunks.append((clock(), data))
        return 200, chunks

    async def aclose(self) -> None:
        await self.session.close()


class HttpxTransport:
    def __init__(
        self, timeout_s: float, connections: int, headers: Mapping[str, str] | None = None
    ) -> None:
        import httpx

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
    ) -> None:
        """``timings`` is the engine's ``response_timings`` when the engine is known;
        ``headers`` go with every request (``Server.headers``: the API key)."""
        self.timings = timings
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.extra_body = extra_body
        self.timeout_s = timeout_s
        impl = {"aiohttp": AiohttpTransport, "httpx": HttpxTransport}[transport]
        self.transport: Transport = impl(timeout_s, connections, dict(headers or {}))

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
            if isinstance(exc, asyncio.TimeoutError) or "Timeout" in type(exc).__name__:
                result.error = f"timed out after {self.timeout_s:g} s"
            else:
                result.error = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
        else:
            if status != 200:
                body = chunks[0][1][:300].decode(errors="replace") if chunks else ""
                result.error = f"HTTP {status}: {body}".strip()
            else:
                parse_stream(chunks, result, self.timings)
        result.scheduled = result.start if scheduled is None else min(scheduled, result.start)
        return result

    async def aclose(self) -> None:
        await self.transport.aclose()
