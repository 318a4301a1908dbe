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


# Linux pids never exceed 2**22 (the largest pid_max the kernel allows): no process has this one
DEAD_PID = 2**22 + 7


@pytest.fixture
def live_pid() -> Iterator[int]:
    """The pid of a live process of this test (a sleeping child), for temp files whose writer is
    still running. The test owns it, so a sweep that signalled it would be seen: it must still
    be running when the test ends."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        yield proc.pid
        assert proc.poll() is None, "the sweep signalled a live writer"
    finally:
        proc.kill()
        proc.wait()


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
    other = tmp_path / atomic.temp_name("other.json", DEAD_PID, "abc")
    other.write_text("x")
    atomic.write_text_atomic(target, "mine\n")
    assert len(theirs) == 1 and (tmp_path / theirs[0]).exists()
    assert other.exists()
    assert target.read_text() == "mine\n"


def test_an_old_temp_file_of_a_reused_pid_is_swept(tmp_path: Path, live_pid: int) -> None:
    target = tmp_path / "h100.json"
    stale = tmp_path / atomic.temp_name(target.name, live_pid, "abc123")  # a live pid
    stale.write_text("x")
    day_old = time.time() - atomic.STALE_AFTER_S - 60
    os.utime(stale, (day_old, day_old))
    elsewhere = tmp_path / atomic.temp_name(target.name, DEAD_PID, "abc", host="other-host")
    elsewhere.write_text("x")  # another host's writer (shared file system), pid unknowable
    unrelated = tmp_path / ".h100.json.notes.tmp"  # not ours: never touched
    unrelated.write_text("keep")
    atomic.write_text_atomic(target, "new\n")
    assert leftovers(tmp_path) == sorted([elsewhere.name, unrelated.name])
    os.utime(elsewhere, (day_old, day_old))
    atomic.write_text_atomic(target, "newer\n")
    assert leftovers(tmp_path) == [unrelated.name]


@pytest.mark.parametrize(
    ("hostname", "expected"),
    [
        ("node7.cluster.example.org", "node7-cluster-example-org"),  # an FQDN: dots replaced
        ("GPU_box.Lab", "GPU-box-Lab"),  # case kept, '_' replaced
        ("n" * 40, "n" * 32),  # cut to 32 characters
        ("", "host"),  # no hostname at all
    ],
)
def test_temp_names_carry_a_file_name_safe_host_and_are_swept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hostname: str, expected: str
) -> None:
    monkeypatch.setattr(atomic.socket, "gethostname", lambda: hostname)
    name = atomic.temp_name("h100.json", 4242, "ab12")
    assert name == f".h100.json.{expected}.4242.ab12.gpubench.tmp"
    # a dead writer of this host left that name: the next write recognises and removes it
    target = tmp_path / "h100.json"
    (tmp_path / atomic.temp_name(target.name, DEAD_PID, "ab12")).write_text("x")
    atomic.write_text_atomic(target, "new\n")
    assert leftovers(tmp_path) == []


def test_one_sweep_of_a_crowded_folder(tmp_path: Path, live_pid: int) -> None:
    """Every kind of file next to a target at once; the sweep removes exactly the stale temp
    files of that target. (Several of each, so a sweep that stopped at the first file it keeps
    would leave some stale ones behind whatever order the folder lists them in.)"""
    target = tmp_path / "h100.json"
    target.write_text("old\n")
    day_old = time.time() - atomic.STALE_AFTER_S - 60

    def make(name: str, old: bool = False) -> Path:
        path = tmp_path / name
        path.write_text("x")
        if old:
            os.utime(path, (day_old, day_old))
        return path

    def temp(pid: int, token: str, host: str | None = None, old: bool = False) -> Path:
        return make(atomic.temp_name(target.name, pid, token, host), old)

    gone = [
        *(temp(DEAD_PID + i, f"d{i}") for i in range(5)),  # this host, writer dead
        *(temp(DEAD_PID + i, f"e{i}", "other-host", old=True) for i in range(5)),  # a day old
        temp(live_pid, "f0", old=True),  # a day old: the pid has been reused
        temp(os.getpid(), "f1", "other-host", old=True),  # another host's, same pid number
    ]
    kept = [
        target,
        *(make(f"notes-{i}.txt") for i in range(20)),
        make(".h100.json.notes.tmp"),
        make(atomic.temp_name("other.json", DEAD_PID, "a0")),  # another target's
        *(temp(DEAD_PID + i, f"b{i}", "other-host") for i in range(5)),  # young, pid unknowable
        *(temp(os.getpid(), f"c{i}") for i in range(5)),  # this process's writes in progress
        temp(os.getpid(), "c9", old=True),  # even a slow one
        *(temp(live_pid, f"a{i}") for i in range(3)),  # a live writer's
        temp(10**30, "a9"),  # a pid no process can have (too large to check): left alone
    ]
    for i in range(3):  # vanishes before it can be looked at (a dangling link): skipped
        dangling = tmp_path / atomic.temp_name(target.name, DEAD_PID, f"9{i}", "other-host")
        dangling.symlink_to(tmp_path / "nowhere")
        kept.append(dangling)
    removed = atomic.sweep_stale(target)
    assert sorted(removed) == sorted(gone)
    assert sorted(tmp_path.iterdir()) == sorted(kept)


def test_missing_folders_are_made_and_bytes_and_text_are_written_exactly(tmp_path: Path) -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\xff"  # not text: written byte for byte
    atomic.write_text_atomic(tmp_path / "a" / "b" / "chart.png", png)
    assert (tmp_path / "a" / "b" / "chart.png").read_bytes() == png
    atomic.write_text_atomic(tmp_path / "a" / "t.md", "TPOT µs — ok\n")
    assert (tmp_path / "a" / "t.md").read_bytes() == b"TPOT \xc2\xb5s \xe2\x80\x94 ok\n"  # UTF-8
    assert leftovers(tmp_path / "a") == [] and leftovers(tmp_path / "a" / "b") == []


def test_a_failed_write_leaves_the_old_file_whole_and_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "h100.json"
    target.write_text("old\n")
    with pytest.raises(TypeError):
        atomic.write_text_atomic(target, 5)  # type: ignore[arg-type]
    assert target.read_text() == "old\n"
    assert leftovers(tmp_path) == []
    folder = tmp_path / "cpu.json"
    folder.mkdir()  # the rename itself fails
    with pytest.raises(IsADirectoryError):
        atomic.write_text_atomic(folder, "new\n")
    assert folder.is_dir() and leftovers(tmp_path) == []


def test_an_existing_temp_name_is_never_written_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """O_EXCL: a file (here a symlink to another file) already at the temp file's name makes
    the write fail; it is not followed and the file it points to is untouched."""
    monkeypatch.setattr(atomic.secrets, "token_hex", lambda n: "abc123")
    target = tmp_path / "h100.json"
    target.write_text("old\n")
    victim = tmp_path / "victim.txt"
    victim.write_text("victim\n")
    (tmp_path / atomic.temp_name(target.name, os.getpid(), "abc123")).symlink_to(victim)
    with pytest.raises(FileExistsError):
        atomic.write_text_atomic(target, "new\n")
    assert victim.read_text() == "victim\n"
    assert target.read_text() == "old\n"


def test_a_temp_file_exactly_a_day_old_is_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a test clock: another host's temp file is kept while younger than STALE_AFTER_S and
    swept from that age on."""
    target = tmp_path / "h100.json"
    theirs = tmp_path / atomic.temp_name(target.name, 4242, "ab", host="other-host")
    theirs.write_text("x")
    written = 1_000_000_000.0
    os.utime(theirs, (written, written))
    monkeypatch.setattr(atomic.time, "time", lambda: written + atomic.STALE_AFTER_S - 1.0)
    assert atomic.sweep_stale(target) == [] and theirs.exists()
    monkeypatch.setattr(atomic.time, "time", lambda: written + atomic.STALE_AFTER_S)
    assert atomic.sweep_stale(target) == [theirs] and not theirs.exists()


def test_a_leftover_already_removed_by_another_sweep_is_no_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two writers sweeping at once: the folder listing can name a dead writer's temp file the
    other writer has just removed. The write goes on (here the listing is made to name one)."""
    target = tmp_path / "h100.json"
    phantom = atomic.temp_name(target.name, DEAD_PID, "ab")
    listdir = os.listdir
    monkeypatch.setattr(atomic.os, "listdir", lambda p: [*listdir(p), phantom])
    atomic.write_text_atomic(target, "new\n")
    monkeypatch.undo()
    assert target.read_text() == "new\n" and leftovers(tmp_path) == []
