#!/usr/bin/env bash
# llama-bench on the 8B Q4_K_M GGUF the build made, alone on the GPU: pp512 and tg128, 5
# repetitions, as JSON (read by test_llamacpp_cuda.py) and as llama-bench's own table.
cd "${GPUBENCH_LLAMA_DIR:-/tmp/llama}" || exit 1
args=(-m llama8b-q4_k_m.gguf -p 512 -n 128 -r 5 -fa 1 -ngl 99)
build/bin/llama-bench "${args[@]}" -o json > llama-bench.json 2> llama-bench.err
build/bin/llama-bench "${args[@]}" > llama-bench.md 2>> llama-bench.err
cat llama-bench.md
