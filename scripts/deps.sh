#!/usr/bin/env bash
# Installs the Debian 12 packages envclone needs to build, demo and test,
# skipping those already present. Run as root (or with sudo available).
# Usage: scripts/deps.sh [demo|test]
set -euo pipefail

want=(build-essential pkg-config cmake lua5.4 liblua5.4-dev lua-cjson libcurl4-openssl-dev lua-socket)
if [ "${1:-demo}" = test ]; then
  want+=(lua-busted lua-check valgrind clang libclang-rt-14-dev openssl)
fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "envclone: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
