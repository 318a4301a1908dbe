"""What is sent: random text of exact token lengths, images, prompt files, presets.

Everything here runs before the clock starts. Random text is built like vLLM's ``random``
dataset, but from words rather than token ids (so it is valid text in any vocabulary): words
are drawn with a seeded generator, tokenized, cut to the target length, decoded and
re-encoded until the count is exact. Output length is forced with ``max_tokens`` plus
``ignore_eos``. Lengths vary uniformly in ``[L(1-r), L(1+r)]`` for a range ratio ``r``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.serving.client import Endpoint, RequestSpec
from pytest_gpubench.serving.datasets import (
    MOONCAKE_BLOCK,
    Conversation,
    block_rng,
    read_conversations,
    read_trace,
)
from pytest_gpubench.serving.images import ImageSource
from pytest_gpubench.serving.tokens import Tokenizer

# The fixed prompt of the seed write-up's single-user tests (ollama / llama.cpp, every device).
TOKYO_PROMPT = (
    "Design a weekend trip itinerary for two people visiting Tokyo for the first time. "
    "Include where to stay, what to see each day, where to eat, and estimated budget in yen."
)
PRESETS: dict[str, str] = {"tokyo": TOKYO_PROMPT}

_WORD_TEXT = (
    "the of and to in is it you that he was for on are with as his they be at one have this "
    "from or had by word but what some we can out other were all there when up use your how "
    "said an each she which do their time if will way about many then them write would like "
    "so these her long make thing see him two has look more day could go come did number "
    "sound no most people my over know water than call first who may down side been now find "
    "any new work part take get place made live where after back little only round man year "
    "came show every good me give our under name very through just form sentence great think "
    "say help low line differ turn cause much mean before move right boy old too same tell "
    "does set three want air well also play small end put home read hand port large spell add "
    "even land here must big high such follow act why ask men change went light kind off need "
    "house picture try us again animal point mother world near build self earth father head "
    "stand own page should country found answer school grow study still learn plant cover "
    "food sun four between state keep eye never last let thought city tree cross farm hard "
    "start might story saw far sea draw left late run while press close night real life few "
    "north"
)
_WORDS = tuple(_WORD_TEXT.split())


def exact_text(tok: Tokenizer, n: int, rng: np.random.Generator, head: str = "") -> str:
    """Text ``t`` such that ``head + t`` tokenizes to exactly ``len(head) + n`` tokens."""
    if n < 1:
        raise GpubenchError(f"an input length must be >= 1 token, got {n}")
    base = len(tok.encode(head)) if head else 0
    target = base + n
    words = list(rng.choice(_WORDS, size=n + 8))
    text = " " + " ".join(words) if head else " ".join(words)
    ids = tok.encode(head + text)
    while len(ids) < target:
        text += " " + " ".join(rng.choice(_WORDS, size=n))
        ids = tok.encode(head + text)
    for _ in range(20):
        full = tok.decode(ids[:target])
        if not full.startswith(head):
            raise GpubenchError("the tokenizer does not round-trip text; pass another tokenizer")
        body = full[len(head) :]
        ids = tok.encode(head + body)
        if len(ids) == target:
            return body
        if len(ids) < target:
            ids = tok.encode(head + body + " " + str(rng.choice(_WORDS)))
    raise GpubenchError(f"could not make a prompt of exactly {n} tokens with this tokenizer")


def vary(length: int, ratio: float, rng: np.random.Generator) -> int:
    if ratio <= 0:
        return length
    low, high = max(1, int(length * (1 - ratio))), max(1, int(length * (1 + ratio)))
    return int(rng.integers(low, high + 1))


@dataclass(frozen=True)
class PromptFileEntry:
    messages: list[dict[str, Any]] | None
    prompt: str | None
    max_tokens: int | None


def read_prompt_file(path: str | Path) -> list[PromptFileEntry]:
    """JSONL: one ``{"messages": [...]}`` or ``{"prompt": "..."}`` per line, optionally
    ``"max_tokens"``. Blank lines are skipped; anything else names the file and line."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise GpubenchError(f"prompt file {p} does not exist")
    entries = []
    for lineno, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise GpubenchError(f"{p}:{lineno}: not JSON ({exc.msg})") from None
        if not isinstance(obj, dict) or not (
            isinstance(obj.get("messages"), list) or isinstance(obj.get("prompt"), str)
        ):
            raise GpubenchError(
                f'{p}:{lineno}: each line needs "messages" (a list of chat messages) or '
                '"prompt" (a string)'
            )
        mt = obj.get("max_tokens")
        if mt is not None and (not isinstance(mt, int) or mt < 1):
            raise GpubenchError(f"{p}:{lineno}: max_tokens must be a positive integer")
        entries.append(PromptFileEntry(obj.get("messages"), obj.get("prompt"), mt))
    if not entries:
        raise GpubenchError(f"prompt file {p} holds no prompts")
    return entries


@dataclass(frozen=True)
class Workload:
    """The request mix of one benchmark (everything except how fast it is sent)."""

    input_len: int = 1000
    output_len: int = 300
    range_ratio: float = 0.0
    prefix_len: int = 0
    endpoint: Endpoint = "completions"
    images: int = 0
    image_buckets: Mapping[tuple[int, int], float] | None = None
    image_format: str = "jpeg"
    prompts_file: str | Path | None = None
    preset: str | None = None
    ignore_eos: bool = True
    seed: int = 42
    extra: dict[str, Any] = field(default_factory=dict)
    dataset: str | Path | None = None  # conversations: see serving/datasets.py
    dataset_columns: Mapping[str, str] | None = None
    dataset_split: str | None = None
    multi_turn: bool = False
    max_turns: int | None = None
    trace_file: str | Path | None = None  # arrival times and lengths per request
    trace_time_scale: float = 1.0  # arrival times x this (0.5: the trace twice as fast)

    def __post_init__(self) -> None:
        if self.endpoint not in ("completions", "chat"):
            raise GpubenchError(f"endpoint must be 'completions' or 'chat', got {self.endpoint!r}")
        if self.output_len < 1:
            raise GpubenchError(f"output_len must be >= 1, got {self.output_len}")
        if not 0 <= self.range_ratio < 1:
            raise GpubenchError(f"range_ratio must be in [0, 1), got {self.range_ratio}")
        if self.prefix_len < 0:
            raise GpubenchError(f"prefix_len must be >= 0, got {self.prefix_len}")
        if self.images < 0:
            raise GpubenchError(f"images must be >= 0, got {self.images}")
        if self.images and self.endpoint != "chat":
            raise GpubenchError("images need endpoint='chat' (images travel in chat messages)")
        if self.preset is not None and self.preset not in PRESETS:
            raise GpubenchError(f"unknown preset {self.preset!r}; known: {', '.join(PRESETS)}")
        if self.preset and self.prompts_file:
            raise GpubenchError("give either preset or prompts_file, not both")
        sources = [
            name
            for name, v in (
                ("preset", self.preset),
                ("prompts_file", self.prompts_file),
                ("dataset", self.dataset),
                ("trace_file", self.trace_file),
            )
            if v is not None
        ]
        if len(sources) > 1:
            raise GpubenchError(f"give one of {' and '.join(sources)}, not both")
        if self.multi_turn and self.dataset is None:
            raise GpubenchError("multi_turn needs dataset= (a file of conversations)")
        if self.multi_turn and self.endpoint != "chat":
            raise GpubenchError("multi_turn needs endpoint='chat' (the history is chat messages)")
        if (self.dataset is not None or self.trace_file is not None) and self.images:
            raise GpubenchError("images cannot be added to a dataset or trace workload")
        if not self.trace_time_scale > 0:
            raise GpubenchError(f"trace_time_scale must be > 0, got {self.trace_time_scale}")

    @property
    def random_text(self) -> bool:
        return self.preset is None and self.prompts_file is None and self.dataset is None

    @property
    def needs_tokenizer(self) -> bool:
        """Random text (exact lengths), and datasets (each reply's length in tokens)."""
        return self.random_text or self.dataset is not None


@dataclass(frozen=True)
class ConversationSpec:
    """One multi-turn conversation: its turns go one after another, each carrying the whole
    history so far (the system prompt, the earlier user turns and the replies the server
    generated for them; ``run.run_conversation``)."""

    index: int  # the conversation's position in the dataset
    system: str | None
    turns: tuple[tuple[str, int], ...]  # (user message, max_tokens = the recorded reply's tokens)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def turn_spec(self, turn: int, messages: list[dict[str, Any]]) -> RequestSpec:
        """The request of turn ``turn`` (1-based) after the history ``messages``."""
        user, max_tokens = self.turns[turn - 1]
        body = {"messages": [*messages, {"role": "user", "content": user}], **self.extra}
        return RequestSpec("chat", body, max_tokens, None, 0, turn=turn, conversation=self.index)


class RequestFactory:
    """Builds the i-th request of a workload, reproducibly (seed + stream + draw).

    ``draw`` names one set of requests: each measured point, re-measurement and round is a
    draw of its own (``ServeBench`` numbers them), so no set re-sends another's prompts. A
    server with a prefix cache (llama.cpp's slots and its host prompt cache, vLLM's prefix
    caching) serves a prompt it has seen without prefill; on the H200 a capacity search that
    re-sent one point's prompts at the next measured prefill on 48 of 224 requests only.
    ``nonce`` changes the text and images but not the lengths: the same lengths every run
    (comparable with a baseline), text a long-lived server has not seen in an earlier run.
    ``skip``: a dataset's conversations start after the rows earlier draws took (a dataset
    smaller than all the draws together wraps, and its prompts are then sent again)."""

    def __init__(
        self,
        workload: Workload,
        tokenizer: Tokenizer | None,
        stream: int = 0,
        draw: Sequence[int] = (),
        nonce: int | None = None,
        skip: int = 0,
    ) -> None:
        self.w = workload
        self.skip = skip  # dataset rows earlier draws took: this one starts after them
        self.tok = tokenizer
        key = [workload.seed, stream, *draw]
        self.rng = np.random.default_rng(key)  # lengths (and, without a nonce, the text)
        self.draw = (*draw, *(() if nonce is None else (nonce,)))
        self.text_rng = np.random.default_rng([*key, nonce]) if nonce is not None else self.rng
        self.images = (
            ImageSource(
                workload.image_buckets,
                workload.image_format,
                seed=[workload.seed * 7919 + stream, *self.draw],
            )
            if workload.images
            else None
        )
        self.entries = read_prompt_file(workload.prompts_file) if workload.prompts_file else None
        self.stream = stream
        self.conversations: tuple[Conversation, ...] | None = None
        if workload.dataset is not None:
            if tokenizer is None:
                raise GpubenchError("dataset workloads need a tokenizer (to count reply tokens)")
            self.conversations = read_conversations(
                workload.dataset, workload.dataset_columns, workload.dataset_split
            )
        self.trace = read_trace(workload.trace_file) if workload.trace_file else None
        self.blocks: dict[int, str] = {}
        self.prefix = ""
        if workload.random_text:
            if tokenizer is None:
                raise GpubenchError("random text workloads need a tokenizer")
            if workload.prefix_len:
                # the shared prefix is the same for every stream (warm-ups included)
                self.prefix = exact_text(
                    tokenizer, workload.prefix_len, np.random.default_rng([workload.seed, 99991])
                )
        self.count = 0

    def _content(self, text: str) -> str | list[dict[str, Any]]:
        if not self.images:
            return text
        parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
        parts += [
            {"type": "image_url", "image_url": {"url": url}}
            for url in self.images.next_urls(self.w.images)
        ]
        return parts

    def next(self) -> RequestSpec:
        w = self.w
        i = self.count
        self.count += 1
        extra = dict(w.extra)
        if w.ignore_eos:
            extra["ignore_eos"] = True
        if self.conversations is not None:
            return self._conversation(i, extra)
        if self.trace is not None:
            return self._trace_request(i, extra)
        if self.entries is not None:
            entry = self.entries[i % len(self.entries)]
            max_tokens = entry.max_tokens or w.output_len
            if entry.messages is not None:
                body = {"messages": entry.messages, **extra}
                return RequestSpec("chat", body, max_tokens, None, 0)
            return self._wrap(entry.prompt or "", max_tokens, None, extra)
        if w.preset is not None:
            return self._wrap(PRESETS[w.preset], w.output_len, None, extra)
        assert self.tok is not None
        n_in = vary(w.input_len, w.range_ratio, self.rng)
        n_out = vary(w.output_len, w.range_ratio, self.rng)
        body_text = exact_text(self.tok, n_in, self.text_rng, head=self.prefix)
        return self._wrap(self.prefix + body_text, n_out, w.prefix_len + n_in, extra)

    def _wrap(self, text: str, max_tokens: int, n_in: int | None, extra: dict) -> RequestSpec:
        if self.w.endpoint == "chat":
            body = {"messages": [{"role": "user", "content": self._content(text)}], **extra}
            return RequestSpec("chat", body, max_tokens, n_in, self.w.images)
        return RequestSpec("completions", {"prompt": text, **extra}, max_tokens, n_in, 0)

    def take(self, n: int) -> list[RequestSpec]:
        """``n`` requests (a trace: at most its number of rows, each sent once)."""
        if self.trace is not None:
            n = min(n, len(self.trace))
        return [self.next() for _ in range(n)]

    # -- datasets --------------------------------------------------------------------------
    def _tokens(self, text: str) -> int:
        assert self.tok is not None
        return len(self.tok.encode(text)) if text else 0

    def _conversation(self, i: int, extra: dict) -> Any:
        """The i-th conversation: the measured requests (stream 0) take the dataset from its
        start, warm-ups from its end, so warm-ups do not pre-fill the measured prompts."""
        convs = self.conversations
        assert convs is not None
        j = (self.skip + i) % len(convs)
        conv = convs[j] if self.stream == 0 else convs[-1 - j]
        w = self.w
        if w.multi_turn:
            turns = conv.turns[: w.max_turns] if w.max_turns else conv.turns
            return ConversationSpec(
                conv.index,
                conv.system,
                tuple((t.user, max(1, self._tokens(t.reply))) for t in turns),
                extra,
            )
        first = conv.turns[0]
        max_tokens = max(1, self._tokens(first.reply))
        if w.endpoint == "chat":
            messages = [{"role": "system", "content": conv.system}] if conv.system else []
            messages.append({"role": "user", "content": first.user})
            return RequestSpec("chat", {"messages": messages, **extra}, max_tokens, None, 0)
        prompt = f"{conv.system}\n\n{first.user}" if conv.system else first.user
        return RequestSpec(
            "completions", {"prompt": prompt, **extra}, max_tokens, self._tokens(prompt), 0
        )

    def _trace_request(self, i: int, extra: dict) -> RequestSpec:
        """Row i of the trace: random text of its input length (its hash blocks shared with
        the rows that name them), its output length, its arrival time scaled."""
        assert self.trace is not None and self.tok is not None
        row = self.trace[i % len(self.trace)]
        w = self.w
        ids = row.hash_ids
        full = max(0, min(len(ids) - 1, (row.input_len - 1) // MOONCAKE_BLOCK)) if ids else 0
        head = " ".join(self._block(h) for h in ids[:full])
        # the last, partial block: the same text for the rows that name the same block
        tail_rng = (
            block_rng(w.seed, self.stream, ids[full], tail=True, draw=self.draw)
            if ids
            else self.text_rng
        )
        tail = exact_text(self.tok, row.input_len - full * MOONCAKE_BLOCK, tail_rng, head=head)
        text = head + tail
        n_in = self._tokens(text) if head else row.input_len
        arrival = row.arrival_s * w.trace_time_scale if self.stream == 0 else None
        spec = self._wrap(text, row.output_len, n_in, extra)
        return RequestSpec(
            spec.endpoint, spec.body, spec.max_tokens, spec.input_tokens, 0, arrival=arrival
        )

    def _block(self, block: int) -> str:
        if block not in self.blocks:
            assert self.tok is not None
            rng = block_rng(self.w.seed, self.stream, block, draw=self.draw)
            self.blocks[block] = exact_text(self.tok, MOONCAKE_BLOCK, rng)
        return self.blocks[block]


def depth_requests(
    tokenizer: Tokenizer,
    depths: Sequence[int],
    output_len: int,
    per_depth: int,
    seed: int,
    endpoint: Endpoint = "completions",
    draw: Sequence[int] = (),
    nonce: int | None = None,
) -> dict[int, list[RequestSpec]]:
    """A prompt-depth sweep (like llama-bench's ``-d``): per depth, prompts of that many
    tokens, each followed by ``output_len`` generated tokens (``draw``, ``nonce``: see
    ``RequestFactory``)."""
    out = {}
    for d in depths:
        w = Workload(input_len=max(1, int(d)), output_len=output_len, endpoint=endpoint, seed=seed)
        f = RequestFactory(w, tokenizer, stream=1000 + int(d), draw=draw, nonce=nonce)
        out[int(d)] = f.take(per_depth)
    return out
