"""Every code example in README.md and docs/ runs in the test suite, as written.

Complete examples (conftest and benchmark files) run through pytester with the arguments and
outcomes their page gives; examples that need a GPU, an engine or weights run as
``--gpubench-plan`` (collection, marker checks and the fit estimate, nothing started), the
rest for real on this machine (the stub server stands in for an inference server where a page
says so). Fragments (calls inside a test) are compiled. Every block says which it is: a complete
example file behind ``<!-- example NAME -->``, run by each ``<!-- run NAME: ARGS => OUTCOMES -->``
of its page; a fragment behind ``<!-- fragment: why -->``; shell as ``bash`` or ``console``;
output as ``text`` (docs/development/tests.md, "The documentation").
"""

from __future__ import annotations

import os
import re
import shlex
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w-]*)\s*$")
MARK = re.compile(r"^<!-- (?P<kind>example|fragment)\b:? ?(?P<name>[\w-]*).*-->$")
RUN = re.compile(r"^<!-- run (?P<name>[\w-]+): (?P<args>.*?) => (?P<expect>.*?) -->$")
FILE_LINE = re.compile(r"^# (?P<file>[\w/]+\.py)$")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    kind: str | None  # "example", "fragment" or None (no marker right before the fence)
    name: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def file(self) -> str | None:
        """The file name an example block names on its first line."""
        first = self.code.splitlines()[0] if self.code else ""
        found = FILE_LINE.match(first)
        return found["file"] if found else None


@dataclass(frozen=True)
class Run:
    page: Path
    name: str
    args: str
    expect: str


def blocks(page: Path) -> list[Block]:
    lines = page.read_text().splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent = opening["indent"]
        end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
        code = textwrap.dedent("\n".join(line[len(indent) :] for line in lines[i + 1 : end]))
        previous = [line.strip() for line in lines[:i] if line.strip()]
        before = previous[-1] if previous else ""  # the marker: the line before, blanks aside
        mark = MARK.match(before)
        found.append(
            Block(
                page,
                i + 1,
                opening["lang"],
                code + "\n",
                mark["kind"] if mark else None,
                mark["name"] if mark else "",
            )
        )
        i = end + 1
    return found


def runs(page: Path) -> list[Run]:
    return [
        Run(page, m["name"], m["args"], m["expect"])
        for line in page.read_text().splitlines()
        if (m := RUN.match(line.strip()))
    ]


def every_block() -> list[Block]:
    return [block for page in PAGES for block in blocks(page)]


def every_run() -> list[Run]:
    return [run for page in PAGES for run in runs(page)]


LANGUAGES = {"python", "bash", "console", "text", "toml", "yaml", "json"}
BLOCKS = every_block()
RUNS = every_run()


def test_every_code_block_names_its_language() -> None:
    unnamed = [f"{b.where}: ```{b.lang}" for b in BLOCKS if b.lang not in LANGUAGES]
    assert not unnamed, f"code blocks need one of {sorted(LANGUAGES)}: {unnamed}"


def test_every_python_block_is_an_example_or_a_fragment() -> None:
    python = [b for b in BLOCKS if b.lang == "python"]
    assert len(python) >= 10
    unmarked = [b.where for b in python if b.kind is None]
    assert not unmarked, f"put <!-- example NAME --> or <!-- fragment: why --> before: {unmarked}"
    nameless = [b.where for b in python if b.kind == "example" and not b.file]
    assert not nameless, f"an example's first line names its file (# test_x.py): {nameless}"


def test_every_example_runs_and_every_run_has_an_example() -> None:
    examples = {(b.page, b.name) for b in BLOCKS if b.kind == "example"}
    ran = {(r.page, r.name) for r in RUNS}
    assert examples - ran == set(), f"examples no <!-- run --> line runs: {examples - ran}"
    assert ran - examples == set(), f"<!-- run --> lines without an example: {ran - examples}"


@pytest.mark.parametrize(
    "fragment", [b for b in BLOCKS if b.kind == "fragment"], ids=lambda b: b.where
)
def test_fragment_compiles(fragment) -> None:
    compile(fragment.code, fragment.where, "exec")


def _outcomes(expect: str) -> dict[str, int]:
    pairs = (item.split("=") for item in expect.split())
    return {key: int(value) for key, value in pairs}


@pytest.mark.parametrize("run", RUNS, ids=lambda r: f"{r.page.relative_to(ROOT)}:{r.name}:{r.args}")
def test_example_runs_as_documented(
    run, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # this checkout's plugin in the inner run, whatever else is installed
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), path])))
    for block in BLOCKS:
        if block.page == run.page and block.kind == "example" and block.name == run.name:
            target = pytester.path / block.file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.code)
    result = pytester.runpytest_subprocess(*shlex.split(run.args), "-p", "no:cacheprovider")
    output = result.stdout.str() + result.stderr.str()
    if run.expect == "ok":
        assert result.ret == 0, output
        assert "ERROR" not in output, output
    else:
        result.assert_outcomes(**_outcomes(run.expect))


def test_the_pages_are_where_the_tests_look() -> None:
    """The example engine and the metric tables other tests read are still on their pages."""
    assert (ROOT / "docs" / "extending" / "example-engine.md").exists()
    assert "<!-- generated: serving-metrics" in (ROOT / "docs/reference/metrics.md").read_text()
    assert Path(ROOT / "mkdocs.yml").exists()
