"""The ``distributed_finetune`` fixture: the fine-tune workload on N local GPUs via torchrun."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_gpubench.distributed.launcher import DistributedRun, torchrun
from pytest_gpubench.errors import GpubenchError


def config_folder(model: str, into: Path) -> Path:
    """A folder holding the model's config.json (the catalog's copy, or a local one)."""
    from pytest_gpubench.models.catalog import resolve_model

    resolved = resolve_model(model)
    into.mkdir(parents=True, exist_ok=True)
    config = json.loads(resolved.config_path.read_text())
    config = {k: v for k, v in config.items() if not k.startswith("_")}  # catalog notes
    (into / "config.json").write_text(json.dumps(config))
    return into


@pytest.fixture
def distributed_finetune(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Callable[..., DistributedRun]:
    """``distributed_finetune(nproc, strategy="ddp", model=None, batch=8, seq=512, steps=20)``.

    Several machines: ``nnodes=2, node_rank=0|1, rdzv_endpoint="node0:29400"`` on each (the
    same endpoint and ``rdzv_id``): torchrun's c10d rendezvous; ``nproc`` is per node.

    The model defaults to the test's ``@pytest.mark.model``; each rank builds it from its
    config with random weights. A failed rank raises ``RankFailure`` with its log tail.
    """
    counter = iter(range(1_000))

    def run(
        nproc: int,
        strategy: str = "ddp",
        *,
        model: str | None = None,
        batch: int = 8,
        seq: int = 512,
        steps: int = 20,
        warmup_steps: int = 3,
        timeout_s: float = 1800,
        nnodes: int = 1,
        node_rank: int = 0,
        rdzv_endpoint: str | None = None,
        rdzv_id: str = "gpubench",
        join_timeout_s: float = 600,
    ) -> DistributedRun:
        if model is None:
            mark = request.node.get_closest_marker("model")
            if mark is None or not mark.args:
                raise GpubenchError(
                    f"{request.node.nodeid}: distributed_finetune needs model= or "
                    "@pytest.mark.model(...)"
                )
            model = str(mark.args[0])
        folder = config_folder(model, tmp_path / "config")
        worker_args = [
            "--config", str(folder), "--strategy", strategy, "--batch", str(batch),
            "--seq", str(seq), "--steps", str(steps), "--warmup-steps", str(warmup_steps),
        ]  # fmt: skip
        return torchrun(
            nproc, worker_args, tmp_path / f"run{next(counter)}", timeout_s=timeout_s,
            nnodes=nnodes, node_rank=node_rank, rdzv_endpoint=rdzv_endpoint, rdzv_id=rdzv_id,
            join_timeout_s=join_timeout_s,
        )  # fmt: skip

    return run
