"""One rank of a distributed fine-tune: DDP or FSDP (FSDP2 ``fully_shard``) over torchrun.

Run by ``torchrun ... -m pytest_gpubench.distributed.train_worker``; every rank builds the
same model from its config with random weights (throughput does not depend on the values),
trains on synthetic token batches, and writes ``rank<R>.json`` with what it processed and how
long the timed steps took. Output goes to ``rank<R>.log`` so a failed rank's tail can be shown.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path

FAIL_RANK_ENV = "GPUBENCH_FAIL_RANK"  # fault injection for tests: this rank raises at step 1


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this rank when torchrun dies, so no rank outlives its launcher
    (torchrun starts ranks in their own sessions, out of reach of a process-group kill)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        return
    if os.getppid() == 1:
        os._exit(1)


def redirect_output(out: Path, rank: int) -> None:
    log = open(out / f"rank{rank}.log", "a", buffering=1)  # noqa: SIM115 - lives for the process
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    sys.stdout = sys.stderr = log


def build_model(config_path: str, torch, device):
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(config_path)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    torch.manual_seed(0)  # same initial weights on every rank
    model = AutoModelForCausalLM.from_config(config, torch_dtype=dtype)
    return model.to(device), config


def wrap(model, strategy: str, torch, device):
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for layer in model.model.layers:
            fully_shard(layer)
        fully_shard(model)
        return model
    raise SystemExit(f"unknown strategy {strategy!r}: ddp or fsdp")


def _parser() -> argparse.ArgumentParser:
    """The worker's command line, as ``launcher.torchrun`` builds it."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True, help="config.json or model folder")
    parser.add_argument("--strategy", choices=["ddp", "fsdp"], default="ddp")
    parser.add_argument("--batch", type=int, default=8, help="sequences per rank per step")
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup-steps", type=int, default=2)
    parser.add_argument("--out", required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    die_with_parent()
    rank = int(os.environ["RANK"])
    world = int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    out = Path(args.out)
    redirect_output(out, rank)
    try:
        import torch
        import torch.distributed as dist

        cuda = torch.cuda.is_available()
        device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
        if cuda:
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if cuda else "gloo")
        model, config = build_model(args.config, torch, device)
        model = wrap(model, args.strategy, torch, device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
        generator = torch.Generator().manual_seed(1000 + rank)

        def step(i: int) -> None:
            if os.environ.get(FAIL_RANK_ENV) == str(rank) and i == 1:
                raise RuntimeError(f"planted failure on rank {rank} (env {FAIL_RANK_ENV})")
            ids = torch.randint(0, config.vocab_size, (args.batch, args.seq), generator=generator)
            ids = ids.to(device)
            loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        def sync() -> None:
            if cuda:
                torch.cuda.synchronize()
            dist.barrier()

        for i in range(args.warmup_steps):
            step(i)
        sync()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        for i in range(args.steps):
            step(args.warmup_steps + i)
        sync()
        seconds = time.perf_counter() - start
        result = {
            "rank": rank,
            "world_size": world,
            "strategy": args.strategy,
            "backend": dist.get_backend(),
            "device": torch.cuda.get_device_name(device) if cuda else "cpu",
            "steps": args.steps,
            "samples": args.steps * args.batch,
            "tokens": args.steps * args.batch * args.seq,
            "seconds": seconds,
            "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None,
        }
        tmp = out / f".rank{rank}.json.tmp"
        tmp.write_text(json.dumps(result))
        tmp.replace(out / f"rank{rank}.json")
        dist.barrier()  # no rank tears gloo down while another still talks to it
        dist.destroy_process_group()
        return 0
    except BaseException as exc:
        # When one rank fails, torchrun stops the others; the earliest error names the culprit.
        (out / f"rank{rank}.error").write_text(
            json.dumps({"time": time.time(), "error": repr(exc)})
        )
        traceback.print_exc()
        sys.stdout.flush()
        raise


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: gloo's C++ threads could abort it ("terminate called without
    # an active exception", SIGABRT) after the rank had finished and written its result, which
    # torchrun then reported as that rank's failure (seen 1 in 2 runs on the 2-core machine).
    os._exit(code)
