#!/usr/bin/env bash
# Checks envclone-*.rockspec: `luarocks make` into a temporary tree for each
# Lua version given (default 5.4 5.1), from a copy of the checkout (builtin
# builds leave objects beside the sources); every lua/envclone/**.lua must be
# installed, and `require "envclone"` must load with the installed core.so.
# Usage: scripts/check-rockspec.sh [5.1 5.2 5.3 5.4 ...]
set -euo pipefail
cd "$(dirname "$0")/.."
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(5.4 5.1)
rockspec=$(ls envclone-*.rockspec | head -n 1)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r src lua bin examples "$rockspec" "$work/"
# every C source of the core is built (a missing one only shows as an
# undefined symbol when the module loads)
for f in src/*.c; do
  grep -q "\"$f\"" "$rockspec" || { echo "the rockspec does not build $f (add it to envclone.core's sources)" >&2; exit 1; }
done

for v in "${versions[@]}"; do
  tree="$work/tree-$v"
  (cd "$work" && luarocks --lua-version "$v" make --tree "$tree" --deps-mode=none "$rockspec" >"$work/log-$v" 2>&1) || {
    cat "$work/log-$v" >&2
    echo "luarocks make failed for Lua $v" >&2
    exit 1
  }
  while IFS= read -r f; do
    [ -f "$tree/share/lua/$v/${f#lua/}" ] || {
      echo "the rockspec does not install $f (add it to build.modules)" >&2
      exit 1
    }
  done < <(find lua/envclone -name '*.lua' | sort)
  lua="lua$v"
  command -v "$lua" >/dev/null || { echo "skipping the load check: no $lua"; continue; }
  LUA_PATH="$tree/share/lua/$v/?.lua;$tree/share/lua/$v/?/init.lua;;" LUA_CPATH="$tree/lib/lua/$v/?.so;;" \
    "$lua" -e 'local e = require("envclone"); assert(e.kontent and e.operations[1], "incomplete module");
      print("luarocks make: " .. e._VERSION .. " for " .. _VERSION .. " ok")'
done
