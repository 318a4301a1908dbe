#!/usr/bin/env python
"""Mutation-test the core modules, one module at a time, with mutmut.

    pip install mutmut==3.8.1          # not a dependency of the package or its test extra
    python scripts/mutation.py --list  # the modules, their tests and how long each takes
    python scripts/mutation.py serving.metrics results.baseline
    python scripts/mutation.py all

For each module the script copies the working tree (tracked and untracked, not ignored files)
into ``$GPUBENCH_MUTATION_DIR/<module>/`` (default ``/tmp/gpubench-mutation``), writes a
``setup.cfg`` with a ``[mutmut]`` section that mutates only that module's file(s) and selects
only that module's fast unit tests, and runs ``mutmut run`` there. mutmut records which of
those tests reach each mutated function and runs only those against each mutant. The script
then prints ``killed/total`` and the names of the surviving mutants; ``mutmut show NAME`` (run
in that directory) prints a mutant's diff. The checkout itself is never modified.

The times in ``MODULES`` were measured on the 2-core shared development machine with
``--max-children 2``; they include mutmut's clean run and its coverage run of the tests.

Equivalent mutants (a change no user can observe) are explained in ``EQUIVALENT`` below; they
count as survivors in the score, which stays honest that way. mutmut's "timeout" also covers a
pytest usage error; each is run again alone (see ``_recheck_timeout``) and scored by what it
really did.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# name -> (files to mutate, test paths that exercise them, measured wall time)
MODULES: dict[str, tuple[list[str], list[str], str]] = {
    "serving.metrics": (
        ["pytest_gpubench/serving/metrics.py"],
        ["tests/serving/test_metric_docs.py", "tests/serving/test_metric_values.py"],
        "5 min",
    ),
    "metrics.stats": (
        ["pytest_gpubench/metrics/stats.py"],
        ["tests/metrics"],
        "30 s",
    ),
    "results.baseline": (
        ["pytest_gpubench/results/baseline.py"],
        [
            "tests/results/test_malformed_files.py",
            "tests/results/test_reference_files.py",
            "tests/results/test_verdict_values.py",
        ],
        "40 s",
    ),
    "selection.estimate": (
        ["pytest_gpubench/selection/estimate.py", "pytest_gpubench/models/kvcache.py"],
        [
            "tests/models/test_footprints.py",
            "tests/selection/test_estimate_values.py",
            "tests/selection/test_parallel_split.py",
        ],
        "1-2 min",
    ),
    "selection.fit": (
        ["pytest_gpubench/selection/fit.py"],
        ["tests/selection/test_device_and_fit.py", "tests/selection/test_estimate_values.py"],
        "1 min",
    ),
    "settings": (
        ["pytest_gpubench/settings.py"],
        ["tests/selection/test_device_option.py", "tests/test_settings_values.py"],
        "1.5 min",
    ),
    "serving.client": (
        ["pytest_gpubench/serving/client.py"],
        ["tests/serving/test_client.py", "tests/serving/test_stream_values.py"],
        "3 min",
    ),
    "serving.bench": (
        ["pytest_gpubench/serving/aggregate.py"],
        ["tests/serving/test_error_gate.py"],
        "1 min",
    ),
    "results.atomic": (
        ["pytest_gpubench/results/atomic.py"],
        ["tests/results/test_atomic.py"],
        "2 min",
    ),
}

# Where only part of a file is the core under test: the score counts the mutants of these
# functions only (mutmut names them x_<function>__mutmut_N, xǁClassǁmethod__mutmut_N).
ONLY: dict[str, str] = {
    "serving.bench": r"\.x_check_result__mutmut_",
    "serving.client": r"\.x_(parse_stream|_apply_event|_shown|_count)__mutmut_",
    "results.baseline": r"\.x(_compare_metrics|_standard_error|_noise_between|_merge"
    r"|ǁFindingǁ\w+)__mutmut_",
    "settings": r"\.x_(_resolve|settings_from_config|_confirm_runs|_serving_settings"
    r"|_server_settings|_check_optional_value)__mutmut_",
}

_P = "pytest_gpubench."

# The same functions as mutmut globs (``mutmut run NAME...``): only their mutants are run, so
# mutants of the rest of the file (the client's transports, which wait on real timeouts) cost
# nothing. Their other mutants show as "not checked" and are not scored.
RUN_ONLY: dict[str, list[str]] = {
    "serving.bench": [f"{_P}serving.aggregate.x_check_result__mutmut_*"],
    "serving.client": [
        f"{_P}serving.client.x_{f}__mutmut_*"
        for f in ("parse_stream", "_apply_event", "_shown", "_count")
    ],
    "results.baseline": [
        f"{_P}results.baseline.x{f}__mutmut_*"
        for f in ("_compare_metrics", "_standard_error", "_noise_between", "_merge", "ǁFindingǁ*")
    ],
    "settings": [
        f"{_P}settings.x_{f}__mutmut_*"
        for f in (
            "_resolve",
            "settings_from_config",
            "_confirm_runs",
            "_serving_settings",
            "_server_settings",
            "_check_optional_value",
        )
    ],
}

# mutant name -> why it cannot be killed by a behaviour test
EQUIVALENT: dict[str, str] = {
    **{
        f"{_P}metrics.stats.x_{f}__mutmut_{n}": "dtype=float dropped: numpy promotes int input"
        for f, n in (("mean_ci", 4), ("mean_ci", 6), ("summarize", 3), ("summarize", 5))
    },
    f"{_P}serving.metrics.x_peak_per_second__mutmut_9": "times is non-empty: buckets.size > 0",
    f"{_P}serving.metrics.x_peak_per_second__mutmut_14": "times is non-empty: else is dead",
    f"{_P}serving.metrics.x_peak_in_flight__mutmut_13": "default tuple order is the same key",
    f"{_P}serving.metrics.x_peak_in_flight__mutmut_15": "default tuple order is the same key",
    f"{_P}results.baseline.x_standard_error__mutmut_23": "n 0 and 1 both take the 1.96 branch",
    f"{_P}results.baseline.x_noise_between__mutmut_6": "2 * sqrt(0) is 0.0 too",
    f"{_P}selection.estimate.xǁEstimateǁfits__mutmut_2": "tp 1: max(gpus, 1) < 1 never holds",
    f"{_P}selection.estimate.x_parse_context__mutmut_7": "other types print as no number",
    f"{_P}selection.estimate.x_estimate__mutmut_25": "split_mode: no invalid value == a str",
    f"{_P}models.kvcache.x_kv_bytes_per_element__mutmut_15": "difflib's default n is 3",
    # 1e9 + 1: a relative change of 1e-9, below round(, 3) for any model under 500,000 B params
    f"{_P}selection.estimate.xǁEstimateǁas_dict__mutmut_39": "1e9+1: below the 3 decimals",
    f"{_P}selection.estimate.xǁEstimateǁas_dict__mutmut_48": "1e9+1: below the 3 decimals",
    # layout: pp_layers(n, 1) is [n], so the pp > 1 guard only saves a call, and without
    # stages n / layers is 1 whatever max() floors layers at; max(layers, 2) differs only for
    # a one-layer model split into pipeline stages (a stage with no layer at all)
    **{
        f"{_P}selection.estimate.xǁEstimateǁlayout__mutmut_{n}": "pp_layers(n, 1) == [n]"
        for n in (16, 21)
    },
    f"{_P}selection.estimate.xǁEstimateǁlayout__mutmut_7": "n / layers is 1 without stages",
    # shares: zip's strict is False by default and None is false; any split mode but row and
    # none takes the layer split; zero shares past the GPUs get no slot (slot / slots < 1 never
    # passes a cumulative 1.0) and the row split skips them before it looks at the GPU
    **{
        f"{_P}selection.estimate.xǁEstimateǁshares__mutmut_{n}": "zip strict: False either way"
        for n in (28, 31)
    },
    **{
        f"{_P}selection.estimate.xǁEstimateǁshares__mutmut_{n}": "other modes are the layer split"
        for n in (35, 36)
    },
    f"{_P}selection.estimate.xǁEstimateǁshares__mutmut_71": "extra zero shares are never used",
    # settings: add_options declares every dest with default None, so getoption's own default
    # is never used; base is None only for the default value, and the defaults of the profiles
    # file and the log folder are None (nothing to join); any negative sentinel fails the
    # range check as -1 does, with the same message
    **{
        f"{_P}settings.x{f}__mutmut_{n}": "every dest is declared: default never used"
        for f, n in (
            ("__resolve", 4),
            ("_settings_from_config", 63),
            ("_settings_from_config", 148),
            ("_settings_from_config", 158),
            ("_settings_from_config", 169),
            ("__check_optional_value", 4),
        )
    },
    f"{_P}settings.x_settings_from_config__mutmut_26": "base is None only for a None default",
    f"{_P}settings.x__server_settings__mutmut_42": "base is None only for a None default",
    f"{_P}settings.x__confirm_runs__mutmut_13": "-2 fails the range check as -1 does",
    f"{_P}settings.x__serving_settings__mutmut_12": "-2.0 fails the range check as -1.0 does",
    f"{_P}selection.fit.x_gguf_need__mutmut_9": "engine names are case-insensitive",
    # parse_stream: a None slice start is 0; bisect_left never passes the last read (an
    # event ends inside the buffer), so the min() guard is never what picks the read
    f"{_P}serving.client.x_parse_stream__mutmut_14": "buf[None:i] is buf[0:i]",
    f"{_P}serving.client.x_parse_stream__mutmut_28": "idx <= len(chunks) - 1 always",
    # write_text_atomic: the random token's length is no contract (the sweep takes any hex);
    # Python opens every fd non-inheritable (PEP 446: os.open adds O_CLOEXEC itself), so
    # dropping or changing the flag's default changes nothing on Linux; the temp file always
    # exists when the except branch removes it (the failure came before the rename)
    f"{_P}results.atomic.x_write_text_atomic__mutmut_22": "token_hex(None): 64 hex digits",
    f"{_P}results.atomic.x_write_text_atomic__mutmut_23": "token_hex(7): 14 hex digits",
    **{
        f"{_P}results.atomic.x_write_text_atomic__mutmut_{n}": "O_CLOEXEC: Python sets it anyway"
        for n in (34, 36, 39, 40, 41, 42)
    },
    f"{_P}results.atomic.x_write_text_atomic__mutmut_63": "temp file exists in the except",
    f"{_P}results.atomic.x_write_text_atomic__mutmut_64": "temp file exists in the except",
}


# mutmut 3 does not mutate decorated functions (``@property``, ``@lru_cache``): ``estimate()``
# itself, ``Estimate.need_gib``/``total_gib``/``label``, ``RequestResult.tpot``/``e2el``,
# ``ServeResult.error_rate``, ``Finding.worse``, ``KVCache.total_bytes`` are never mutated. These
# one-line mutants, planted by hand (``--planted``), cover them, and the reviewer's planted
# bugs from issue 18 with them: (file, original line text, mutated text, tests that must fail).
_EST = "pytest_gpubench/selection/estimate.py"
_EST_TESTS = ["tests/selection/test_estimate_values.py", "tests/selection/test_parallel_split.py"]
_SRV_TESTS = ["tests/serving/test_metric_values.py", "tests/serving/test_error_gate.py"]
PLANTED: list[tuple[str, str, str, list[str]]] = [
    (_EST, "tokens=context * concurrency,", "tokens=context,", _EST_TESTS),
    (_EST, "sequences=concurrency,", "sequences=1,", _EST_TESTS),
    (_EST, "per_gpu=engine.one_gpu and tp * pp * dp == 1,", "per_gpu=engine.one_gpu,", _EST_TESTS),
    (
        _EST,
        "need = ((w + k) / tp + self.overhead_gib)",
        "need = ((w + k) + self.overhead_gib)",
        _EST_TESTS,
    ),
    (_EST, "need = ((w + k) / tp + self.overhead_gib)", "need = ((w + k) / tp)", _EST_TESTS),
    (
        _EST,
        "self.overhead_gib) / (self.utilization or 1.0)",
        "self.overhead_gib) * (self.utilization or 1.0)",
        _EST_TESTS,
    ),
    (
        _EST,
        "return sum(need for need, _ in self.layout())",
        "return max(need for need, _ in self.layout())",
        _EST_TESTS,
    ),
    (
        _EST,
        "self.weights_gib + self.kv_gib + self.state_gib + self.overhead_gib",
        "self.weights_gib + self.kv_gib + self.overhead_gib",
        _EST_TESTS,
    ),
    (_EST, "if self.concurrency > 1:", "if self.concurrency >= 1:", _EST_TESTS),
    # the boundary moved from Estimate.fits to GpuShare.fits (fit judged GPU by GPU)
    (
        _EST,
        "return self.need_gib <= self.available_gib\n",
        "return self.need_gib < self.available_gib\n",
        _EST_TESTS,
    ),
    # the per-GPU properties of the parallel layouts
    (
        _EST,
        "return self.per_gpu or self.gpus_needed > 1",
        "return self.per_gpu or self.gpus_needed > 2",
        _EST_TESTS,
    ),
    (
        _EST,
        "return self.tensor_parallel * self.pipeline_parallel * self.data_parallel",
        "return self.tensor_parallel * self.pipeline_parallel",
        _EST_TESTS,
    ),
    (
        _EST,
        "return max(need for need, _ in self.layout())",
        "return min(need for need, _ in self.layout())",
        _EST_TESTS,
    ),
    (_EST, "if value > 1:", "if value > 2:", _EST_TESTS),
    (
        "pytest_gpubench/selection/fit.py",
        "if need.gib > available:",
        "if need.gib >= available:",
        _EST_TESTS,
    ),
    (
        "pytest_gpubench/models/kvcache.py",
        "return self.full_bytes + self.window_bytes + self.state_bytes",
        "return self.full_bytes + self.window_bytes",
        _EST_TESTS,
    ),
    (
        "pytest_gpubench/serving/client.py",
        "n = self.output_tokens",
        "n = self.client_output_chunks",
        _SRV_TESTS,
    ),
    ("pytest_gpubench/serving/client.py", "/ (n - 1)", "/ n", _SRV_TESTS),
    (
        "pytest_gpubench/serving/client.py",
        "else self.end - self.start",
        "else self.end",
        _SRV_TESTS,
    ),
    ("pytest_gpubench/serving/metrics.py", "v * 1000.0 > limit", "v * 1000.0 < limit", _SRV_TESTS),
    (
        "pytest_gpubench/serving/aggregate.py",
        "return self.failed / n if n else 0.0",
        "return self.failed / (n + 1) if n else 0.0",
        _SRV_TESTS,
    ),
    (
        "pytest_gpubench/serving/aggregate.py",
        "if result.error_rate > max_error_rate:",
        "if result.error_rate > max_error_rate + 0.05:",
        _SRV_TESTS,
    ),
    (
        "pytest_gpubench/results/baseline.py",
        "return -self.change if self.higher_is_better else self.change",
        "return self.change if self.higher_is_better else -self.change",
        ["tests/results/test_verdict_values.py"],
    ),
]


def run_planted(base: Path) -> tuple[int, int]:
    """Apply each planted mutant to a copy, run its tests; killed when they fail."""
    dest = base / "planted"
    _copy_tree(dest)
    env = dict(os.environ, PYTHONPATH=str(dest))
    killed = 0
    for path, old, new, tests in PLANTED:
        target = dest / path
        original = target.read_text()
        if original.count(old) != 1:
            print(f"   STALE      {path}: {old!r} is not in the file exactly once")
            continue
        target.write_text(original.replace(old, new))
        try:
            rc = subprocess.run(
                [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
                cwd=dest,
                env=env,
                capture_output=True,
                check=False,
            ).returncode
        finally:
            target.write_text(original)
        killed += rc != 0
        print(f"   {'killed' if rc else 'SURVIVED':10} {path}: {old!r} -> {new!r}")
    print(f"\n== planted: {killed}/{len(PLANTED)} killed")
    return killed, len(PLANTED)


EXCLUDED: set[str] = set()  # --exclude: test files left out (a "before" score)


def _copy_tree(dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for raw in files:
        if not raw:
            continue
        rel = raw.decode()
        src = ROOT / rel
        if not src.is_file():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)


def _write_config(dest: Path, files: list[str], tests: list[str]) -> None:
    def lines(values: list[str]) -> str:
        return "".join(f"\n    {v}" for v in values)

    (dest / "setup.cfg").write_text(
        "[mutmut]\n"
        "source_paths = pytest_gpubench\n"
        # fork each mutant's run from a process that has run no test: with plain fork it
        # inherits the caches the clean run filled (estimate() is lru_cached), and a mutant of
        # a cached function would then survive without ever running
        "process_isolation = forkserver\n"
        f"only_mutate ={lines(files)}\n"
        f"pytest_add_cli_args_test_selection ={lines(tests)}\n"
        "pytest_add_cli_args =\n    -p\n    no:cacheprovider\n    -q\n"
        "also_copy =\n    conftest.py\n    baselines\n    benchmarks\n    docs\n    README.md\n"
    )


def run_module(
    name: str, base: Path, children: int, show: bool = False, rerun: bool = True
) -> tuple[int, int, list[str]]:
    files, tests, _ = MODULES[name]
    tests = [t for t in tests if (ROOT / t).exists() and t not in EXCLUDED]
    dest = base / name
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # mutmut puts mutants/ first on sys.path itself
    start = time.monotonic()
    if rerun:
        _copy_tree(dest)
        _write_config(dest, files, tests)
        _run(dest, env, children, RUN_ONLY.get(name, []))
    took = time.monotonic() - start
    return _score(name, dest, env, took, show)


def _run(dest: Path, env: dict[str, str], children: int, only: list[str]) -> None:
    with open(dest / "mutmut-run.log", "w") as log:
        subprocess.run(
            ["mutmut", "run", "--max-children", str(children), *only],
            cwd=dest,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )


def _score(
    name: str, dest: Path, env: dict[str, str], took: float, show: bool
) -> tuple[int, int, list[str]]:
    out = subprocess.run(
        ["mutmut", "results", "--all", "true"],
        cwd=dest,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    statuses = re.findall(r"^\s*(\S+): (\S[^\n]*)$", out, re.M)
    if name in ONLY:
        whole = sum(1 for _, s in statuses if s.strip() == "killed")
        print(f"\n== {name}: whole file {whole}/{len(statuses)} killed; scored: {ONLY[name]}")
        statuses = [(m, s) for m, s in statuses if re.search(ONLY[name], m)]
    statuses = [
        (m, _recheck_timeout(dest, env, m) if s.strip() == "timeout" else s) for m, s in statuses
    ]
    total = len(statuses)
    killed = sum(1 for _, s in statuses if s.strip() == "killed")
    survivors = [m for m, s in statuses if s.strip() != "killed"]
    print(f"\n== {name}: {killed}/{total} killed in {took:.0f}s ({dest})")
    for m, s in statuses:
        if s.strip() != "killed":
            note = EQUIVALENT.get(m)
            print(f"   {s.strip():10} {m}" + (f"  [equivalent: {note}]" if note else ""))
            if show and not note and s.strip() == "survived":
                diff = subprocess.run(
                    ["mutmut", "show", m], cwd=dest, env=env, capture_output=True, text=True
                ).stdout
                print("      " + "\n      ".join(diff.strip().splitlines()[2:]))
    return killed, total, survivors


# mutmut 3.8.1 records a pytest exit status of 4 (usage error) as "timeout": its runner raises
# BadTestExecutionCommandsException on 4, the forked child catches it and exits with -1, and it
# maps the resulting 255 to "timeout". A mutant that makes the plugin's own pytest_configure
# refuse the run (settings.py: the defaults no longer pass validation, so the session that runs
# the tests stops with "ERROR: default: ...") is a kill: no pytest run starts with it installed.
# So each "timeout" is run again here, alone, with the same arguments as mutmut's run and a wall
# limit: a usage error or a failing test counts as killed, a pass as survived, and only a run
# that really outlasts the limit stays a timeout.
RECHECK_LIMIT_S = 120


def _recheck_timeout(dest: Path, env: dict[str, str], mutant: str) -> str:
    stats = json.loads((dest / "mutants" / "mutmut-stats.json").read_text())
    tests = sorted(stats["tests_by_mangled_function_name"].get(mutant.split("__mutmut_")[0], []))
    args = ["--rootdir=.", "--tb=native", "-x", "-q", "-p", "no:randomly", "-p", "no:random-order"]
    try:
        run = subprocess.run(
            [sys.executable, "-m", "pytest", *args, *tests, "-p", "no:cacheprovider", "-q"],
            cwd=dest / "mutants",
            env=dict(env, MUTANT_UNDER_TEST=mutant),
            capture_output=True,
            text=True,
            timeout=RECHECK_LIMIT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"timeout (still running after {RECHECK_LIMIT_S} s alone)"
    if run.returncode == 4:
        error = next((line for line in run.stderr.splitlines() if line.startswith("ERROR")), "")
        print(f"   timeout -> killed (usage error, not a hang): {mutant}: {error[:110]}")
        return "killed"
    if run.returncode in (1, 3):
        print(f"   timeout -> killed (tests fail when run alone): {mutant}")
        return "killed"
    return "survived" if run.returncode == 0 else f"suspicious (exit {run.returncode} alone)"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("modules", nargs="*", help="module names (see --list) or 'all'")
    p.add_argument("--list", action="store_true")
    p.add_argument("--max-children", type=int, default=2)
    p.add_argument("--show", action="store_true", help="print the diff of each survivor")
    p.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="TEST_PATH",
        help="leave this test file out (to score the tests as they were before it)",
    )
    p.add_argument(
        "--planted", action="store_true", help="run the hand-planted mutants (see PLANTED)"
    )
    p.add_argument(
        "--score-only", action="store_true", help="score the last run in --dir, run nothing"
    )
    p.add_argument(
        "--dir",
        default=os.environ.get("GPUBENCH_MUTATION_DIR", "/tmp/gpubench-mutation"),
        help="where the per-module copies go",
    )
    args = p.parse_args()
    if args.planted:
        EXCLUDED.update(args.exclude)
        killed, total = run_planted(Path(args.dir))
        return 0 if killed == total else 1
    if args.list or not args.modules:
        for name, (files, tests, took) in MODULES.items():
            print(f"{name:20} {took:>8}  {' '.join(files)}\n{'':30}tests: {' '.join(tests)}")
        return 0
    if shutil.which("mutmut") is None:
        print("mutmut is not installed: pip install mutmut==3.8.1", file=sys.stderr)
        return 2
    names = list(MODULES) if args.modules == ["all"] else args.modules
    unknown = [n for n in names if n not in MODULES]
    if unknown:
        p.error(f"unknown module(s) {unknown}; see --list")
    EXCLUDED.update(args.exclude)
    base = Path(args.dir)
    summary = [
        (n, *run_module(n, base, args.max_children, args.show, not args.score_only)[:2])
        for n in names
    ]
    print("\nmodule               killed/total")
    for n, k, t in summary:
        print(f"{n:20} {k}/{t}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
