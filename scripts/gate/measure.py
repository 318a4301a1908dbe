"""Measure the regression gate on this machine: false failures on unchanged code and misses
of a planted 20% slowdown, over the main job (`pytest benchmarks/ --device=auto`).

    python scripts/gate/measure.py OUT_DIR [--runs 3] [--target NODEID_PART]

Saves a baseline with one run, then runs the main job --runs times unchanged and --runs times
with the planted slowdown (plant_slowdown.py), each against that baseline, and prints per run
which tests failed, which were re-measured and what the summary called noise or inconclusive.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def main_job(out: Path, name: str, *extra: str, env: dict[str, str] | None = None) -> dict:
    junit = out / f"{name}.xml"
    cmd = [sys.executable, "-m", "pytest", "benchmarks/", "--device=auto", "-q",
           "-p", "no:cacheprovider", f"--junitxml={junit}", *extra]  # fmt: skip
    start = time.monotonic()
    proc = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    (out / f"{name}.log").write_text(proc.stdout + proc.stderr)
    failed = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(f"{case.get('classname')}::{case.get('name')}")
    lines = proc.stdout.splitlines()
    return {
        "name": name,
        "seconds": round(time.monotonic() - start, 1),
        "exit": proc.returncode,
        "failed": failed,
        "noise": [line.strip() for line in lines if line.startswith("  worse but within noise")],
        "inconclusive": [line.strip() for line in lines if line.startswith("  inconclusive")],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--target", default="test_llama_tiny_generate_cpu[1-eager]")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    base = args.out / "baseline.json"
    base.unlink(missing_ok=True)
    saved = main_job(args.out, "save", f"--gpubench-save-baseline={base}")
    print(f"baseline: exit {saved['exit']} in {saved['seconds']} s -> {base}", flush=True)
    against = f"--gpubench-baseline={base}"
    plant = {
        "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "GPUBENCH_PLANT_TARGET": args.target,
    }
    for kind, extra, env in (("unchanged", [], None), ("planted", ["-p", "plant_slowdown"], plant)):
        for i in range(1, args.runs + 1):
            r = main_job(args.out, f"{kind}{i}", against, *extra, env=env)
            print(
                f"{kind} {i}: exit {r['exit']} in {r['seconds']} s; failed {r['failed'] or '-'}; "
                f"noise {len(r['noise'])}; inconclusive {len(r['inconclusive'])}",
                flush=True,
            )
            for line in r["noise"] + r["inconclusive"]:
                print("    " + line[:240], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
