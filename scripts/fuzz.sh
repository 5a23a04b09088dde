#!/usr/bin/env bash
# Builds the libFuzzer harnesses (clang, -fsanitize=fuzzer,address,undefined)
# and runs each for SECONDS (default 60), all at once, from
# the committed seed corpora in fuzz/corpus/. New inputs go to the build
# directory, never into the repository; a crash, sanitizer report or broken
# invariant fails the run and leaves the input in <build>/artifacts/.
# Registered as the ctest test `fuzz`; fuzz/README.md has the long run.
# Usage: scripts/fuzz.sh [SECONDS] [build-dir]   (default 60, build-fuzz)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
secs=${1:-60}
dir=${2:-build-fuzz}
command -v clang >/dev/null || { echo "fuzz: clang is not installed (scripts/deps.sh test)" >&2; exit 1; }
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
cmake -S . -B "$dir" -DCMAKE_C_COMPILER=clang -DENVCLONE_FUZZ=ON -DENVCLONE_TESTS=OFF -DENVCLONE_WERROR=ON >/dev/null
cmake --build "$dir" -j "$(nproc)" --target fuzz_request fuzz_response fuzz_json fuzz_http1 >/dev/null

mkdir -p "$dir/artifacts"
pids=()
for h in request response json http1; do
  mkdir -p "$dir/corpus/$h"
  "$dir/fuzz/fuzz_$h" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -dict="$root/fuzz/$h.dict" -artifact_prefix="$dir/artifacts/$h-" \
    "$dir/corpus/$h" "$root/fuzz/corpus/$h" >"$dir/fuzz_$h.log" 2>&1 &
  pids+=($!)
done
status=0
i=0
for h in request response json http1; do
  rc=0
  wait "${pids[$i]}" || rc=$?
  i=$((i + 1))
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/fuzz_$h.log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/fuzz_$h.log")
  if [ "$rc" -ne 0 ]; then
    echo "fuzz_$h: FAILED (exit $rc) after ${runs:-?} runs; input in $dir/artifacts/, log $dir/fuzz_$h.log"
    grep -a -m 20 -E "invariant broken|ERROR|runtime error|SUMMARY|escaped" "$dir/fuzz_$h.log" || true
    status=1
  else
    echo "fuzz_$h: ${runs:-?} runs in ${secs} s (${rate:-?} exec/s), no crash, no sanitizer report, invariants held"
  fi
done
exit $status
