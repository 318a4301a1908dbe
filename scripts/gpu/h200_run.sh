#!/usr/bin/env bash
# The full-size benchmarks on the GPU machine, in three parts that each fit one 10-minute call
# (made baselines/h200.json; see scripts/gpu/README.md). Usage, one call each, back to back:
#   . scripts/gpu/setup_device.sh && bash scripts/gpu/h200_run.sh a   # + llama.cpp build
#   . scripts/gpu/setup_device.sh && bash scripts/gpu/h200_run.sh b
#   . scripts/gpu/setup_device.sh && bash scripts/gpu/h200_run.sh c   # needs /tmp/llama/DONE
# Issue 17 part 7 (llama.cpp sweeps and capacity), in a lease of its own, back to back:
#   . scripts/gpu/setup_device.sh && bash scripts/gpu/h200_run.sh build  # alone, all 16 cores
#   . scripts/gpu/setup_device.sh && bash scripts/gpu/h200_run.sh f  # Q4_K_M sweep + capacity
#   . scripts/gpu/setup_device.sh && bash scripts/gpu/h200_run.sh g  # Q8_0 sweep
#   . scripts/gpu/setup_device.sh && bash scripts/gpu/h200_run.sh k  # capacity, cache off
#   (h: build Q4_K_M + the sweep with the cache off, in one call; CALL_END=epoch end)
#   (e: the Q4_K_M sweep alone and the concurrency-10 entry, as first run)
# Benchmarks run on cores 0-7; the llama.cpp build in the background on cores 8-15.
set -o pipefail
part="$1"
run() {  # run NAME pytest-args...: one pytest session, its baseline part and its log in $OUT
  local name="$1"; shift
  taskset -c 0-7 python3 -m pytest -p pytest_gpubench.plugin -p no:cacheprovider --device=auto \
    --gpubench-measure-ceilings -W ignore::DeprecationWarning -rs \
    --gpubench-save-baseline="$OUT/part-$name.json" "$@" 2>&1 | tee "$OUT/part-$name.log" | \
    grep -v "^\s*$" | tail -60
}
T=benchmarks/test_transformers_inference.py
case "$part" in
  a)
    setsid nohup bash scripts/gpu/llamacpp_build.sh > /tmp/llama.log 2>&1 < /dev/null &
    run a benchmarks/test_llm_training.py::test_gemma_3_270m_full_finetune \
      benchmarks/test_llm_training.py::test_gemma_3_270m_finetune_packed \
      "$T::test_llama_3_1_8b_generate[1-eager]" "$T::test_llama_3_1_8b_generate[8-eager]" \
      "$T::test_llama_3_1_8b_generate[1-static]" "$T::test_llama_3_1_8b_generate[8-static]" \
      "$T::test_llama_3_1_8b_decode_loop[1]" "$T::test_llama_3_1_8b_decode_loop[8]"
    ;;
  b)
    run b benchmarks/test_object_detection.py::test_rtdetr_v2_r50vd_train \
      benchmarks/test_object_detection.py::test_rtdetr_v2_r50vd_train_device_data_b32
    tail -3 /tmp/llama.log
    ;;
  c)
    for _ in $(seq 60); do [ -e /tmp/llama/DONE ] && break; sleep 5; done
    bash scripts/gpu/llama_bench.sh  # alone on the GPU, before the serving benchmarks
    cp /tmp/llama/llama-bench.md /tmp/llama/build.log "$OUT/" 2>/dev/null
    run c --gpubench-images=20 "$T::test_gpt_oss_20b_moe_generate[1]" \
      benchmarks/test_image_generation.py::test_flux2_klein_4b \
      benchmarks/test_image_generation.py::test_z_image_turbo scripts/gpu/test_llamacpp_cuda.py \
      -k "not sweep and not capacity"
    ;;
  build)  # the llama.cpp build alone (nothing else runs): every core, waits for it
    BUILD_CORES=0-15 BUILD_JOBS=16 setsid nohup bash scripts/gpu/llamacpp_build.sh \
      > /tmp/llama.log 2>&1 < /dev/null &
    for _ in $(seq 110); do [ -e /tmp/llama/DONE ] && break; sleep 5; done
    grep -E "build rc|all done" /tmp/llama.log; ls -la /tmp/llama/*.gguf
    cp /tmp/llama.log "$OUT/llama-build.log"
    ;;
  e)  # issue 17 part 7: the Q4_K_M sweep and the concurrency-10 entry again (its first run,
    # in part c, recorded no placement: fixed since)
    for _ in $(seq 100); do [ -e /tmp/llama/DONE ] && break; sleep 5; done
    run e scripts/gpu/test_llamacpp_cuda.py -k "concurrency_sweep and q4_k_m or concurrency_10"
    ;;
  f)  # issue 17 part 7: the Q4_K_M sweep, then the capacity search from it (one test, both
    # time-budgeted: within one call)
    run f --gpubench-log-dir="$OUT/logs" scripts/gpu/test_llamacpp_cuda.py \
      -k "test_llama8b_capacity and not without"
    ;;
  g)  # the Q8_0 sweep: a second frontier on the same GPU
    run g --gpubench-log-dir="$OUT/logs" scripts/gpu/test_llamacpp_cuda.py -k "sweep and q8_0"
    ;;
  h)  # build (Q4_K_M only) and the Q4_K_M sweep with llama-server's host prompt cache off,
    # in one call (a fresh machine after f and g had spent most of the lease)
    BUILD_CORES=0-15 BUILD_JOBS=16 QUANTS=Q4_K_M setsid nohup bash scripts/gpu/llamacpp_build.sh \
      > /tmp/llama.log 2>&1 < /dev/null &
    for _ in $(seq 110); do [ -e /tmp/llama/DONE ] && break; sleep 5; done
    grep -E "build rc|all done" /tmp/llama.log; cp /tmp/llama.log "$OUT/llama-build.log"
    # CALL_END: the call's end (epoch s), set by the caller; the sweep gets what is left
    budget=$(( ${CALL_END:-$(( $(date +%s) + 460 ))} - $(date +%s) - 40 ))
    [ "$budget" -ge 30 ] || { echo "no time left for the sweep ($budget s)"; exit 1; }
    GPUBENCH_SWEEP_BUDGET_S=$budget run h --gpubench-log-dir="$OUT/logs" \
      scripts/gpu/test_llamacpp_cuda.py -k "sweep_without_host_prompt_cache"
    ;;
  k)  # after build: the Q4_K_M sweep + capacity search with the host prompt cache off
    run k --gpubench-log-dir="$OUT/logs" scripts/gpu/test_llamacpp_cuda.py \
      -k "capacity_without_host_prompt_cache"
    ;;
esac
