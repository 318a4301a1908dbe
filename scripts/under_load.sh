#!/usr/bin/env bash
# Run a test command N times in a row beside a load that saturates every core (one busy loop
# per core, as `stress --cpu $(nproc)` would), and say how each run ended (issue 18: the unit
# tests must not depend on how busy the machine is).
# Usage: bash scripts/under_load.sh 3 python -m pytest tests --ignore=tests/integration -q
set -u
runs="$1"; shift
cores=$(nproc)
pids=()
for _ in $(seq "$cores"); do python3 -c "while True: pass" & pids+=("$!"); done
trap 'kill "${pids[@]}" 2>/dev/null' EXIT
echo "load: $cores busy loops beside the tests (load average now $(cut -d' ' -f1 /proc/loadavg))"
status=0
for i in $(seq "$runs"); do
  start=$(date +%s)
  "$@" > "/tmp/under-load-$i.log" 2>&1
  rc=$?
  [ "$rc" -ne 0 ] && status=1
  echo "run $i: exit $rc in $(( $(date +%s) - start )) s, load average $(cut -d' ' -f1 /proc/loadavg): $(tail -n 1 "/tmp/under-load-$i.log")"
done
exit "$status"
