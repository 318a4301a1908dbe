"""Where the time of an 8B batch-1 decode step goes, on the GPU machine (issue 15, part 3).

Llama-3.1-8B-shaped bf16 model with random weights, 512 prompt tokens, 128 new, batch 1. Each
variant takes away one cost, so the differences account for it:

  generate_streamer  generate(), static cache + torch.compile, our first-token streamer (the
                     benchmark's ``static`` mode as it stood)
  generate_plain     the same without a streamer (what the streamer's per-token .cpu() costs)
  loop_eager         our greedy loop (workloads/decode_loop.py), no compile, no per-token sync
  loop_compiled      the same loop with the compiled step (CUDA graphs): the ``loop`` mode

(A replay-only variant, the compiled step on fixed inputs, overran the static cache's 640
positions on the H200 run of 2026-12-01: the cache counts positions itself in transformers
5.17. It is gone; the ``loop`` benchmark's 97% GPU busy says the same: the host is no longer
in the way, the rest is the kernels' own efficiency.)

Usage on the GPU machine: ``python3 scripts/gpu/decode_breakdown.py $OUT/decode.json``.
"""

from __future__ import annotations

import json
import sys
import time

import torch

from pytest_gpubench.devices import load_profiles
from pytest_gpubench.metrics import roofline
from pytest_gpubench.models.catalog import load_spec
from pytest_gpubench.workloads.base import ModelSource, causal_lm
from pytest_gpubench.workloads.decode_loop import GreedyLoop

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
IN, NEW, ROUNDS = 512, 128, 3


def main(out_path: str) -> None:
    t_start = time.time()
    dev = torch.device("cuda")
    source = ModelSource.resolve(MODEL, "full", "random")
    model = causal_lm(source, dev, torch.bfloat16, attn_implementation="sdpa").eval()
    ids = torch.randint(3, model.config.vocab_size, (1, IN), device=dev)
    spec, _ = load_spec(MODEL)
    bw = load_profiles().get("h200").bandwidth_gbs
    bound = roofline.decode_bound(spec, "bf16", bw, batch=1, context=IN + NEW // 2).tokens_per_s
    results: dict[str, dict] = {"bound_tok_s": {"value": bound, "bandwidth_gbs": bw}}

    # prefill alone (eager), to take out of the whole-call times that have no first-token stamp
    with torch.inference_mode():
        model(input_ids=ids)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(3):
            model(input_ids=ids)
        torch.cuda.synchronize()
    prefill_s = (time.perf_counter() - t0) / 3
    results["prefill_s"] = {"value": prefill_s}

    def record(name: str, decode_s: list[float], compile_s: float, tokens=None) -> None:
        rate = (NEW - 1) * len(decode_s) / sum(decode_s)
        results[name] = {
            "decode_tok_s": rate,
            "ms_per_token": 1000 / rate,
            "pct_of_bound": 100 * rate / bound,
            "rounds": decode_s,
            "first_call_s": compile_s,
        }
        if tokens is not None:
            results[name]["tokens"] = tokens[0, IN:].tolist()
        print(
            f"{name:18s} {rate:7.1f} tok/s  {1000 / rate:6.2f} ms/token  "
            f"{100 * rate / bound:5.1f}% of {bound:.0f}  (first call {compile_s:.0f} s)",
            flush=True,
        )

    from transformers import CompileConfig

    def generate(streamer: bool):
        from transformers.generation.streamers import BaseStreamer

        class First(BaseStreamer):
            def __init__(self):
                self.n, self.t = 0, None

            def put(self, value):
                self.n += 1
                if self.n == 2:
                    self.t = time.perf_counter()

            def end(self):
                pass

        kwargs = dict(
            max_new_tokens=NEW,
            min_new_tokens=NEW,
            do_sample=False,
            pad_token_id=0,
            cache_implementation="static",
            compile_config=CompileConfig(),
        )
        times, out, first_call = [], None, 0.0
        for i in range(ROUNDS + 1):
            s = First() if streamer else None
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            with torch.inference_mode():
                out = model.generate(
                    input_ids=ids, attention_mask=torch.ones_like(ids), streamer=s, **kwargs
                )
            torch.cuda.synchronize()
            t1 = time.perf_counter()
            if i == 0:
                first_call = t1 - t0
                continue
            times.append(t1 - s.t if streamer else t1 - t0 - prefill_s)
        return times, first_call, out

    def loop_times(loop: GreedyLoop):
        times, out, first_call = [], None, 0.0
        for i in range(ROUNDS + 1):
            stamp: dict[str, float] = {}

            def first(stamp=stamp):
                torch.cuda.synchronize()
                stamp["t"] = time.perf_counter()

            torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = loop.generate(ids, NEW, first)
            torch.cuda.synchronize()
            t1 = time.perf_counter()
            if i == 0:
                first_call = t1 - t0
                continue
            times.append(t1 - stamp["t"])
        return times, first_call, out

    t, c, out = generate(streamer=True)
    record("generate_streamer", t, c, out)
    t, c, _ = generate(streamer=False)
    record("generate_plain", t, c)
    del out
    torch.cuda.empty_cache()

    eager = GreedyLoop(model, IN + NEW, compiled=False)
    t, c, out = loop_times(eager)
    record("loop_eager", t, c, out)
    del eager
    compiled = GreedyLoop(model, IN + NEW, compiled=True)
    t, c, out = loop_times(compiled)
    record("loop_compiled", t, c, out)

    a, b = results["generate_streamer"]["tokens"], results["loop_compiled"]["tokens"]
    same = [x == y for x, y in zip(a, b, strict=True)]
    results["tokens_agree_first_n"] = same.index(False) if False in same else len(same)
    results["versions"] = {
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
    }
    results["seconds"] = time.time() - t_start
    print("tokens agree for the first", results["tokens_agree_first_n"], "of", NEW)
    with open(out_path, "w") as fh:
        json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "decode.json")
