"""A disk that refuses the save: one line naming the file, the summary printed, nothing damaged.

Real pytest runs (subprocesses) and real write errors: a "full disk" is the kernel's file size
limit (``RLIMIT_FSIZE``: a write past it fails with EFBIG, as one past a full disk fails with
ENOSPC, through the same code path; Python ignores the SIGXFSZ that would otherwise kill the
writer). It needs no root and no mount. A folder that cannot exist is a path below a file
(ENOTDIR), which root cannot bypass as it bypasses a chmod.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from plumbing.leftovers import inner_pytest_argv

ONE_BENCHMARK = """
def test_m(gpubench):
    gpubench.time(lambda: None, rounds=1, warmup_rounds=0)
    gpubench.metric("tok_s", 123.0, "tok/s", True, headline=True)
"""


def run_pytest(folder: Path, *args: str, max_file_bytes: int | None = None):
    def limit() -> None:
        if max_file_bytes is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))

    return subprocess.run(
        inner_pytest_argv("-p", "no:cacheprovider", "--device=cpu", *args, "test_m.py"),
        cwd=folder, capture_output=True, text=True, preexec_fn=limit, timeout=300,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


def test_a_full_disk_during_the_save_keeps_the_file_and_prints_the_summary(
    tmp_path: Path,
) -> None:
    (tmp_path / "test_m.py").write_text(ONE_BENCHMARK)
    saves = ("--gpubench-save-baseline=b.json", "--benchmark-storage=file://pb",
             "--benchmark-save=run", "--benchmark-json=run.json")  # fmt: skip
    first = run_pytest(tmp_path, *saves)
    assert first.returncode == 0, first.stdout + first.stderr
    before = (tmp_path / "b.json").read_bytes()
    json_before = (tmp_path / "run.json").read_bytes()
    stored = sorted((tmp_path / "pb").glob("*/*.json"))
    assert [p.name for p in stored] == ["0001_run.json"]

    # every file this run writes stops at half the smaller file's size: each write fails
    limit = min(len(before), len(json_before)) // 2
    full = run_pytest(tmp_path, *saves, max_file_bytes=limit)
    out = full.stdout + full.stderr
    assert "Traceback" not in out and "INTERNALERROR" not in out, out
    assert "gpubench results on cpu" in out, out  # the summary still prints
    path = tmp_path / "b.json"
    assert (
        f"gpubench baseline NOT saved, the stored file is unchanged: cannot write {path}: "
        "File too large" in out
    ), out
    assert "gpubench: benchmark data not saved: cannot write" in out, out
    assert "gpubench: benchmark JSON not written: cannot write run.json: File too large" in out
    assert (tmp_path / "run.json").read_bytes() == json_before
    assert "gpubench baseline saved" not in out, out
    assert full.returncode == 1, out  # a save was asked for and did not happen
    assert path.read_bytes() == before
    # no half-written file anywhere: pytest-benchmark's storage holds only the first run's
    assert sorted(p.name for p in (tmp_path / "pb").rglob("*.json")) == ["0001_run.json"]
    assert json.loads(stored[0].read_text())["benchmarks"][0]["fullname"] == "test_m.py::test_m"
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_an_unwritable_save_target_fails_before_the_run(tmp_path: Path) -> None:
    (tmp_path / "test_m.py").write_text(ONE_BENCHMARK + "\nopen('ran', 'w').close()\n")
    (tmp_path / "a-file").write_text("not a folder\n")
    target = tmp_path / "a-file" / "b.json"
    result = run_pytest(tmp_path, f"--gpubench-save-baseline={target}")
    out = result.stdout + result.stderr
    assert result.returncode == 4, out  # a usage error, before any test ran
    assert "Traceback" not in out, out
    errors = [line for line in out.splitlines() if "cannot write" in line]
    assert errors == [f"ERROR: cannot write {target}: Not a directory: {tmp_path / 'a-file'}"], out
    assert not (tmp_path / "ran").exists()


def as_unprivileged() -> list[str]:
    """A command prefix that runs as an ordinary user: root ignores folder permissions, so
    under root the inner run drops to ``nobody`` (util-linux ``setpriv``)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: a read-only folder cannot refuse root")
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def test_a_read_only_folder_fails_before_the_run() -> None:
    # in the system's temporary folder: pytest's own is private to root, so nobody could run
    # in it; its subfolder "shared" is read-only for everyone but root
    with tempfile.TemporaryDirectory() as name:
        here = Path(name)
        here.chmod(0o755)
        folder = here / "shared"
        folder.mkdir(mode=0o555)
        (here / "test_m.py").write_text(ONE_BENCHMARK)
        target = folder / "b.json"
        result = subprocess.run(
            as_unprivileged() + inner_pytest_argv("-p", "no:cacheprovider", "--device=cpu",
                                                  f"--gpubench-save-baseline={target}",
                                                  "test_m.py"),
            cwd=here, capture_output=True, text=True, timeout=300,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )  # fmt: skip
        out = result.stdout + result.stderr
        assert result.returncode == 4, out
        assert "Traceback" not in out, out
        errors = [line for line in out.splitlines() if "cannot write" in line]
        assert errors == [f"ERROR: cannot write {target}: Permission denied: {folder}"], out
        assert list(folder.iterdir()) == []
