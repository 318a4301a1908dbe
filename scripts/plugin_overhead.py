"""What the installed plugin costs a pytest run that does not use it.

Runs one trivial test in a fresh ``python -m pytest`` process, alternately with the plugin
loaded and with ``-p no:gpubench``, and prints the median wall time of each and their
difference. Whole processes, because the cost is import and configure time, paid once per run;
alternated, so a machine that gets busier during the measurement slows both sides alike.

    python scripts/plugin_overhead.py              # 7 runs each, default (header) output
    python scripts/plugin_overhead.py --runs 15 --quiet

The plugin is imported from this checkout (``PYTHONPATH``), whatever is installed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
ONE_TEST = "def test_one():\n    assert 1 + 1 == 2\n"


def one_run(folder: Path, extra: list[str], env: dict[str, str]) -> float:
    """Wall seconds of one whole ``pytest`` process over the one-test file."""
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *extra, "test_one.py"]
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"pytest failed ({' '.join(argv)}):\n{done.stdout}\n{done.stderr}")
    return elapsed


def measure(runs: int, quiet: bool) -> tuple[list[float], list[float]]:
    """Alternated runs: (with the plugin, without it), ``runs`` of each, after one warm-up."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(CHECKOUT), os.environ.get("PYTHONPATH")])
    )}  # fmt: skip
    env.pop("PYTEST_ADDOPTS", None)
    flags = ["-q"] if quiet else []
    with_plugin: list[float] = []
    without: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "test_one.py").write_text(ONE_TEST)
        one_run(folder, flags, env)  # warm the file-system cache and the .pyc files
        one_run(folder, [*flags, "-p", "no:gpubench"], env)
        for _ in range(runs):
            with_plugin.append(one_run(folder, flags, env))
            without.append(one_run(folder, [*flags, "-p", "no:gpubench"], env))
    return with_plugin, without


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="runs of each side (default 7)")
    parser.add_argument("--quiet", action="store_true", help="pass -q (no header) to pytest")
    args = parser.parse_args(argv)
    with_plugin, without = measure(args.runs, args.quiet)
    a, b = statistics.median(with_plugin), statistics.median(without)
    print(f"one-test pytest run{' -q' if args.quiet else ''}, median of {args.runs} alternated")
    print(
        f"  with gpubench      {a * 1000:7.0f} ms  ({', '.join(f'{x:.2f}' for x in with_plugin)})"
    )
    print(f"  -p no:gpubench     {b * 1000:7.0f} ms  ({', '.join(f'{x:.2f}' for x in without)})")
    print(f"  plugin's cost      {(a - b) * 1000:7.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
