"""A local OpenAI-compatible streaming server for testing the load generator.

A stub, because it stands in for an inference engine where the test is about the client:
its faults (HTTP errors, malformed SSE, well-formed JSON of the wrong shape, a stream that
stalls, short outputs, missing usage) are what real engines do occasionally and cannot be
made to do on demand; its pacing (``--ttft-ms``, ``--tokens-per-s``, per stream) is a fixed
schedule, and ``--max-streams K`` serves at most K streams at once and queues the rest (an
engine with K decode slots: throughput rises to K streams' worth, then TTFT grows),
which is what tests whose numbers must not depend on the machine's load run against;
``--cache-save-ms`` blocks the whole server before each request and logs it like llama-server's
host prompt cache (``--llamacpp-log``: the stall the H200 showed, which no CPU here can
produce); and its
speed ceiling (it can stream
tokens faster than any client absorbs them) is what measures the client's own limit.

It speaks HTTP/1.1 with keep-alive and chunked transfer encoding on plain asyncio streams
(one SSE event per write, like vLLM and llama-server), and implements:

- ``POST /v1/completions`` and ``/v1/chat/completions`` (streamed; usage in the last chunk
  when ``stream_options.include_usage``; llama.cpp-style ``timings`` with ``--timings``);
- ``POST /tokenize`` and ``/detokenize`` (llama.cpp's shapes) with a word-level tokenizer:
  every whitespace-separated word is one token, token ``i`` is the word ``w<i>``;
- ``GET /health``, ``/version``, ``/v1/models`` and ``/metrics`` (Prometheus text).

Run it as ``python -m pytest_gpubench.testing.stub_server --port 0``; it prints
``listening <port>`` once it accepts connections. ``start_stub_server`` does that for tests
and always stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

VOCAB = 32000
MODEL = "stub-model"
VERSION = "stub-1.0"


def tokenize(text: str) -> list[int]:
    ids = []
    for word in text.split():
        if word[:1] == "w" and word[1:].isdigit():
            ids.append(int(word[1:]) % VOCAB)
        else:
            ids.append(zlib.crc32(word.encode()) % VOCAB)
    return ids


def detokenize(ids: list[int]) -> str:
    return " ".join(f"w{int(i)}" for i in ids)


def chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def sse(obj: Any) -> bytes:
    return chunked(b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n")


# Well-formed JSON a broken or foreign server might send, none of it usable (``--wrong-shape
# NAME``): a ``usage`` one replaces the stream's usage event, the others its middle token.
WRONG_SHAPES: dict[str, Any] = {
    "choices-string": {"choices": "abc"},
    "choices-null-item": {"choices": [None]},
    "delta-string": {"choices": [{"index": 0, "delta": "tok", "finish_reason": None}]},
    "text-number": {"choices": [{"index": 0, "text": 7, "finish_reason": None}]},
    "usage-string": {"choices": [], "usage": "lots"},
    "tokens-string": {"choices": [], "usage": {"prompt_tokens": "3", "completion_tokens": "9"}},
    "event-list": [1, 2, 3],
}


@dataclass
class Behaviour:
    tokens_per_s: float = 0.0  # 0: as fast as the socket takes them
    ttft_ms: float = 0.0
    fail_every: int = 0  # every Nth generation request answers HTTP 500
    malformed_every: int = 0  # every Nth generation request sends a broken JSON event
    short_output: int = 0  # stop after this many tokens whatever max_tokens says
    usage: bool = True
    timings: bool = False
    counters: dict[str, float] = field(default_factory=dict)
    model: str = MODEL  # the served name /v1/models lists and responses carry
    wrong_shape: str = ""  # a WRONG_SHAPES name: a well-formed JSON event of the wrong shape
    wrong_shape_every: int = 1  # ... in every Nth generation request
    stall_after: int = -1  # >= 0: after this many tokens, send nothing more (connection open)
    stall_every: int = 1  # ... in every Nth generation request
    burst: int = 0  # > 0: token events pre-encoded, this many per write (no client outruns it)
    max_streams: int = 0  # > 0: stream at most this many at once, queue the rest (FIFO)
    # > 0: each request's prefill takes this long, one request at a time (an engine computes
    # the prompts that arrive together one after another: the last of a burst waits longest)
    prefill_ms: float = 0.0
    # > 0: before each request, block the whole server this long, as llama-server's main
    # loop does while it copies a slot into its host prompt cache (every stream waits), and
    # log it to ``llamacpp_log`` in llama-server's --log-verbosity 4 format
    cache_save_ms: float = 0.0
    llamacpp_log: str = ""
    reject_above: int = 0  # > 0: a request arriving while this many stream answers HTTP 429


class StubServer:
    def __init__(self, behaviour: Behaviour) -> None:
        self.b = behaviour
        self.requests = 0
        self.streaming = 0  # generation requests being answered now
        self.counters = {"stub:requests_total": 0.0, "stub:generation_tokens_total": 0.0}
        # an engine with a fixed number of decode slots: the rest wait, in arrival order
        # (asyncio's semaphore wakes its waiters first in, first out)
        self.slots = asyncio.Semaphore(behaviour.max_streams) if behaviour.max_streams else None
        self.prefill = asyncio.Lock()  # first in, first out, like the slots
        self.born = time.perf_counter()
        self.log = open(behaviour.llamacpp_log, "a") if behaviour.llamacpp_log else None  # noqa: SIM115

    def log_line(self, text: str) -> None:
        """One line as llama-server writes it: minutes.seconds.ms.us since start."""
        if self.log is None:
            return
        us = int((time.perf_counter() - self.born) * 1e6)
        stamp = f"{us // 60_000_000}.{us // 1_000_000 % 60:02d}.{us // 1000 % 1000:03d}"
        self.log.write(f"{stamp}.{us % 1000:03d} I {text}\n")
        self.log.flush()

    def save_to_cache(self, n_req: int, prompt_tokens: int) -> None:
        """llama-server's host prompt cache copy: a blocking stall of the whole loop."""
        self.log_line(f"slot init_sampler: id  0 | task {n_req} | init sampler, took 0.01 ms")
        if not self.b.cache_save_ms:
            return
        self.log_line(
            f"srv   prompt_save:  - saving prompt with length {prompt_tokens}, total state "
            "size = 1.000 MiB (draft: 0.000 MiB)"
        )
        time.sleep(self.b.cache_save_ms / 1000)  # blocks every stream, on purpose
        self.log_line("srv        update:  - cache state: 1 prompts, 1.000 MiB")

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                await self.route(method, path, body, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def reply(self, writer: asyncio.StreamWriter, status: int, obj: Any, ctype: str) -> None:
        data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        reason = {
            200: "OK",
            404: "Not Found",
            429: "Too Many Requests",
            500: "Internal Server Error",
        }.get(status, "X")
        writer.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s"
            % (status, reason.encode(), ctype.encode(), len(data), data)
        )
        await writer.drain()

    async def route(self, method: str, path: str, body: bytes, w: asyncio.StreamWriter) -> None:
        if path in ("/v1/completions", "/v1/chat/completions") and method == "POST":
            if self.b.reject_above and self.streaming >= self.b.reject_above:
                error = {"error": {"message": "stub: too many requests", "code": 429}}
                await self.reply(w, 429, error, "application/json")
                return
            self.streaming += 1
            try:
                await self.stream(path, body, w)
            finally:
                self.streaming -= 1
        elif path == "/tokenize":
            req = json.loads(body or b"{}")
            await self.reply(
                w, 200, {"tokens": tokenize(req.get("content", ""))}, "application/json"
            )
        elif path == "/detokenize":
            req = json.loads(body or b"{}")
            await self.reply(
                w, 200, {"content": detokenize(req.get("tokens", []))}, "application/json"
            )
        elif path == "/version":
            await self.reply(w, 200, {"version": VERSION}, "application/json")
        elif path == "/health":
            await self.reply(w, 200, {"status": "ok"}, "application/json")
        elif path == "/v1/models":
            await self.reply(
                w, 200, {"data": [{"id": self.b.model, "object": "model"}]}, "application/json"
            )
        elif path == "/metrics":
            text = "".join(f"{k} {v}\n" for k, v in self.counters.items())
            await self.reply(w, 200, text.encode(), "text/plain")
        else:
            await self.reply(w, 404, {"error": f"no route {path}"}, "application/json")

    async def stream(self, path: str, body: bytes, w: asyncio.StreamWriter) -> None:
        if self.slots is None:
            await self.generate(path, json.loads(body or b"{}"), w)
        else:
            async with self.slots:  # queued: the time waited here is the client's TTFT
                await self.generate(path, json.loads(body or b"{}"), w)

    async def generate(self, path: str, req: dict, w: asyncio.StreamWriter) -> None:
        """Answer one completion request as a streaming engine does, with the misbehaviour
        ``Behaviour`` asks for this request (failure, wrong shapes, a stall, short output)."""
        self.requests += 1
        self.counters["stub:requests_total"] += 1
        n_req = self.requests
        b = self.b
        if b.fail_every and n_req % b.fail_every == 0:
            await self.reply(
                w, 500, {"error": {"message": "stub: injected failure"}}, "application/json"
            )
            return
        chat = path.endswith("chat/completions")
        prompt_tokens = self.count_prompt_tokens(chat, req)
        n = int(req.get("max_tokens") or req.get("max_completion_tokens") or 16)
        if b.short_output:
            n = min(n, b.short_output)
        w.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        self.save_to_cache(n_req, prompt_tokens)
        started = time.perf_counter()
        if b.prefill_ms:
            async with self.prefill:
                await asyncio.sleep(b.prefill_ms / 1000)
        if b.ttft_ms:
            await asyncio.sleep(b.ttft_ms / 1000)
        token = self.open_stream(chat, w)
        first = time.perf_counter()
        wrong = WRONG_SHAPES[b.wrong_shape] if b.wrong_shape else None
        if n_req % b.wrong_shape_every:
            wrong = None
        await self.stream_tokens(w, token, n, n_req, first, wrong)
        end = time.perf_counter()
        self.counters["stub:generation_tokens_total"] += n
        timings = {
            "prompt_n": prompt_tokens,
            "prompt_ms": (first - started) * 1000,
            "predicted_n": n,
            "predicted_ms": (end - first) * 1000,
            "predicted_per_second": n / max(end - first, 1e-9),
        }
        self.close_stream(w, req, chat, n, prompt_tokens, timings, wrong)
        await w.drain()

    @staticmethod
    def count_prompt_tokens(chat: bool, req: dict) -> int:
        """The prompt's length in the stub's tokens; a chat's messages' text parts plus 3 per
        message for the template."""
        if not chat:
            return len(tokenize(req.get("prompt", "")))
        msgs = req.get("messages", [])
        parts = []
        for m in msgs:
            content = m.get("content")
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                parts += [c.get("text", "") for c in content if c.get("type") == "text"]
        return len(tokenize(" ".join(parts))) + 3 * len(msgs)  # template overhead

    def open_stream(self, chat: bool, w: asyncio.StreamWriter) -> bytes:
        """Write a chat stream's opening role chunk; return the one token event every token
        repeats (a chat delta or a completion text)."""
        if not chat:
            return sse(
                {
                    "id": "cmpl-stub",
                    "object": "text_completion",
                    "model": self.b.model,
                    "choices": [{"index": 0, "text": " tok", "finish_reason": None}],
                }
            )
        token = sse(
            {
                "id": "chatcmpl-stub",
                "object": "chat.completion.chunk",
                "model": self.b.model,
                "choices": [{"index": 0, "delta": {"content": " tok"}, "finish_reason": None}],
            }
        )
        role = {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
        w.write(
            sse(
                {
                    "id": "chatcmpl-stub",
                    "object": "chat.completion.chunk",
                    "model": self.b.model,
                    "choices": [role],
                }
            )
        )
        return token

    async def stream_tokens(
        self, w: asyncio.StreamWriter, token: bytes, n: int, n_req: int, first: float, wrong: Any
    ) -> None:
        """Write the ``n`` token events: in bursts where nothing else is asked, else one by
        one on the ``tokens_per_s`` schedule, with the malformed event, wrong shape or stall
        ``Behaviour`` puts in the middle of this request."""
        b = self.b
        delay = 1.0 / b.tokens_per_s if b.tokens_per_s else 0.0
        wrong_usage = isinstance(wrong, dict) and "usage" in wrong
        stall = b.stall_after >= 0 and n_req % b.stall_every == 0
        plain = not (delay or wrong is not None or stall or b.malformed_every)
        if b.burst and plain:
            # the token events are one pre-encoded bytes object repeated: no JSON per token and
            # ``burst`` events per write, so the stub's cost per token is a memcpy
            for i in range(0, n, b.burst):
                w.write(token * min(b.burst, n - i))
                await w.drain()
            n_loop = 0
        else:
            n_loop = n
        for i in range(n_loop):
            if b.malformed_every and n_req % b.malformed_every == 0 and i == n // 2:
                w.write(chunked(b'data: {"choices": [{"text": "broken\n\n'))
                break
            if wrong is not None and not wrong_usage and i == n // 2:
                w.write(sse(wrong))
                continue
            if stall and i == b.stall_after:
                # headers and the first tokens are out; the connection stays open and silent,
                # as a wedged engine's does
                await w.drain()
                await asyncio.sleep(3600)
            w.write(token)
            if delay:
                # on a fixed schedule (token i+1 due at first + (i+1) / tokens_per_s): a late
                # wake-up on a busy machine delays one token, it does not push back the rest
                await asyncio.sleep(max(0.0, first + (i + 1) * delay - time.perf_counter()))
                await w.drain()
            elif i % 32 == 31:
                await w.drain()

    def close_stream(
        self, w: asyncio.StreamWriter, req: dict, chat: bool, n: int, prompt_tokens: int,
        timings: dict[str, float], wrong: Any,
    ) -> None:  # fmt: skip
        """Write the final chunk (finish_reason, llama.cpp ``timings`` if asked), the usage
        chunk (or the wrong usage ``Behaviour`` asks for) and the end of the stream."""
        b = self.b
        final: dict[str, Any] = {
            "id": "stub",
            "model": self.b.model,
            "choices": [
                {"index": 0, "finish_reason": "length", **({"delta": {}} if chat else {"text": ""})}
            ],
        }
        if b.timings:
            final["timings"] = timings
        w.write(sse(final))
        if isinstance(wrong, dict) and "usage" in wrong:
            w.write(sse(wrong))
        elif b.usage and (req.get("stream_options") or {}).get("include_usage"):
            w.write(
                sse(
                    {
                        "id": "stub",
                        "choices": [],
                        "usage": {
                            "prompt_tokens": prompt_tokens,
                            "completion_tokens": n,
                            "total_tokens": prompt_tokens + n,
                        },
                    }
                )
            )
        w.write(chunked(b"data: [DONE]\n\n") + b"0\r\n\r\n")


async def serve(port: int, behaviour: Behaviour, host: str = "127.0.0.1") -> None:
    stub = StubServer(behaviour)
    server = await asyncio.start_server(stub.handle, host, port, limit=2**24)
    print(f"listening {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--model", default=MODEL, help="the served model name")
    p.add_argument("--tokens-per-s", type=float, default=0.0)
    p.add_argument("--ttft-ms", type=float, default=0.0)
    p.add_argument("--fail-every", type=int, default=0)
    p.add_argument("--malformed-every", type=int, default=0)
    p.add_argument("--short-output", type=int, default=0)
    p.add_argument("--no-usage", action="store_true")
    p.add_argument("--timings", action="store_true")
    p.add_argument("--wrong-shape", choices=sorted(WRONG_SHAPES), default="")
    p.add_argument("--wrong-shape-every", type=int, default=1)
    p.add_argument("--stall-after", type=int, default=-1, help="tokens before going silent")
    p.add_argument("--stall-every", type=int, default=1)
    p.add_argument("--burst", type=int, default=0, help="pre-encoded token events per write")
    p.add_argument(
        "--max-streams", type=int, default=0, help="stream at most K at once, queue the rest"
    )
    p.add_argument(
        "--prefill-ms", type=float, default=0.0, help="per-request prefill, one at a time"
    )
    p.add_argument(
        "--cache-save-ms", type=float, default=0.0,
        help="block the whole server this long per request (llama.cpp's host prompt cache)",
    )  # fmt: skip
    p.add_argument("--llamacpp-log", default="", help="write llama-server-style log lines here")
    p.add_argument(
        "--reject-above", type=int, default=0, help="HTTP 429 while this many requests stream"
    )
    a = p.parse_args(argv)
    behaviour = Behaviour(
        a.tokens_per_s,
        a.ttft_ms,
        a.fail_every,
        a.malformed_every,
        a.short_output,
        not a.no_usage,
        a.timings,
        model=a.model,
        wrong_shape=a.wrong_shape,
        wrong_shape_every=a.wrong_shape_every,
        stall_after=a.stall_after,
        stall_every=a.stall_every,
        burst=a.burst,
        max_streams=a.max_streams,
        prefill_ms=a.prefill_ms,
        cache_save_ms=a.cache_save_ms,
        llamacpp_log=a.llamacpp_log,
        reject_above=a.reject_above,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(a.port, behaviour, a.host))


@dataclass
class Engine:
    name: str


@dataclass
class RunningStub:
    """Looks like the ``llm_server`` fixture's server object: base_url, model, engine."""

    base_url: str
    model: str
    engine: Engine
    process: subprocess.Popen


@contextlib.contextmanager
def start_stub_server(*args: str, engine: str = "stub") -> Iterator[RunningStub]:
    """Start the stub in its own process (its own core), yield it, always stop it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pytest_gpubench.testing.stub_server", "--port", "0", *args],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.startswith("listening "):
            raise RuntimeError(f"stub server did not start (exit {proc.poll()}): {line!r}")
        port = int(line.split()[1])
        yield RunningStub(f"http://127.0.0.1:{port}", MODEL, Engine(engine), proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
