"""The documentation's lists that come from data (device profiles, the devices table, the fit
breakdown and matrix, the serving metric table, the options table) are what
scripts/readme_lists.py writes into the pages under docs/."""

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
        pytest.fail(f"the docs are stale: run `{script.COMMAND}`\n{shown}", pytrace=False)


def _texts(script) -> dict[Path, str]:
    return {path: path.read_text() for path in script.pages()}


def test_a_changed_profile_shows_as_stale() -> None:
    script = _script()
    texts = _texts(script)
    page = next(path for path, text in texts.items() if "`mac-mini-m4-pro`, " in text)
    texts[page] = texts[page].replace("`mac-mini-m4-pro`, ", "", 1)
    assert any(line.startswith("+") and "mac-mini-m4-pro" in line for line in script.diff(texts))


def test_a_changed_option_shows_as_stale() -> None:
    script = _script()
    texts = _texts(script)
    page = next(path for path, text in texts.items() if "<!-- generated: options" in text)
    row = "| `GPUBENCH_SERVER_TIMEOUT` |"
    assert row in texts[page]
    texts[page] = texts[page].replace(row, "| `GPUBENCH_TIMEOUT` |", 1)
    changed = [line for line in script.diff(texts) if line.startswith("+")]
    assert any("GPUBENCH_SERVER_TIMEOUT" in line for line in changed)


def test_every_block_lives_in_exactly_one_page() -> None:
    script = _script()
    texts = _texts(script)
    page = next(path for path, text in texts.items() if "<!-- generated: options" in text)
    block = texts[page][texts[page].index("<!-- generated: options") :]
    block = block[: block.index(script.END) + len(script.END)]
    with pytest.raises(ValueError, match="block 'options' appears in"):
        script.diff({**texts, Path("extra.md"): block + "\n"})
    with pytest.raises(ValueError, match="no page has a generated block for options"):
        script.diff({**texts, page: texts[page].replace(block, "")})
