#!/usr/bin/env bash
# The test suite under AddressSanitizer + UndefinedBehaviorSanitizer (with
# LeakSanitizer at exit): builds the core with -DENVCLONE_SANITIZE=ON into
# its own directory, runs the C unit tests, then the whole busted suite in
# lua5.4 with gcc's libasan preloaded (the lua5.4 binary is not built with
# ASan; the preload makes every malloc of the process checked).  Any report
# fails the run.  Registered as the ctest test `asan`.
# Usage: scripts/asan.sh [build-dir]   (default build-asan)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dir=${1:-build-asan}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

cmake -S . -B "$dir" -DENVCLONE_SANITIZE=ON -DENVCLONE_WERROR=ON >/dev/null
cmake --build "$dir" -j "$(nproc)" >/dev/null
ldd "$dir/envclone/core.so" | grep libasan >/dev/null || { echo "asan: $dir/envclone/core.so is not built with ASan" >&2; exit 1; }
libasan=$(gcc -print-file-name=libasan.so)
[ -f "$libasan" ] || { echo "asan: gcc's libasan.so not found" >&2; exit 1; }
cc -shared -fPIC -O2 -o "$dir/nodlclose.so" spec/sanitizers/nodlclose.c
cc -shared -fPIC -O2 $(pkg-config --cflags lua5.4) -o "$dir/leak_canary.so" spec/sanitizers/leak_canary.c

export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1"
export LSAN_OPTIONS="suppressions=$root/spec/sanitizers/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
preload="$libasan $dir/nodlclose.so"

echo "asan: canary (a module that leaks on purpose must be reported)"
if out=$(LD_PRELOAD="$preload" LUA_CPATH="$dir/?.so;;" lua5.4 -e 'require("leak_canary")' 2>&1); then
  echo "asan: the canary leak was NOT reported: the set-up hides leaks" >&2; exit 1
fi
grep -q "LeakSanitizer: detected memory leaks" <<<"$out" || { echo "$out" >&2; exit 1; }

echo "asan: C unit tests"
"$dir/test_marshal"
"$dir/test_curl"

echo "asan: busted suite"
export ENVCLONE_BUILD="$dir" ENVCLONE_LUA=lua5.4 ENVCLONE_SANITIZER=asan
export LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;$root/?.lua;;" LUA_CPATH="$dir/?.so;;"
LD_PRELOAD="$preload" lua5.4 /usr/bin/busted --helper=spec/support/setup.lua spec
echo "asan: zero errors"
