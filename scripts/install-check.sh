#!/bin/sh
# The installed layout works on its own: `cmake --install` into a temporary
# prefix, then the installed bin/envclone and bin/envclone-emulator find their
# modules (share/lua/5.4, lib/lua/5.4) with no LUA_PATH, LUA_CPATH or
# ENVCLONE_BUILD, run from / so nothing of the source tree is on the path.
set -eu
build=$(cd "$1" && pwd)
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
cd /
bare() { env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4 -u ENVCLONE_BUILD "$@"; }
bare "$prefix/bin/envclone" --help >"$prefix/help" || { cat "$prefix/help"; exit 1; }
grep -q '^usage: envclone VENDOR' "$prefix/help"
bare "$prefix/bin/envclone" emulator --help | grep -q '^usage: envclone emulator'
bare "$prefix/bin/envclone-emulator" --help | grep -q '^usage: envclone-emulator'
echo "installed envclone runs from $prefix"
