"""Distributed fine-tuning through torchrun, on this CPU machine with the gloo backend.

Real torchrun, real ranks, a tiny Llama built from a config: what runs on 2 H200s with NCCL
runs here with gloo, only slower.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from plumbing.ci import require_module

torch = require_module("torch", "distributed benchmarks need torch (the test extra installs it)")
transformers = require_module("transformers", "needs transformers (the test extra installs it)")

from pytest_gpubench.distributed.launcher import RankFailure, torchrun  # noqa: E402


def args(config: Path, strategy: str = "ddp", steps: int = 3) -> list[str]:
    return [
        "--config", str(config), "--strategy", strategy,
        "--batch", "2", "--seq", "32", "--steps", str(steps), "--warmup-steps", "1",
    ]  # fmt: skip


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that contain ``text`` (the job's own output folder)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{pid}: {cmdline}")
    return found


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_ranks_report_their_work(tiny_config: Path, tmp_path: Path, strategy: str) -> None:
    run = torchrun(2, args(tiny_config, strategy), tmp_path / "out")
    assert run.world_size == 2 and run.backend == "gloo" and run.strategy == strategy
    assert [r.rank for r in run.ranks] == [0, 1]
    assert all(r.tokens == 3 * 2 * 32 and r.samples == 6 for r in run.ranks)
    assert run.total_tok_s == pytest.approx(2 * 192 / run.seconds)
    assert run.per_gpu_tok_s == pytest.approx(run.total_tok_s / 2)
    assert not processes_mentioning(str(tmp_path / "out"))


def test_failed_rank_fails_with_its_log_tail_and_leaves_nothing(
    tiny_config: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with pytest.raises(RankFailure) as err:
        torchrun(2, args(tiny_config), out, env={"GPUBENCH_FAIL_RANK": "1"})
    message = str(err.value)
    assert "rank 1 failed first" in message
    assert "--- rank 1 log tail" in message
    assert "planted failure on rank 1" in message
    assert not processes_mentioning(str(out))


def test_timeout_stops_every_rank(tiny_config: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    started = time.monotonic()
    with pytest.raises(RankFailure, match="did not finish in 8 s"):
        torchrun(2, args(tiny_config, steps=100_000), out, timeout_s=8)
    assert time.monotonic() - started < 60
    time.sleep(1)
    assert not processes_mentioning(str(out))


def test_killing_pytest_outright_takes_the_ranks_down(
    pytester: pytest.Pytester, tiny_config: Path, tmp_path: Path
) -> None:
    """SIGKILL to the pytest process runs no clean-up code at all: torchrun and its ranks must
    still die (each dies with its parent)."""
    import signal
    import subprocess
    import sys

    out = tmp_path / "killed"
    script = tmp_path / "launch.py"
    script.write_text(
        "from pathlib import Path\n"
        "from pytest_gpubench.distributed.launcher import torchrun\n"
        f"torchrun(2, {args(tiny_config, steps=100_000)!r}, Path({str(out)!r}))\n"
    )
    proc = subprocess.Popen([sys.executable, str(script)])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(out.glob("rank*.log"))) < 2:
        time.sleep(0.5)
    assert len(list(out.glob("rank*.log"))) == 2, "ranks did not start"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and processes_mentioning(str(out)):
        time.sleep(0.5)
    assert not processes_mentioning(str(out))


def test_fixture_runs_the_model_of_a_local_config(pytester: pytest.Pytester, tiny_config: Path):
    pytester.makepyfile(
        f"""
        def test_scaling(distributed_finetune, gpubench):
            one = distributed_finetune(1, model={str(tiny_config)!r}, batch=2, seq=32, steps=2)
            two, _ = gpubench.time(
                lambda: distributed_finetune(2, model={str(tiny_config)!r}, batch=2, seq=32,
                                             steps=2),
                rounds=1, warmup_rounds=0)
            gpubench.metric("scaling_efficiency_pct", 100 * two.scaling_efficiency(one), "%", True)
            assert two.world_size == 2 and one.world_size == 1
            assert two.ranks[1].tokens == 2 * 2 * 32
        """
    )
    pytester.runpytest("--device=cpu").assert_outcomes(passed=1)


def test_fixture_names_an_unknown_keyword_and_passes_node_keywords(
    pytester: pytest.Pytester, tiny_config: Path
):
    """A misspelt keyword is one line naming it; the multi-node ones reach torchrun (a node
    rank outside the job is torchrun's own check, so reaching it proves they were passed)."""
    pytester.makepyfile(
        f"""
        import pytest
        from pytest_gpubench.errors import GpubenchError

        def test_keywords(distributed_finetune):
            with pytest.raises(GpubenchError, match="unknown keyword.s. nodes_rank; .* node_rank"):
                distributed_finetune(1, model={str(tiny_config)!r}, nodes_rank=1)
            with pytest.raises(GpubenchError, match="node_rank must be in 0..1, got 5"):
                distributed_finetune(1, model={str(tiny_config)!r}, nnodes=2, node_rank=5,
                                     rdzv_endpoint="127.0.0.1:1")
        """
    )
    pytester.runpytest("--device=cpu").assert_outcomes(passed=1)


SLEEPY_RANK = """
import argparse, os, time
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--out")
args, _ = parser.parse_known_args()
Path(args.out, f"rank{os.environ['RANK']}.log").write_text("up\\n")
time.sleep(600)
"""


def _next_runs_line(pid: int, timeout_s: float = 15) -> str:
    from pytest_gpubench.launch import reaper

    deadline, lines = time.monotonic() + timeout_s, []
    while time.monotonic() < deadline:
        line = reaper.sweep(reaper.RUN.directory)
        lines.append(line or "")
        if f"(pid {pid}, started " in (line or ""):
            return line
        time.sleep(0.2)
    return " | ".join(x for x in lines if x)


@pytest.mark.parametrize("watchdog", ["watchdog-alive", "watchdog-killed-too"])
def test_ranks_of_any_worker_module_do_not_outlive_a_killed_pytest(
    pytester: pytest.Pytester, tmp_path: Path, watchdog: str
) -> None:
    """A worker module that does not die with its parent (any user's ``module=``): torchrun
    dies with pytest, its ranks (in sessions of their own) are re-parented to init. Measured
    before the run's watchdog existed: both ranks still ran 10 s later. Now the watchdog
    stops them, or the next pytest run's sweep when the watchdog was killed too."""
    import signal
    import subprocess
    import sys

    from plumbing.leftovers import process_tree, running, wait_gone, watchdog_of

    (tmp_path / "sleepy_rank.py").write_text(SLEEPY_RANK)
    out = tmp_path / "killed"
    path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    script = tmp_path / "launch.py"
    script.write_text(
        "from pathlib import Path\n"
        "from pytest_gpubench.distributed.launcher import torchrun\n"
        f"torchrun(2, [], Path({str(out)!r}), module='sleepy_rank',\n"
        f"         env={{'PYTHONPATH': {path!r}}})\n"
    )
    proc = subprocess.Popen([sys.executable, str(script)])
    tree: list = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(list(out.glob("rank*.log"))) < 2:
            time.sleep(0.2)
        assert len(list(out.glob("rank*.log"))) == 2, "ranks did not start"
        # no pause for the watchdog's once-a-second snapshot: the ranks carry the run's tag
        tree = process_tree(proc.pid)
        ranks = [p for p in tree if "torch.distributed.run" not in p.cmdline()]
        assert len(ranks) == 2 and all(os.getsid(r.pid) == r.pid for r in ranks)
        guard = watchdog_of(proc.pid)
        assert guard is not None
        if watchdog == "watchdog-killed-too":
            guard.kill()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if watchdog == "watchdog-alive":
            wait_gone(tree, timeout_s=15)
            line = _next_runs_line(proc.pid)  # what the next run prints (and so consumes)
            assert "its watchdog stopped torchrun pid " in line, line
            return
        time.sleep(2)
        assert len(running(ranks)) == 2  # nothing else stops them
        pytester.makepyfile("def test_x(): pass")
        later = pytester.runpytest_subprocess("-q")
        line = [x for x in later.outlines if x.startswith("gpubench: cleaned up")]
        assert len(line) == 1 and f"(pid {proc.pid}, started " in line[0], later.outlines
        assert "stopped torchrun pid " in line[0]
        assert "(2 ranks) (2 processes: python x2)" in line[0]
        assert not running(tree)
    finally:
        if proc.poll() is None:
            proc.kill()
        for leftover in running(tree):
            leftover.kill()
