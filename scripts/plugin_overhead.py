"""What the installed plugin costs a pytest run that does not use it.

Runs one trivial test in a fresh ``python -m pytest`` process, alternately with the plugin
loaded and with ``-p no:gpubench``, and prints the median wall time of each and their
difference. Whole processes, because the cost is import and configure time, paid once per run;
alternated, so a machine that gets busier during the measurement slows both sides alike.

    python scripts/plugin_overhead.py              # 7 runs each, default (header) output
    python scripts/plugin_overhead.py --runs 15 --quiet

The plugin is imported from this checkout (``PYTHONPATH``; ``--checkout`` names another, an
earlier commit's for a before/after), whatever is installed.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
ONE_TEST = "def test_one():\n    assert 1 + 1 == 2\n"


def one_run(folder: Path, extra: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one whole ``pytest`` process over the one-test
    file. CPU time is the steadier figure on a shared machine: waiting for a core is not in it.
    """
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *extra, "test_one.py"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"pytest failed ({' '.join(argv)}):\n{done.stdout}\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


Timings = list[tuple[float, float]]


def measure(runs: int, quiet: bool, checkout: Path = CHECKOUT) -> tuple[Timings, Timings]:
    """Alternated runs: (with the plugin, without it), ``runs`` of each, after one warm-up."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(checkout), os.environ.get("PYTHONPATH")])
    )}  # fmt: skip
    env.pop("PYTEST_ADDOPTS", None)
    # as on a user's machine, imports read cached bytecode (the warm-up run writes it); with
    # PYTHONDONTWRITEBYTECODE set, every run would compile every module of both sides again
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    flags = ["-q"] if quiet else []
    with_plugin: Timings = []
    without: Timings = []
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
    parser.add_argument(
        "--checkout", type=Path, default=CHECKOUT, help="the source tree to import the plugin from"
    )
    args = parser.parse_args(argv)
    with_plugin, without = measure(args.runs, args.quiet, args.checkout.resolve())
    print(f"one-test pytest run{' -q' if args.quiet else ''}, median of {args.runs} alternated")
    for column, name in ((0, "wall"), (1, "CPU")):
        a = statistics.median(t[column] for t in with_plugin)
        b = statistics.median(t[column] for t in without)
        runs_a = ", ".join(f"{t[column]:.2f}" for t in with_plugin)
        runs_b = ", ".join(f"{t[column]:.2f}" for t in without)
        print(f"  {name:4} with gpubench   {a * 1000:6.0f} ms  ({runs_a})")
        print(f"  {name:4} -p no:gpubench  {b * 1000:6.0f} ms  ({runs_b})")
        print(f"  {name:4} plugin's cost   {(a - b) * 1000:6.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
