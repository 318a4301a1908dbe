"""transformers inference: prefill and decode throughput at a batch size, eager or compiled.

Default model: a Llama-3.1-8B-Instruct-shaped model (random weights unless the checkpoint is
cached), 512 prompt tokens, 128 new tokens, greedy. Two modes:

- ``eager``: a dynamic KV cache, no compilation (plain ``generate()``).
- ``static``: a static KV cache; on CUDA, ``generate()`` then compiles the decoding step with
  ``torch.compile`` (transformers' auto-compile, CUDA graphs). On CPU the static cache runs
  without compilation (inductor takes minutes to compile on a small CPU); results record
  ``compiled``.
- ``loop``: not ``generate()`` but our greedy loop over the same static cache and compiled step,
  with no host sync per token (workloads/decode_loop.py): what the GPU does when the host
  keeps ahead of it. Labelled as such in results; ``static`` stays the plain-transformers figure.

Work is identical whatever the weights: prompts are fixed random token ids, and every sequence
generates exactly ``output_len`` tokens (``min_new_tokens == max_new_tokens``, so end-of-sequence
cannot stop it early; checked after each call).

Timing: each round is one ``generate()``; a streamer stamps the first generated token (after a
device sync: generate hands tokens to it via ``.cpu()``). Prefill tok/s is prompt tokens over
the time to that first token; decode tok/s is the remaining generated tokens over the rest.
Energy per output token is the timed rounds' NVML energy (prefill included: it is the price of
the answer) over the tokens they generated; ``output_tokens_per_j`` is its inverse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from transformers.generation.streamers import BaseStreamer

from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.metrics.stats import rate_interval, spread_of, summarize
from pytest_gpubench.workloads import memory
from pytest_gpubench.workloads.base import (
    InProcessWorkload,
    causal_lm,
    now,
    parameter_count,
    record_peak_memory,
    record_roofline,
)
from pytest_gpubench.workloads.decode_loop import GreedyLoop

MODES = ("eager", "static", "loop")


@dataclass
class GenerateSettings:
    model: str = "meta-llama/Llama-3.1-8B-Instruct"
    size: str = "full"
    weights: str = "auto"
    batch_size: int = 1
    input_len: int = 512
    output_len: int = 128
    mode: str = "eager"
    compile: bool | None = None  # None: compile the static-cache decode step on CUDA only
    rounds: int = 3
    warmup_rounds: int = 1
    attn_implementation: str = "sdpa"
    seed: int = 0
    device: str | None = None
    dtype: str | None = None
    threads: int | None = None  # CPU intra-op threads; default 1 for tiny models on CPU


class _FirstToken(BaseStreamer):
    """Stamps when the first generated token reaches the host (the prompt comes first)."""

    def __init__(self) -> None:
        self.puts = 0
        self.first: float | None = None

    def put(self, value: torch.Tensor) -> None:
        self.puts += 1
        if self.puts == 2:
            self.first = now(torch.device("cpu"))  # value was copied with .cpu(): synced

    def end(self) -> None:
        pass


@dataclass
class GenerateResult:
    prefill_seconds: list[float]
    decode_seconds: list[float]
    tokens_in: int  # per round, all sequences
    tokens_out: int
    compiled: bool


class Generate(InProcessWorkload[GenerateSettings, GenerateResult]):
    """One inference benchmark: ``run`` times ``generate()`` rounds on the resident model."""

    name = "generate"

    def __init__(self, settings: GenerateSettings) -> None:
        s = settings
        if s.mode not in MODES:
            raise GpubenchError(f"mode={s.mode!r} must be one of {', '.join(MODES)}")
        if min(s.batch_size, s.input_len, s.rounds) < 1 or s.output_len < 2:
            raise GpubenchError(
                "generate needs batch_size, input_len, rounds >= 1 and output_len >= 2"
            )
        super().__init__(s)
        self.compiled = s.mode in ("static", "loop") and (
            s.compile if s.compile is not None else self.device.type == "cuda"
        )

    def _model(self):
        attn = self.settings.attn_implementation

        def build():
            return causal_lm(self.source, self.device, self.dtype, attn_implementation=attn).eval()

        return self.resident_model("causal_lm", build, attn)

    def _inputs(self, vocab: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.settings.seed)
        ids = torch.randint(
            3, vocab, (self.settings.batch_size, self.settings.input_len), generator=g
        )
        return ids.to(self.device)

    def _generate_kwargs(self) -> dict[str, Any]:
        from transformers import CompileConfig

        s = self.settings
        kwargs: dict[str, Any] = {
            "max_new_tokens": s.output_len,
            "min_new_tokens": s.output_len,  # end-of-sequence cannot end a sequence early
            "do_sample": False,
            "pad_token_id": 0,
        }
        if s.mode == "static":
            kwargs["cache_implementation"] = "static"
            if self.compiled:
                config = CompileConfig()
                config._compile_all_devices = self.device.type != "cuda"
                kwargs["compile_config"] = config
            else:
                kwargs["disable_compile"] = True
        return kwargs

    def _run(self, gpubench: Any) -> GenerateResult:
        s = self.settings
        model = self._model()
        ids = self._inputs(model.config.vocab_size)
        mask = torch.ones_like(ids)
        kwargs = self._generate_kwargs()
        prefill: list[float] = []
        decode: list[float] = []
        loop = (
            GreedyLoop(model, s.input_len + s.output_len, compiled=self.compiled)
            if s.mode == "loop"
            else None
        )

        def one_round() -> torch.Tensor:
            streamer = _FirstToken()
            start = now(self.device)
            if loop is not None:

                def first() -> None:
                    streamer.first = now(self.device)

                out = loop.generate(ids, s.output_len, first)
            else:
                with torch.inference_mode():
                    out = model.generate(
                        input_ids=ids, attention_mask=mask, streamer=streamer, **kwargs
                    )
            end = now(self.device)
            if out.shape[1] != s.input_len + s.output_len:
                raise RuntimeError(
                    f"generated {out.shape[1] - s.input_len} tokens, not {s.output_len}: "
                    "the work would not be comparable"
                )
            assert streamer.first is not None
            prefill.append(streamer.first - start)
            decode.append(end - streamer.first)
            return out

        memory.reset_peak()
        _, times = gpubench.time(one_round, rounds=s.rounds, warmup_rounds=s.warmup_rounds)
        prefill, decode = prefill[s.warmup_rounds :], decode[s.warmup_rounds :]
        result = GenerateResult(
            prefill, decode, s.batch_size * s.input_len, s.batch_size * s.output_len, self.compiled
        )
        self.record_info(
            gpubench,
            {
                "threads": self.threads,
                "parameters": parameter_count(model),
                "compiled": self.compiled,
                "decode_path": "greedy loop, no per-token sync" if loop else "generate()",
                "attn_implementation": getattr(model.config, "_attn_implementation", None),
            },
        )
        if times:
            self._record(gpubench, result)
            record_roofline(
                gpubench,
                self.source,
                decode_tok_s=result_rate(result.tokens_out - s.batch_size, result.decode_seconds),
                batch=s.batch_size,
                context=s.input_len + s.output_len // 2,
                tokens_per_s=result_rate(result.tokens_in, result.prefill_seconds),
                seq=s.input_len,
                dtype=self.dtype_name.replace("bfloat16", "bf16").replace("float16", "fp16"),
            )
        return result

    def _record(self, gpubench: Any, r: GenerateResult) -> None:
        bs = self.settings.batch_size
        decoded = bs * (self.settings.output_len - 1)  # the first new token belongs to prefill
        for name, work, secs, what in (
            (
                "prefill_tok_per_s",
                r.tokens_in,
                r.prefill_seconds,
                "prompt tokens / time to first token",
            ),
            (
                "decode_tok_per_s",
                decoded,
                r.decode_seconds,
                "generated tokens after the first / their time",
            ),
        ):
            t = summarize(secs)
            low, high = rate_interval(work, t)
            gpubench.metric(
                name,
                work / t.mean,
                "tok/s",
                True,
                spread={
                    "rounds": t.n,
                    "median": work / t.median,
                    "min": work / t.max,
                    "max": work / t.min,
                    "ci95_low": low,
                    "ci95_high": high,
                },
                headline=True,
                description=f"{what}; batch {bs}",
            )
        ttft = summarize(r.prefill_seconds)
        gpubench.metric(
            "time_to_first_token_s",
            ttft.mean,
            "s",
            False,
            spread=spread_of(ttft, ("ci95_low", "ci95_high")),
        )
        if "energy_j" in gpubench.telemetry and r.decode_seconds:
            tokens = r.tokens_out * len(r.decode_seconds)
            joules = gpubench.telemetry["energy_j"]
            what = f"NVML energy of {len(r.decode_seconds)} timed rounds, {tokens} tokens out"
            gpubench.metric(
                "energy_per_output_token_j",
                joules / tokens,
                "J/tok",
                False,
                headline=True,
                description=what,
            )
            gpubench.metric("output_tokens_per_j", tokens / joules, "tok/J", True, description=what)
        record_peak_memory(gpubench)


def result_rate(work: float, seconds: list[float]) -> float:
    """Total work over total time (not the mean of per-round rates)."""
    return work * len(seconds) / sum(seconds) if seconds and sum(seconds) > 0 else 0.0
