"""Two torchrun nodes on this machine: c10d rendezvous, gloo, one rank per node.

Each "node" is its own torchrun launcher (its own agent, its own output folder), joined only
through the rendezvous endpoint, as on two machines; only the address is shared (127.0.0.1).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pytest_gpubench.errors import GpubenchError

from plumbing.ci import require_module

torch = require_module("torch", "distributed benchmarks need torch (the test extra installs it)")
transformers = require_module("transformers", "needs transformers (the test extra installs it)")

from pytest_gpubench.distributed.launcher import RankFailure, torchrun  # noqa: E402
from pytest_gpubench.launch.ports import free_port  # noqa: E402


def free_endpoint() -> str:
    return f"127.0.0.1:{free_port()}"


def args(config: Path, steps: int = 3) -> list[str]:
    return [
        "--config", str(config), "--strategy", "ddp",
        "--batch", "2", "--seq", "32", "--steps", str(steps), "--warmup-steps", "1",
    ]  # fmt: skip


def node(config: Path, out: Path, rank: int, endpoint: str, **kw):
    return torchrun(
        1, args(config), out / f"node{rank}", nnodes=2, node_rank=rank, rdzv_endpoint=endpoint,
        rdzv_id="t", **kw,
    )  # fmt: skip


def test_two_nodes_rendezvous_and_train(tiny_config: Path, tmp_path: Path) -> None:
    endpoint = free_endpoint()
    with ThreadPoolExecutor(2) as pool:
        futures = [
            pool.submit(node, tiny_config, tmp_path, r, endpoint, join_timeout_s=60, timeout_s=120)
            for r in (0, 1)
        ]
        runs = [f.result() for f in futures]
    assert [run.world_size for run in runs] == [2, 2]
    # each node ran one of the two global ranks; together they are ranks 0 and 1
    assert sorted(r.rank for run in runs for r in run.ranks) == [0, 1]
    assert all(r.tokens == 3 * 2 * 32 for run in runs for r in run.ranks)
    assert runs[0].backend == "gloo"


def test_a_node_that_never_joins_times_out_with_one_message(
    tiny_config: Path, tmp_path: Path
) -> None:
    started = time.monotonic()
    with pytest.raises(RankFailure) as err:
        node(tiny_config, tmp_path, 0, free_endpoint(), join_timeout_s=5, timeout_s=60)
    assert time.monotonic() - started < 45
    message = str(err.value)
    assert message.startswith("node 0: the 2 nodes did not all join the rendezvous at 127.0.0.1:")
    assert "within 5 s" in message


def test_a_rank_that_dies_stops_both_nodes(tiny_config: Path, tmp_path: Path) -> None:
    endpoint = free_endpoint()
    env = {"GPUBENCH_FAIL_RANK": "1"}  # global rank 1 raises at step 1
    started = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        futures = [
            pool.submit(
                node, tiny_config, tmp_path, r, endpoint, join_timeout_s=60, timeout_s=90, env=env
            )
            for r in (0, 1)
        ]
        errors = []
        for f in futures:
            with pytest.raises(RankFailure) as err:
                f.result()
            errors.append(str(err.value))
    assert time.monotonic() - started < 85  # stopped by the failure, not by the timeout
    planted = [e for e in errors if "planted failure on rank 1" in e]
    assert len(planted) == 1, errors  # the node that ran rank 1 reports it, with its log tail
    assert "rank 1 failed first" in planted[0]


def test_a_multi_node_job_needs_an_endpoint(tiny_config: Path, tmp_path: Path) -> None:
    with pytest.raises(GpubenchError, match="needs rdzv_endpoint='host:port'"):
        torchrun(1, args(tiny_config), tmp_path, nnodes=2)
    with pytest.raises(GpubenchError, match=r"node_rank must be in 0\.\.1, got 2"):
        torchrun(1, args(tiny_config), tmp_path, nnodes=2, node_rank=2, rdzv_endpoint="h:1")
