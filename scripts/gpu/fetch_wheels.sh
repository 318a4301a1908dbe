#!/usr/bin/env bash
# Download the wheels a GPU machine without internet needs, into .whl/ at the repo root.
# The machine already has torch, transformers, accelerate, numpy, scipy, safetensors,
# tokenizers, huggingface_hub; this adds the rest of what the plugin and the workloads import.
# Usage: scripts/gpu/fetch_wheels.sh [python-version]   (default 3.12, the GPU image's)
set -euo pipefail
cd "$(dirname "$0")/../.."
py="${1:-3.12}"
mkdir -p .whl
get() {
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$py" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl "$@"
}
get pytest-benchmark==5.3.1 py-cpuinfo==9.0.0 nvidia-ml-py==13.615.71 gguf==0.19.0 \
    diffusers==0.42.1 aiohttp==3.14.5 aiohappyeyeballs aiosignal frozenlist multidict \
    yarl propcache httpx==0.28.1 httpcore h11 anyio pytest==9.2.0 pluggy==1.7.0 iniconfig psutil \
    prometheus_client==0.26.0 tqdm
ls -la .whl
