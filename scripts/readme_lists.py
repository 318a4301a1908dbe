"""Regenerate the README's blocks that come from data, so they cannot go stale.

    python scripts/readme_lists.py          # rewrite README.md in place
    python scripts/readme_lists.py --check  # exit 1 and show the difference if it is stale

Each block sits between marker comments, which Markdown does not render::

    <!-- generated: NAME (python scripts/readme_lists.py) -->
    ...
    <!-- /generated -->

and is replaced by what ``BLOCKS[NAME]`` writes: the built-in device profiles, the
``pytest-gpubench devices`` table, a ``pytest-gpubench fit`` breakdown, the fit matrix (the
commands' real output), the serving metric table and the peers' fields it maps from
(``serving/metrics.py``). Text outside the markers is left as it is.
``tests/test_readme_lists.py`` fails when the README differs.
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
    return ["```", "$ pytest-gpubench " + " ".join(argv), *lines, "```"]


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


BLOCKS: dict[str, Callable[[], list[str]]] = {
    "profiles": profiles,
    "devices": devices,
    "fit-example": fit_example,
    "fit-matrix": fit_matrix,
    "serving-metrics": serving_metrics,
    "peer-fields": peer_fields,
}


def render(text: str) -> str:
    """``text`` with every generated block rewritten; every block in BLOCKS must be there."""
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
            raise ValueError(f"README line {i}: unknown generated block {name!r}")
        if name in seen:
            raise ValueError(f"README line {i}: block {name!r} appears twice")
        try:
            end = lines.index(END, i)
        except ValueError:
            raise ValueError(f"README line {i}: block {name!r} has no {END}") from None
        out += BLOCKS[name]()
        out.append(END)
        seen.add(name)
        i = end + 1
    missing = sorted(set(BLOCKS) - seen)
    if missing:
        raise ValueError(f"README has no generated block for {', '.join(missing)}")
    return "\n".join(out) + "\n"


def diff(path: Path = README) -> list[str]:
    """The unified diff from the README as it is to what this script would write."""
    current = path.read_text()
    return list(
        difflib.unified_diff(
            current.splitlines(),
            render(current).splitlines(),
            f"{path.name} (as it is)",
            f"{path.name} (generated)",
            lineterm="",
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report a stale README")
    args = parser.parse_args(argv)
    if args.check:
        changes = diff()
        if changes:
            print("\n".join(changes))
            print(f"\nREADME.md is stale: run `{COMMAND}`", file=sys.stderr)
            return 1
        print("README.md is up to date")
        return 0
    current = README.read_text()
    new = render(current)
    if new != current:
        README.write_text(new)
        print("rewrote README.md")
    else:
        print("README.md is up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
