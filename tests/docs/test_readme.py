"""The README stays a five-minute read, and its set-up and test commands are the ones CI runs
(.ci/run runs them exactly)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _command_under(heading: str) -> str:
    found = re.search(rf"^## {heading}\n.*?```bash\n(.*?)\n```", README, re.S | re.M)
    assert found, f"README has no command under '## {heading}'"
    return found.group(1)


def test_readme_is_short() -> None:
    assert len(README.splitlines()) <= 250


def test_set_up_and_test_commands_are_what_ci_runs() -> None:
    ci = [
        line
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line and not line.startswith(("#", "set ", "cd "))
    ]
    set_up = _command_under("Set up").split(" && ")
    assert ci == [*set_up, _command_under("Test")]
    assert _command_under("Test") == "python -m pytest tests"


def test_readme_links_to_pages_that_exist() -> None:
    links = re.findall(r"\]\((docs/[^)#]+)", README)
    assert len(links) >= 15
    missing = [link for link in links if not (ROOT / link).exists()]
    assert not missing, missing
