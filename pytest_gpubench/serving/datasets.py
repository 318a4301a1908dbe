"""Workloads from real data, all read locally (nothing is downloaded).

Conversations (``dataset=``):

- a ShareGPT-format JSON file: a list of ``{"conversations": [{"from": "human", "value":
  ...}, {"from": "gpt", "value": ...}, ...]}`` (``ShareGPT_V3_unfiltered_cleaned_split.json``);
- a folder written by Hugging Face ``datasets``' ``save_to_disk`` (read with
  ``load_from_disk``), or a ``.parquet`` / ``.jsonl`` / ``.csv`` file read through
  ``datasets``;

each record one conversation: a ShareGPT ``conversations`` column, an OpenAI-style
``messages`` column (``role`` / ``content``), or a prompt column and a reply column (the first
of ``prompt``, ``instruction``, ``question``, ``input`` and of ``completion``, ``response``,
``output``, ``answer``; ``dataset_columns={"prompt": ..., "reply": ...}`` names others). A
turn is a user message and the recorded reply that followed it; the reply's token count is
the turn's output length (forced with ``ignore_eos``, as ``vllm bench serve``'s ShareGPT
dataset does). Single-turn workloads send each conversation's first turn; ``multi_turn``
sends every turn, each with the whole history so far (system prompt, earlier user turns and
the replies the server actually generated), so a server's prefix cache is used as it is for
chat users.

Traces (``trace_file=``): one request per row, sent at the row's arrival time (scaled by
``trace_time_scale``) with random text of the row's input length and the row's output length:

- Mooncake's JSONL (``{"timestamp": ms, "input_length": n, "output_length": n, "hash_ids":
  [...]}``; ``hash_ids`` name 512-token blocks, and rows sharing a block id share that block's
  text, so the trace's prefix reuse reaches the server's cache);
- BurstGPT's CSV (``Timestamp`` in s, ``Request tokens``, ``Response tokens``; rows with 0
  response tokens are failed requests in that trace and are skipped).

Every problem with a file (missing, unreadable, no usable column) is one ``GpubenchError``
naming the file and what to pass instead.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pytest_gpubench.errors import GpubenchError

PROMPT_COLUMNS = ("prompt", "instruction", "question", "input")
REPLY_COLUMNS = ("completion", "response", "output", "answer")
_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "chatgpt": "assistant",
    "bard": "assistant",
    "bing": "assistant",
    "assistant": "assistant",
    "model": "assistant",
    "system": "system",
}
MOONCAKE_BLOCK = 512  # tokens per hash_id block in the Mooncake traces
PER_TURN_METRICS = ("ttft_ms", "tpot_ms", "e2el_ms", "input_tokens")
MAX_TURN_METRICS = 10  # per-turn metrics for turns 1..10 (a ShareGPT chat can run to 100+)
DATASET_HELP = (
    "pass a ShareGPT-format .json file, a folder saved with datasets' save_to_disk, or a "
    ".parquet / .jsonl / .csv file"
)


@dataclass(frozen=True)
class Turn:
    user: str  # the user message's text
    reply: str  # the reply recorded in the dataset (its token count is the output length)


@dataclass(frozen=True)
class Conversation:
    turns: tuple[Turn, ...]
    system: str | None = None
    index: int = 0  # the record's position in the dataset


@dataclass(frozen=True)
class TraceRow:
    arrival_s: float  # seconds after the trace's first request (unscaled)
    input_len: int
    output_len: int
    hash_ids: tuple[int, ...] = ()
    row: int = 0  # the row's number in the file (1-based), for messages about it


# -- conversations ---------------------------------------------------------------------------
def _text(value: Any) -> str | None:
    """A message's text: a string, or the text parts of an OpenAI content list."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = [p.get("text") for p in value if isinstance(p, dict)]
        texts = [p for p in parts if isinstance(p, str)]
        return " ".join(texts) if texts else None
    return None


def _from_messages(messages: Any) -> tuple[str | None, list[Turn]] | None:
    """ShareGPT (``from``/``value``) or OpenAI (``role``/``content``) messages -> turns; None
    when the value is not a list of messages at all."""
    if not isinstance(messages, list):
        return None
    system: str | None = None
    turns: list[Turn] = []
    pending: str | None = None
    for m in messages:
        if not isinstance(m, dict):
            return None
        role = _ROLES.get(str(m.get("from", m.get("role", ""))).lower())
        text = _text(m.get("value", m.get("content")))
        if role is None or text is None:
            continue  # tool calls, images-only messages: not text turns
        if role == "system":
            if not turns and pending is None:
                system = text
        elif role == "user":
            pending = text if pending is None else pending + "\n" + text
        elif pending is not None:  # an assistant reply to the pending user message
            turns.append(Turn(pending, text))
            pending = None
    return system, turns


def _columns(path: Path, names: Sequence[str], columns: Mapping[str, str] | None) -> dict:
    """Which columns hold the conversation: {"messages": col} or {"prompt": c, "reply": c}."""
    cols = dict(columns or {})
    unknown = set(cols) - {"conversations", "messages", "prompt", "reply", "system"}
    if unknown:
        raise GpubenchError(
            f"dataset_columns has unknown keys {sorted(unknown)}; use 'conversations' (or "
            "'messages'), or 'prompt' and 'reply' (and optionally 'system')"
        )
    for key, col in cols.items():
        if col not in names:
            raise GpubenchError(
                f"dataset {path}: dataset_columns[{key!r}] = {col!r} is not a column; its "
                f"columns are {sorted(names)}"
            )
    conv = cols.get("conversations") or cols.get("messages")
    if conv:
        return {"messages": conv}
    if "prompt" in cols or "reply" in cols:
        prompt = cols.get("prompt") or next((c for c in PROMPT_COLUMNS if c in names), None)
        reply = cols.get("reply") or next((c for c in REPLY_COLUMNS if c in names), None)
    else:
        for c in ("conversations", "messages", "conversation"):
            if c in names:
                return {"messages": c}
        prompt = next((c for c in PROMPT_COLUMNS if c in names), None)
        reply = next((c for c in REPLY_COLUMNS if c in names), None)
    if prompt and reply:
        return {"prompt": prompt, "reply": reply, "system": cols.get("system")}
    raise GpubenchError(
        f"dataset {path} has no conversation column: its columns are {sorted(names)}; it needs "
        "'conversations' (ShareGPT) or 'messages' (role/content), or a prompt and a reply "
        f"column ({' / '.join(PROMPT_COLUMNS)} and {' / '.join(REPLY_COLUMNS)}); name yours "
        "with dataset_columns={'prompt': ..., 'reply': ...}"
    )


def _read_records(path: Path, split: str | None) -> list[dict[str, Any]]:
    if not path.exists():
        raise GpubenchError(f"dataset {path} does not exist; {DATASET_HELP}")
    if path.is_file() and path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise GpubenchError(
                f"dataset {path} is not JSON ({exc}); a ShareGPT file is one JSON list of "
                '{"conversations": [...]} (for one record per line, name it .jsonl)'
            ) from None
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            data = data["data"]
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise GpubenchError(
                f"dataset {path} must be a JSON list of records such as "
                '{"conversations": [{"from": "human", "value": "..."}, ...]}'
            )
        return data
    try:
        import datasets
    except ImportError:
        raise GpubenchError(
            f"dataset {path} needs the 'datasets' package (pip install datasets), or give a "
            "ShareGPT-format .json file"
        ) from None
    try:
        if path.is_dir():
            ds = datasets.load_from_disk(str(path))
        else:
            builder = {".parquet": "parquet", ".jsonl": "json", ".csv": "csv"}.get(path.suffix)
            if builder is None:
                raise GpubenchError(f"dataset {path}: unknown file type; {DATASET_HELP}")
            ds = datasets.load_dataset(builder, data_files=str(path), split="train")
    except GpubenchError:
        raise
    except Exception as exc:  # datasets raises many kinds; all mean "cannot read this"
        raise GpubenchError(
            f"dataset {path} could not be read by datasets ({type(exc).__name__}: "
            f"{str(exc)[:200]}); {DATASET_HELP}"
        ) from None
    if isinstance(ds, datasets.DatasetDict):
        if split is None:
            split = "train" if "train" in ds else (next(iter(ds)) if len(ds) == 1 else None)
        if split not in ds:
            raise GpubenchError(
                f"dataset {path} holds the splits {sorted(ds)}; choose one with dataset_split='...'"
            )
        ds = ds[split]
    return list(ds)


@functools.lru_cache(maxsize=4)
def _load(path: Path, mtime: float, columns: tuple, split: str | None) -> tuple:
    records = _read_records(path, split)
    if not records:
        raise GpubenchError(f"dataset {path} holds no records")
    cols = _columns(path, list(records[0]), dict(columns) or None)
    out = []
    for i, rec in enumerate(records):
        if "messages" in cols:
            found = _from_messages(rec.get(cols["messages"]))
            if found is None:
                continue
            system, turns = found
        else:
            prompt, reply = _text(rec.get(cols["prompt"])), _text(rec.get(cols["reply"]))
            if not prompt or reply is None:
                continue
            system = _text(rec.get(cols["system"])) if cols.get("system") else None
            turns = [Turn(prompt, reply)]
        turns = [t for t in turns if t.user.strip()]
        if turns:
            out.append(Conversation(tuple(turns), system, i))
    if not out:
        raise GpubenchError(
            f"dataset {path} has {len(records)} records but none with a user message followed by "
            "a reply; check dataset_columns"
        )
    return tuple(out)


def read_conversations(
    path: str | Path, columns: Mapping[str, str] | None = None, split: str | None = None
) -> tuple[Conversation, ...]:
    """Every usable conversation of a dataset, in its order (cached per file and mtime)."""
    p = Path(path).expanduser().resolve()
    mtime = p.stat().st_mtime if p.exists() else 0.0
    return _load(p, mtime, tuple(sorted((columns or {}).items())), split)


# -- traces ----------------------------------------------------------------------------------
_TRACE_SHAPES = (
    # (timestamp column, seconds per unit, input column, output column)
    ("timestamp", 1e-3, "input_length", "output_length"),  # Mooncake (ms)
    ("Timestamp", 1.0, "Request tokens", "Response tokens"),  # BurstGPT (s)
)
TRACE_HELP = (
    "a trace needs Mooncake's columns (timestamp in ms, input_length, output_length, optional "
    "hash_ids) or BurstGPT's (Timestamp in s, Request tokens, Response tokens)"
)
# The most tokens a trace row may ask for in or out: the longest context windows published
# (Llama 4 Scout's 10M). A length of 1e15 was accepted and sent as max_tokens.
MAX_TRACE_TOKENS = 10_000_000
# The longest replay a test may ask for (the arrival of the last row sent, scaled). A row at
# 1e12 s held the replay, waiting for it, until an outside timeout killed pytest.
MAX_REPLAY_S = 7 * 24 * 3600.0


def _trace_text(path: Path) -> str:
    """The file as text; not UTF-8 is one line naming the file, the line and the fix."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise GpubenchError(
            f"trace file {path}, line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); "
            "save it as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
        ) from None


def _trace_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise GpubenchError(f"trace file {path} does not exist; {TRACE_HELP}")
    text = _trace_text(path)
    if path.suffix == ".csv":
        try:
            return list(csv.DictReader(io.StringIO(text, newline="")))
        except csv.Error as exc:
            raise GpubenchError(f"trace file {path}: not CSV ({exc}); {TRACE_HELP}") from None
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError) as exc:
            why = getattr(exc, "msg", "nested too deeply")
            raise GpubenchError(
                f"{path}:{lineno}: not JSON ({why}); a trace is JSONL (one object a line) or CSV"
            ) from None
        if not isinstance(obj, dict):
            raise GpubenchError(f"{path}:{lineno}: each line must be a JSON object")
        rows.append(obj)
    return rows


def _number(path: Path, row: int, col: str, value: Any, whole: bool) -> float:
    """A finite number >= 0 (a length: whole, at most MAX_TRACE_TOKENS); JSON's ``true`` is
    not one (Python reads it as 1), nor is ``inf``/``nan`` (a replay due at inf never ends)."""
    try:
        v = math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        v = math.nan
    top = MAX_TRACE_TOKENS if whole else math.inf
    if not (math.isfinite(v) and 0 <= v <= top) or (whole and v != int(v)):
        kind = f"a whole number from 0 to {MAX_TRACE_TOKENS:,}" if whole else "a finite number >= 0"
        raise GpubenchError(f"trace file {path}, row {row}: {col!r} must be {kind}, got {value!r}")
    return v


def read_trace(path: str | Path) -> tuple[TraceRow, ...]:
    """The trace's rows sorted by arrival, times in seconds from the first arrival (cached
    per file and mtime: ``serve_bench`` reads it again to check the replay's length)."""
    p = Path(path).expanduser()
    return _read_trace(p, p.stat().st_mtime if p.is_file() else 0.0)


@functools.lru_cache(maxsize=4)
def _read_trace(p: Path, mtime: float) -> tuple[TraceRow, ...]:
    raw = _trace_rows(p)
    if not raw:
        raise GpubenchError(f"trace file {p} holds no rows")
    names = set(raw[0])
    shape = next((s for s in _TRACE_SHAPES if {s[0], s[2], s[3]} <= names), None)
    if shape is None:
        raise GpubenchError(f"trace file {p} has the columns {sorted(names)}; {TRACE_HELP}")
    ts_col, unit, in_col, out_col = shape
    rows = []
    for i, r in enumerate(raw, 1):
        out_len = int(_number(p, i, out_col, r.get(out_col), True))
        if out_len == 0:
            continue  # BurstGPT: a failed request
        in_len = int(_number(p, i, in_col, r.get(in_col), True))
        if in_len == 0:
            continue
        hashes = r.get("hash_ids") or ()
        if not isinstance(hashes, list | tuple) or not all(isinstance(h, int) for h in hashes):
            raise GpubenchError(f"trace file {p}, row {i}: hash_ids must be a list of integers")
        t = _number(p, i, ts_col, r.get(ts_col), False) * unit
        rows.append(TraceRow(t, in_len, out_len, tuple(hashes), i))
    if not rows:
        raise GpubenchError(f"trace file {p} has no row with input and output tokens")
    rows.sort(key=lambda r: r.arrival_s)
    t0 = rows[0].arrival_s
    return tuple(
        TraceRow(r.arrival_s - t0, r.input_len, r.output_len, r.hash_ids, r.row) for r in rows
    )


def _span(seconds: float) -> str:
    """A replay's length as a person reads it: '45 s', '2.5 h', '11.6 days', '3.2e+04 years'."""
    for unit, size in (("years", 365 * 86400.0), ("days", 86400.0), ("h", 3600.0)):
        if seconds >= 2 * size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"


def check_replay(
    path: str | Path,
    time_scale: float,
    rows_sent: int,
    rounds: int = 1,
    budgets: Mapping[str, float | None] | None = None,
) -> str | None:
    """Whether the replay of the trace's first ``rows_sent`` rows can run: a
    ``GpubenchError`` naming the row when it would pass MAX_REPLAY_S, else a warning when
    it (``rounds`` times over) would pass one of ``budgets`` (name -> seconds; None: none),
    else None."""
    trace = read_trace(path)
    last = trace[max(min(rows_sent, len(trace)), 1) - 1]
    span = last.arrival_s * time_scale
    arrives = (
        f"row {last.row} arrives {last.arrival_s:.4g} s after the first row, so the replay "
        f"would run {_span(span)} (trace_time_scale={time_scale:g})"
    )
    if span > MAX_REPLAY_S:
        raise GpubenchError(
            f"trace file {path}: {arrives}, past the {_span(MAX_REPLAY_S)} a replay may run; "
            "correct the row's timestamp, send fewer rows (num_prompts=) or pass a smaller "
            "trace_time_scale"
        )
    total = span * rounds
    for name, budget in (budgets or {}).items():
        if budget is not None and total > budget:
            times = f" x {rounds} rounds" if rounds > 1 else ""
            return (
                f"trace file {path}: {arrives}{times}, longer than {name}={budget:g} s; "
                "send fewer rows (num_prompts=) or pass a smaller trace_time_scale"
            )
    return None


def pytest_timeout_of(node: Any) -> float | None:
    """The timeout pytest-timeout puts on this test (its marker, else --timeout, the ini's
    ``timeout`` or PYTEST_TIMEOUT), in seconds; None without pytest-timeout or a timeout. A
    replay longer than it is killed mid-run, so ``serve_bench`` warns before it starts."""
    try:
        import pytest_timeout

        timeout = pytest_timeout._get_item_settings(node).timeout  # its own precedence
    except Exception:  # not installed, or its private helper changed: no budget known
        return None
    return float(timeout) if timeout else None


def block_rng(
    seed: int, stream: int, block: int, tail: bool = False, draw: Sequence[int] = ()
) -> np.random.Generator:
    """The generator of one hash block's text: the same block id gives the same text within a
    stream (the measured requests); warm-ups (another stream) never pre-fill those blocks, and
    another ``draw`` (the trace replayed for another point or round) never pre-fills them."""
    return np.random.default_rng([seed, stream, 8 if tail else 7, abs(int(block)), *draw])


# -- what a dataset or trace run records -----------------------------------------------------
def data_info(w: Any) -> dict[str, Any]:
    """The data source of a ``Workload``, for ``extra_info["serving"]`` (only what is set)."""
    out: dict[str, Any] = {}
    if w.dataset is not None:
        out["dataset"] = str(w.dataset)
        if w.dataset_columns:
            out["dataset_columns"] = dict(w.dataset_columns)
        if w.dataset_split:
            out["dataset_split"] = w.dataset_split
        out["multi_turn"] = bool(w.multi_turn)
        if w.multi_turn:
            out["max_turns"] = w.max_turns
    if w.trace_file is not None:
        out["trace_file"] = str(w.trace_file)
        out["trace_time_scale"] = w.trace_time_scale
    return out


def turn_metrics(results: Sequence[Any]) -> dict[str, Any]:
    """Per-turn ``ttft_ms.turn<k>``, ``tpot_ms.turn<k>``, ``e2el_ms.turn<k>`` and
    ``input_tokens.turn<k>`` of multi-turn runs (turns 1..MAX_TURN_METRICS): a later turn
    carries the whole history, so its prompt grows and its TTFT shows the prefix cache."""
    from pytest_gpubench.metrics.core import Metric
    from pytest_gpubench.serving.metrics import distribution, metric

    by_turn: dict[int, list[Any]] = {}
    for r in results:
        if r.spec.turn and r.ok:
            by_turn.setdefault(r.spec.turn, []).append(r)
    out: dict[str, Any] = {}
    for turn in sorted(by_turn)[:MAX_TURN_METRICS]:
        rs = by_turn[turn]
        values: dict[str, list[float]] = {
            "ttft_ms": [r.ttft for r in rs if r.ttft is not None],
            "tpot_ms": [r.tpot for r in rs if r.tpot is not None],
            "e2el_ms": [r.e2el for r in rs if r.e2el is not None],
        }
        found: dict[str, tuple[float, dict]] = {}
        for name, vs in values.items():
            if vs:
                d = distribution(vs)
                found[name] = (d.pop("mean"), d)
        counts = [r.usage_prompt_tokens for r in rs if r.usage_prompt_tokens is not None]
        if counts:
            found["input_tokens"] = (sum(counts) / len(counts), {"n": len(counts)})
        for name, (value, spread) in found.items():
            m = metric(name, value, spread)
            out[f"{name}.turn{turn}"] = Metric(
                f"{name}.turn{turn}",
                m.value,
                m.unit,
                m.higher_is_better,
                m.spread,
                f"{m.description} (turn {turn} of multi-turn conversations)",
            )
    return out


LATE_S = 0.05  # a trace request sent later than this after its arrival time counts as late


def late_trace_message(results: Sequence[Any], concurrency: int | None) -> str | None:
    """A warning when a trace replay could not keep the trace's arrival times (most often:
    the concurrency cap held requests back); None when it did."""
    delays = [r.start - r.scheduled for r in results if r.spec.arrival is not None]
    late = [d for d in delays if d > LATE_S]
    if not late:
        return None
    why = (
        f"waiting for the concurrency cap (concurrency={concurrency}); pass concurrency=None "
        "to replay the trace's arrival times"
        if concurrency is not None
        else "the client could not send them on time (a busy machine)"
    )
    return (
        f"{len(late)} of {len(delays)} trace requests were sent more than {LATE_S * 1000:g} ms "
        f"after their arrival time (up to {max(late):.3g} s late), {why}"
    )
