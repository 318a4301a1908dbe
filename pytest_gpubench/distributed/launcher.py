"""Launch a distributed job with torchrun as a child of pytest, collect each rank's numbers.

The job runs in its own process session; whatever happens (a failed rank, a timeout, Ctrl-C)
the session is signalled SIGTERM, then SIGKILL after a grace period, and every rank torchrun
started (in sessions of their own) is killed after it. torchrun dies with pytest
(``PR_SET_PDEATHSIG``), and so do ranks that call ``train_worker.die_with_parent``; for any
other worker module, and for a rank still importing when torchrun died, the job is in the run's
record (``pytest_gpubench.launch.reaper``): the run's watchdog, which notes the job's processes
every second, stops them when pytest dies, and the next run's sweep if the watchdog could not.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from pytest_gpubench.distributed.train_worker import die_with_parent
from pytest_gpubench.errors import GpubenchError
from pytest_gpubench.launch import reaper
from pytest_gpubench.launch.groups import stop_group

TAIL_LINES = 50
GRACE_S = 10.0
# Keep NVLink multicast off: on shared hosts a job using it can take the GPUs out of service.
SAFE_ENV = {
    "NCCL_NVLS_ENABLE": "0",
    "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
    "NVSHMEM_DISABLE_NVLS": "1",
}


class RankFailure(Exception):
    """A rank failed or the job timed out; the message carries that rank's log tail."""


@dataclass(frozen=True)
class RankResult:
    rank: int
    tokens: int
    samples: int
    seconds: float
    device: str
    peak_memory_gib: float | None


@dataclass(frozen=True)
class DistributedRun:
    world_size: int
    strategy: str
    backend: str
    ranks: tuple[RankResult, ...]
    wall_s: float
    log_dir: Path

    @property
    def seconds(self) -> float:
        """The job's timed span: every rank waits at a barrier, so the slowest rank's time."""
        return max(r.seconds for r in self.ranks)

    @property
    def total_tok_s(self) -> float:
        return sum(r.tokens for r in self.ranks) / self.seconds

    @property
    def per_gpu_tok_s(self) -> float:
        return self.total_tok_s / self.world_size

    @property
    def total_samples_s(self) -> float:
        return sum(r.samples for r in self.ranks) / self.seconds

    def scaling_efficiency(self, single: DistributedRun) -> float:
        """Throughput over N x the 1-process throughput of the same config (1.0 = linear)."""
        return self.total_tok_s / (self.world_size * single.total_tok_s)


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log written)"


def _ranks(proc: subprocess.Popen) -> list[psutil.Process]:
    """torchrun's descendants (its own exit status is ``proc``'s to collect)."""
    try:
        return psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        return []


def _stop(proc: subprocess.Popen) -> None:
    ranks = _ranks(proc)  # before torchrun goes: ranks have sessions of their own
    stop_group(proc, GRACE_S)
    _, left = psutil.wait_procs(ranks, timeout=5)  # torchrun stops its ranks as it exits
    for rank in left:
        with contextlib.suppress(psutil.Error):
            rank.kill()
    psutil.wait_procs(left, timeout=5)


def root_cause(out_dir: Path, failed: list[int]) -> int:
    """The rank whose error came first (the others were stopped because of it)."""
    errors = []
    for path in out_dir.glob("rank*.error"):
        try:
            errors.append((json.loads(path.read_text())["time"], int(path.stem[4:])))
        except (ValueError, KeyError):
            continue
    return min(errors)[1] if errors else failed[0]


def torchrun(
    nproc: int,
    worker_args: Sequence[str],
    out_dir: Path,
    *,
    module: str = "pytest_gpubench.distributed.train_worker",
    timeout_s: float = 1800,
    env: dict[str, str] | None = None,
    nnodes: int = 1,
    node_rank: int = 0,
    rdzv_endpoint: str | None = None,
    rdzv_id: str = "gpubench",
    join_timeout_s: float = 600,
) -> DistributedRun:
    """Run ``module`` on ``nproc`` local ranks; raise RankFailure with the failed rank's tail.

    ``nnodes > 1``: this is one node of a multi-node job. Every node runs this with the same
    ``rdzv_endpoint`` (``host:port`` of node 0, where torchrun's c10d store listens) and
    ``rdzv_id``; ``join_timeout_s`` is how long the nodes wait for each other.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("rank*"):
        old.unlink()
    nodes = _node_args(nnodes, node_rank, rdzv_endpoint, rdzv_id, join_timeout_s)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        *nodes,
        f"--nproc-per-node={nproc}",
        "-m",
        module,
        *worker_args,
        "--out",
        str(out_dir),
    ]
    start = time.monotonic()
    rc = _run_launcher(cmd, out_dir / "torchrun.log", nproc, timeout_s, env)
    wall = time.monotonic() - start
    results = {int(p.stem[4:]): json.loads(p.read_text()) for p in out_dir.glob("rank*.json")}
    if rc == 0 and len(results) == nproc:
        for path in out_dir.glob("rank*.error"):
            path.unlink()
    else:
        where = (nnodes, node_rank, rdzv_endpoint, rdzv_id, join_timeout_s)
        raise _failure(cmd, out_dir, rc, results, nproc, where)
    ranks = tuple(
        RankResult(
            r["rank"], r["tokens"], r["samples"], r["seconds"], r["device"], r["peak_memory_gib"]
        )
        for r in sorted(results.values(), key=lambda r: r["rank"])
    )
    first = results[min(results)]
    world = int(first.get("world_size", nproc))
    return DistributedRun(world, first["strategy"], first["backend"], ranks, wall, out_dir)


def _node_args(
    nnodes: int, node_rank: int, rdzv_endpoint: str | None, rdzv_id: str, join_timeout_s: float
) -> list[str]:
    """torchrun's arguments for one node of ``nnodes`` (``--standalone`` for a single node)."""
    if nnodes > 1 and not rdzv_endpoint:
        raise GpubenchError(
            f"a {nnodes}-node job needs rdzv_endpoint='host:port' (node 0's address; the same "
            "on every node)"
        )
    if not 0 <= node_rank < nnodes:
        raise GpubenchError(f"node_rank must be in 0..{nnodes - 1}, got {node_rank}")
    if nnodes == 1:
        return ["--standalone"]
    return [
        f"--nnodes={nnodes}",
        f"--node-rank={node_rank}",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint={rdzv_endpoint}",
        f"--rdzv-id={rdzv_id}",
        f"--rdzv-conf=join_timeout={join_timeout_s:g}",
        "--max-restarts=0",
    ]


def _run_launcher(
    cmd: list[str], launcher_log: Path, nproc: int, timeout_s: float, env: dict[str, str] | None
) -> int:
    """Run torchrun in a process group of its own, recorded for the reaper; its exit code.
    Whatever ends the wait (a timeout, Ctrl-C, SIGTERM), the whole group is stopped."""
    record_key = reaper.RUN.new_key()  # its tag marks torchrun and every rank as this run's
    full_env = {**os.environ, **SAFE_ENV, **(env or {}), **reaper.RUN.tag(record_key)}
    with open(launcher_log, "w") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
            start_new_session=True,
            preexec_fn=die_with_parent,  # torchrun dies if pytest is killed outright
        )
        reaper.RUN.add_session(proc.pid, f"torchrun pid {proc.pid} ({nproc} ranks)", record_key)
        try:
            return proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _stop(proc)
            raise RankFailure(
                f"distributed job did not finish in {timeout_s:.0f} s (command: {' '.join(cmd)})"
                f"\n--- torchrun log tail ---\n{tail(launcher_log)}"
            ) from None
        except BaseException:  # Ctrl-C, SIGTERM turned into an exception, a failing fixture
            _stop(proc)
            raise
        finally:
            _stop(proc)
            reaper.RUN.remove(record_key)


def _failure(
    cmd: list[str], out_dir: Path, rc: int, results: dict, nproc: int, where: tuple
) -> RankFailure:
    """The failure of a job that exited non-zero or left ranks without a result: the
    rendezvous that never completed, or the rank that failed first with its log's tail."""
    nnodes, node_rank, rdzv_endpoint, rdzv_id, join_timeout_s = where
    launcher_log = out_dir / "torchrun.log"
    if rc != 0 and nnodes > 1 and "RendezvousTimeoutError" in tail(launcher_log, 200):
        return RankFailure(
            f"node {node_rank}: the {nnodes} nodes did not all join the rendezvous at "
            f"{rdzv_endpoint} (id {rdzv_id!r}) within {join_timeout_s:g} s; start torchrun on "
            f"every node with the same endpoint and id.\ncommand: {' '.join(cmd)}"
        )
    mine = [int(p.stem[4:]) for p in out_dir.glob("rank*.log")] or list(range(nproc))
    failed = sorted(r for r in mine if r not in results) or sorted(mine)
    first = root_cause(out_dir, failed)
    return RankFailure(
        f"distributed job failed (exit code {rc}"
        + (f", node {node_rank} of {nnodes}" if nnodes > 1 else "")
        + f"): rank {first} failed first; rank(s) "
        f"{failed} wrote no result.\n"
        f"command: {' '.join(cmd)}\n"
        f"--- rank {first} log tail ({out_dir / f'rank{first}.log'}) ---\n"
        f"{tail(out_dir / f'rank{first}.log')}\n"
        f"--- torchrun log tail ---\n{tail(launcher_log, 15)}"
    )
