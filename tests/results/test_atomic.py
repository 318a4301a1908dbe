"""The atomic writer keeps file modes and never leaves a temporary file behind for long.

Real files, a real umask, and a real SIGKILL of a writer subprocess caught mid-write.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_gpubench.cli.main import main
from pytest_gpubench.results import atomic, baseline


@pytest.fixture
def umask() -> Iterator[Callable[..., Any]]:
    """Set the process umask for one test; the old one is restored after."""
    old = os.umask(0o022)
    os.umask(old)

    def set_(mask: int) -> None:
        os.umask(mask)

    yield set_
    os.umask(old)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o7777


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("existing", [0o644, 0o640, 0o600, 0o664], ids=oct)
def test_an_existing_file_keeps_its_mode(tmp_path: Path, umask, existing: int) -> None:
    umask(0o077)  # would make a new file 0600: an existing one must not turn into that
    target = tmp_path / "h100.json"
    target.write_text("{}\n")
    target.chmod(existing)
    baseline.write_atomic(target, {"new": 1})
    assert mode(target) == existing
    assert json.loads(target.read_text()) == {"new": 1}


@pytest.mark.parametrize(
    ("mask", "expected"),
    [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)],
    ids=["022", "027", "002"],
)
def test_a_new_file_gets_0666_less_the_umask(tmp_path: Path, umask, mask, expected) -> None:
    umask(mask)
    target = tmp_path / "new" / "h100.json"
    atomic.write_text_atomic(target, "x\n")
    assert mode(target) == expected
    assert leftovers(target.parent) == []


def test_saved_baseline_keeps_644_through_a_pytest_run(pytester: pytest.Pytester, umask) -> None:
    umask(0o022)
    pytester.makepyfile(
        test_m="""
        def test_m(gpubench):
            gpubench.time(lambda: None, rounds=1, warmup_rounds=0)
            gpubench.metric("tok_s", 1.0, "tok/s", True)
        """
    )
    pytester.runpytest("--device=cpu", "--gpubench-save-baseline").assert_outcomes(passed=1)
    path = pytester.path / "baselines" / "cpu.json"
    assert mode(path) == 0o644
    path.chmod(0o664)  # a group-writable baseline a team shares stays so after the next save
    pytester.runpytest("--device=cpu", "--gpubench-save-baseline").assert_outcomes(passed=1)
    assert mode(path) == 0o664
    assert leftovers(path.parent) == []


def test_compare_reports_get_the_umask_mode(tmp_path: Path, umask, capsys) -> None:
    umask(0o022)
    ref = Path(__file__).resolve().parents[2] / "baselines" / "reference"
    out = tmp_path / "out"
    code = main(
        [
            "compare",
            str(ref / "spark.json"),
            str(ref / "rtx4090.json"),
            "--markdown",
            str(out / "c.md"),
            "--csv",
            str(out / "c.csv"),
            "--html",
            str(out / "c.html"),
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert {p.name: mode(p) for p in out.iterdir()} == {
        "c.md": 0o644,
        "c.csv": 0o644,
        "c.html": 0o644,
    }


# A writer that stops inside the write (at fsync: the temp file exists, the rename has not
# happened) and says so, so the test can SIGKILL it at exactly that point.
WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from pytest_gpubench.results import atomic

    def stall(fd):
        print("in-write", flush=True)
        time.sleep(120)

    atomic.os.fsync = stall
    atomic.write_text_atomic(Path(sys.argv[1]), "from the killed writer\\n")
    """
)


@pytest.fixture
def stalled_writer(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    procs: list[subprocess.Popen] = []

    def start(target: Path) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(target)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(Path(atomic.__file__).parents[2])},
        )
        procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline() == "in-write\n"
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_a_writer_killed_mid_write_leaves_nothing_after_the_next_write(
    tmp_path: Path, stalled_writer
) -> None:
    target = tmp_path / "h100.json"
    target.write_text("old\n")
    proc = stalled_writer(target)
    [temp] = leftovers(tmp_path)
    assert temp.startswith(".h100.json.") and temp.endswith(".gpubench.tmp")
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert target.read_text() == "old\n"  # the old file whole
    assert leftovers(tmp_path) == [temp]  # a SIGKILL cannot clean up ...
    atomic.write_text_atomic(target, "new\n")
    assert leftovers(tmp_path) == []  # ... the next write of that file does
    assert target.read_text() == "new\n"


def test_a_live_writers_temp_file_is_left_alone(tmp_path: Path, stalled_writer) -> None:
    target = tmp_path / "h100.json"
    stalled_writer(target)
    theirs = leftovers(tmp_path)
    # another target's leftover, of a writer that died: not this write's business
    other = tmp_path / atomic.temp_name("other.json", 2**22 + 7, "abc")
    other.write_text("x")
    atomic.write_text_atomic(target, "mine\n")
    assert len(theirs) == 1 and (tmp_path / theirs[0]).exists()
    assert other.exists()
    assert target.read_text() == "mine\n"


def test_an_old_temp_file_of_a_reused_pid_is_swept(tmp_path: Path) -> None:
    target = tmp_path / "h100.json"
    stale = tmp_path / atomic.temp_name(target.name, os.getppid(), "abc123")  # a live pid
    stale.write_text("x")
    day_old = time.time() - atomic.STALE_AFTER_S - 60
    os.utime(stale, (day_old, day_old))
    elsewhere = tmp_path / atomic.temp_name(target.name, 2**22 + 7, "abc", host="other-host")
    elsewhere.write_text("x")  # another host's writer (shared file system), pid unknowable
    unrelated = tmp_path / ".h100.json.notes.tmp"  # not ours: never touched
    unrelated.write_text("keep")
    atomic.write_text_atomic(target, "new\n")
    assert leftovers(tmp_path) == sorted([elsewhere.name, unrelated.name])
    os.utime(elsewhere, (day_old, day_old))
    atomic.write_text_atomic(target, "newer\n")
    assert leftovers(tmp_path) == [unrelated.name]
