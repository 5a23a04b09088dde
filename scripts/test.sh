#!/usr/bin/env bash
# The README's second command: install what is missing, build with
# warnings as errors, and run the whole suite with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh test
bash scripts/build.sh
cd "${ENVCLONE_BUILD:-build}"
ctest --output-on-failure --timeout 1500
