"""The README's lists that come from data (device profiles, the devices table, the fit
breakdown and matrix, the serving metric table) are what scripts/readme_lists.py writes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "readme_lists.py"


def _script():
    spec = importlib.util.spec_from_file_location("readme_lists", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_lists_are_generated_from_the_data() -> None:
    script = _script()
    changes = script.diff()
    shown = "\n".join(changes[:60]) + ("\n..." if len(changes) > 60 else "")
    if changes:
        pytest.fail(f"README.md is stale: run `{script.COMMAND}`\n{shown}", pytrace=False)


def test_a_changed_profile_shows_as_stale(tmp_path: Path) -> None:
    script = _script()
    readme = tmp_path / "README.md"
    text = script.README.read_text()
    readme.write_text(text.replace("`mac-mini-m4-pro`, ", "", 1))
    assert any(line.startswith("+") and "mac-mini-m4-pro" in line for line in script.diff(readme))
