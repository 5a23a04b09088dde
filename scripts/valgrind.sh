#!/usr/bin/env bash
# A subset of the suite under valgrind memcheck, against the ordinary build:
# the C unit tests, then the specs that drive every operation, every bad
# input and every hostile server through the C core. Any invalid access,
# use of uninitialised memory or "definitely lost" block fails the run.
# Registered as the ctest test `valgrind`.
# Usage: scripts/valgrind.sh [build-dir]   (default build)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dir=${1:-${ENVCLONE_BUILD:-build}}
dir=$(cd "$dir" && pwd)
command -v valgrind >/dev/null || { echo "valgrind: not installed (scripts/deps.sh test)" >&2; exit 1; }
[ -f "$dir/envclone/core.so" ] && [ -x "$dir/test_marshal" ] && [ -x "$dir/test_curl" ] || { echo "valgrind: build $dir first" >&2; exit 1; }
cc -shared -fPIC -O2 -o "$dir/nodlclose.so" spec/sanitizers/nodlclose.c
cc -shared -fPIC -O2 $(pkg-config --cflags lua5.4) -o "$dir/leak_canary.so" spec/sanitizers/leak_canary.c

vg=(valgrind --quiet --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99
    --suppressions="$root/spec/sanitizers/valgrind.supp")

echo "valgrind: canary (a module that leaks on purpose must be reported)"
rc=0
LD_PRELOAD="$dir/nodlclose.so" LUA_CPATH="$dir/?.so;;" "${vg[@]}" lua5.4 -e 'require("leak_canary")' 2>/dev/null || rc=$?
[ "$rc" -eq 99 ] || { echo "valgrind: the canary leak was NOT reported (exit $rc): the set-up hides leaks" >&2; exit 1; }

echo "valgrind: C unit tests"
"${vg[@]}" "$dir/test_marshal"
"${vg[@]}" "$dir/test_curl"

echo "valgrind: busted subset"
export ENVCLONE_BUILD="$dir" ENVCLONE_LUA=lua5.4 ENVCLONE_SANITIZER=valgrind
export LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;$root/?.lua;;" LUA_CPATH="$dir/?.so;;"
LD_PRELOAD="$dir/nodlclose.so" "${vg[@]}" lua5.4 /usr/bin/busted --helper=spec/support/setup.lua \
  spec/operations_spec.lua spec/battery_spec.lua spec/hostile_spec.lua spec/http1_spec.lua spec/tls_spec.lua \
  spec/safety_spec.lua spec/json_spec.lua spec/masking_spec.lua
echo "valgrind: zero errors"
