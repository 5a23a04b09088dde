#!/usr/bin/env bash
# The README's first command: install what is missing, build, start the
# emulator on a free loopback port, run the demo against it, stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh demo
bash scripts/build.sh

portfile=$(mktemp)
lua5.4 bin/envclone-emulator --port 0 --port-file "$portfile" --kontent-clone-seconds 2 --quiet &
emu=$!
trap 'kill $emu 2>/dev/null || true; rm -f "$portfile"' EXIT
for _ in $(seq 100); do [ -s "$portfile" ] && break; sleep 0.1; done
[ -s "$portfile" ] || { echo "envclone: the emulator did not start" >&2; exit 1; }

export ENVCLONE_EMULATOR_URL="http://127.0.0.1:$(cat "$portfile")"
export LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="${ENVCLONE_BUILD:-build}/?.so;;"
lua5.4 examples/demo.lua
