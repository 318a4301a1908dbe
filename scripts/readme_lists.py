"""Regenerate the documentation's blocks that come from data, so they cannot go stale.

    python scripts/readme_lists.py          # rewrite the pages under docs/ in place
    python scripts/readme_lists.py --check  # exit 1 and show the difference if one is stale

Each block sits between marker comments, which Markdown does not render::

    <!-- generated: NAME (python scripts/readme_lists.py) -->
    ...
    <!-- /generated -->

and is replaced by what ``BLOCKS[NAME]`` writes: the built-in device profiles, the
``pytest-gpubench devices`` table, a ``pytest-gpubench fit`` breakdown, the fit matrix (the
commands' real output), the serving metric table and the peers' fields it maps from
(``serving/metrics.py``), the options table (``settings.py``), an ``advise`` run and its
leave-one-out prediction-error table over the stored baselines (``advise/validate.py``). Each
block sits in one page of ``docs/`` (README.md and every page there are read; a block must
appear exactly once across them). Text outside the markers is left as it is.
``tests/test_readme_lists.py`` fails when a page differs. (The name is historical: these blocks
lived in the README until the manual moved to the documentation site.)
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import io
import re
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
sys.path.insert(0, str(ROOT))  # this checkout's package, whatever else is installed

COMMAND = "python scripts/readme_lists.py"
START = re.compile(r"^<!-- generated: (?P<name>[a-z0-9-]+)\b[^>]*-->$")
END = "<!-- /generated -->"


def _cli(*argv: str) -> list[str]:
    """What ``pytest-gpubench ARGV`` prints."""
    from pytest_gpubench.cli.main import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(argv))
    if code != 0:
        raise RuntimeError(f"pytest-gpubench {' '.join(argv)} exited {code}")
    return out.getvalue().rstrip("\n").splitlines()


def _console(argv: tuple[str, ...], lines: list[str]) -> list[str]:
    return ["```console", "$ pytest-gpubench " + " ".join(argv), *lines, "```"]


def profiles() -> list[str]:
    """The built-in profile names, single devices then multi-GPU hosts, in file order."""
    from pytest_gpubench.devices.profile import builtin_profiles

    every = builtin_profiles().profiles.values()
    single = [f"`{p.name}`" for p in every if not p.parts]
    hosts = [f"`{p.name}`" for p in every if p.parts]
    text = f"Built-in profiles: {', '.join(single)}"
    if hosts:
        listed = ", ".join(hosts[:-1]) + " and " + hosts[-1] if len(hosts) > 1 else hosts[0]
        text += f", and the multi-GPU hosts {listed}"
    return textwrap.wrap(text + ".", width=95, break_on_hyphens=False, break_long_words=False)


def devices() -> list[str]:
    """The profile table of ``pytest-gpubench devices``; what follows it describes the machine
    the command runs on, so it is left out."""
    lines = _cli("devices")
    table = lines[: lines.index("")] if "" in lines else lines
    return _console(("devices",), table)


FIT_EXAMPLE = ("fit", "openai/gpt-oss-120b", "--quant", "mxfp4", "--context", "32k")
FIT_MATRIX = ("fit", "--matrix", "--context", "32k")
ADVISE_MODEL = ("meta-llama/Llama-3.1-8B-Instruct", "--quant", "q4_k_m", "--engine", "llamacpp")
ADVISE_DEVICES = ("--devices", "rtx4090,spark,h100,h200")


def _stored() -> list[str]:
    """The measured baselines and published references, as `baselines/*.json
    baselines/reference/*.json` expands in the repository root."""
    found = [*sorted((ROOT / "baselines").glob("*.json"))]
    found += sorted((ROOT / "baselines" / "reference").glob("*.json"))
    return [str(p) for p in found]


def advise_example() -> list[str]:
    shown = ("advise", *ADVISE_MODEL, *ADVISE_DEVICES, "--baselines", "baselines/*.json",
             "baselines/reference/*.json")  # fmt: skip
    return _console(
        shown, _cli("advise", *ADVISE_MODEL, *ADVISE_DEVICES, "--baselines", *_stored())
    )


def prediction_error() -> list[str]:
    """advise's leave-one-out table over the stored files (pytest_gpubench/advise/validate.py)."""
    from pytest_gpubench.advise import validate
    from pytest_gpubench.advise.sources import read
    from pytest_gpubench.devices import load_profiles

    return ["", *validate.markdown(validate.rows(read(_stored()), load_profiles(None))), ""]


def fit_example() -> list[str]:
    return _console(FIT_EXAMPLE, _cli(*FIT_EXAMPLE))


def fit_matrix() -> list[str]:
    return _console(FIT_MATRIX, _cli(*FIT_MATRIX))


def serving_metrics() -> list[str]:
    from pytest_gpubench.serving.metrics import definition_table

    return ["", *definition_table(), ""]  # blank lines: the comments must not join the table


def peer_fields() -> list[str]:
    from pytest_gpubench.serving.metrics import peer_field_table

    return ["", *peer_field_table(), ""]


def _cell(text: str) -> str:
    return text.replace("%%", "%").replace("|", "\\|").replace("<", "&lt;")


def options() -> list[str]:
    """Every option of ``settings.OPTIONS``: flags, environment variable, ini key, default."""
    from pytest_gpubench.settings import OPTIONS

    rows = ["", "| option | env | ini | default | what it does |", "|---|---|---|---|---|"]
    for opt in OPTIONS:
        flags = ", ".join(f"`{flag}`" for flag in opt.flags)
        env = f"`{opt.env}`" if opt.env else "-"
        ini = f"`{opt.ini}`" if opt.ini else "-"
        default = "-" if opt.default in (None, False) else f"`{opt.default}`"
        rows.append(f"| {flags} | {env} | {ini} | {default} | {_cell(opt.help)} |")
    return [*rows, ""]


BLOCKS: dict[str, Callable[[], list[str]]] = {
    "profiles": profiles,
    "devices": devices,
    "fit-example": fit_example,
    "fit-matrix": fit_matrix,
    "serving-metrics": serving_metrics,
    "peer-fields": peer_fields,
    "options": options,
    "advise-example": advise_example,
    "prediction-error": prediction_error,
}


def render_page(text: str, where: str = "page") -> tuple[str, set[str]]:
    """``text`` with each generated block in it rewritten, and the names of those blocks."""
    lines = text.splitlines()
    out: list[str] = []
    seen: set[str] = set()
    i = 0
    while i < len(lines):
        line = lines[i]
        out.append(line)
        i += 1
        start = START.match(line)
        if not start:
            continue
        name = start["name"]
        if name not in BLOCKS:
            raise ValueError(f"{where} line {i}: unknown generated block {name!r}")
        if name in seen:
            raise ValueError(f"{where} line {i}: block {name!r} appears twice")
        try:
            end = lines.index(END, i)
        except ValueError:
            raise ValueError(f"{where} line {i}: block {name!r} has no {END}") from None
        out += BLOCKS[name]()
        out.append(END)
        seen.add(name)
        i = end + 1
    return "\n".join(out) + "\n", seen


def pages(root: Path = ROOT) -> list[Path]:
    """README.md and every Markdown page of the site, in a stable order."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def render_all(texts: dict[Path, str]) -> dict[Path, str]:
    """Every page rewritten; each block in BLOCKS must appear in exactly one of them."""
    found: dict[str, Path] = {}
    new: dict[Path, str] = {}
    for path, text in texts.items():
        new[path], seen = render_page(text, path.name)
        for name in seen:
            if name in found:
                raise ValueError(f"block {name!r} appears in {found[name].name} and {path.name}")
            found[name] = path
    missing = sorted(set(BLOCKS) - set(found))
    if missing:
        raise ValueError(f"no page has a generated block for {', '.join(missing)}")
    return new


def diff(texts: dict[Path, str] | None = None) -> list[str]:
    """The unified diff from the pages as they are to what this script would write."""
    if texts is None:
        texts = {path: path.read_text() for path in pages()}
    changes: list[str] = []
    for path, new in render_all(texts).items():
        name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        changes += difflib.unified_diff(
            texts[path].splitlines(),
            new.splitlines(),
            f"{name} (as it is)",
            f"{name} (generated)",
            lineterm="",
        )
    return changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report a stale page")
    args = parser.parse_args(argv)
    texts = {path: path.read_text() for path in pages()}
    if args.check:
        changes = diff(texts)
        if changes:
            print("\n".join(changes))
            print(f"\nthe docs are stale: run `{COMMAND}`", file=sys.stderr)
            return 1
        print("the docs are up to date")
        return 0
    new = render_all(texts)
    rewritten = [path for path in new if new[path] != texts[path]]
    for path in rewritten:
        path.write_text(new[path])
    names = ", ".join(str(path.relative_to(ROOT)) for path in rewritten)
    print(f"rewrote {names}" if rewritten else "the docs are up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
