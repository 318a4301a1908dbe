"""The documentation site builds in strict mode: every page in the navigation, every link and
anchor found (mkdocs.yml's ``validation``), the Material theme installed.

mkdocs comes with the ``test`` extra; without it this skips with the reason, and under CI=true
it fails, since CI installs the extra (tests/plumbing/ci.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from plumbing.ci import require_module

ROOT = Path(__file__).resolve().parents[2]


def test_site_builds_in_strict_mode(tmp_path: Path) -> None:
    require_module("mkdocs", "the documentation site needs mkdocs (pip install -e '.[test]')")
    require_module("material", "the site's theme needs mkdocs-material (pip install -e '.[test]')")
    # not -q: mkdocs counts strict mode's warnings only where it logs them
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "index.html").exists()
    assert (tmp_path / "site" / "extending" / "example-engine" / "index.html").exists()


def test_raw_run_logs_stay_out_of_the_site() -> None:
    """docs/ holds pages and what they show; run logs and result files live in archive/."""
    raw = [
        path.relative_to(ROOT)
        for path in (ROOT / "docs").rglob("*")
        if path.suffix in {".log", ".txt", ".json", ".jsonl"}
    ]
    assert not raw, f"move raw run files to archive/: {raw}"
