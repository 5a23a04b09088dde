#!/usr/bin/env bash
# Configures and builds envclone into build/ (or $ENVCLONE_BUILD).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${ENVCLONE_BUILD:-build}
cmake -S . -B "$dir" -DENVCLONE_WERROR=ON "$@" >/dev/null
cmake --build "$dir" -j "$(nproc)" >/dev/null
