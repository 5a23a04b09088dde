#!/usr/bin/env bash
# The README's second command: install what is missing, build with
# warnings as errors, and run the whole suite with ctest. The suite also
# builds envclone.core for LuaJIT (<build>/jit, test luajit_build), runs the
# specs under luajit and the nginx/OpenResty test (spec/nginx), and checks
# the rockspec; -DENVCLONE_JIT_TESTS=OFF leaves the LuaJIT part out.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh test
bash scripts/build.sh
cd "${ENVCLONE_BUILD:-build}"
ctest --output-on-failure --timeout 1500
