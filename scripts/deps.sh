#!/usr/bin/env bash
# Installs the Debian 12 packages envclone needs to build, demo and test,
# skipping those already present. Run as root (or with sudo available).
# Usage: scripts/deps.sh [demo|test]
set -euo pipefail

# ca-certificates: the system CA bundle libcurl (and nginx's lua_ssl_trusted_certificate) verify
# TLS against; a minbase Debian has none, so no real HTTPS call could succeed.
want=(build-essential pkg-config cmake lua5.4 liblua5.4-dev lua-cjson libcurl4-openssl-dev lua-socket ca-certificates)
want+=(lua-filesystem) # envclone --credentials FILE: the file's mode
if [ "${1:-demo}" = test ]; then
  want+=(lua-busted lua-check valgrind clang libclang-rt-14-dev openssl clang-tidy)
  want+=(lua-sec) # spec/tls_spec.lua: the loopback HTTPS server (issue 6)
  want+=(faketime) # spec/support/pki.lua: an expired certificate, signed with the clock set back
  want+=(lua-ldoc tmux) # the reference and its docs check; spec/cli_tty_spec.lua (a real terminal)
  want+=(locales) # spec/json_spec.lua: localedef builds a de_DE.UTF-8 locale (issue 11)
  want+=(curl) # spec/nginx/code_cache_test.lua: many requests to nginx at once, each a curl in the background
  want+=(tinyproxy) # spec/tinyproxy_spec.lua: a real forward proxy, CONNECT to nginx's TLS front end (issue 17)
  want+=(redis-server) # spec/redis_*, spec/nginx/redis_*: the rate limiter's Redis store (issue 22);
  # the tests start their own server on a free port (the policy below keeps the system's from starting)
  # LuaJIT build and the nginx test (issue 5): Debian's luajit2 flavour is the
  # one libnginx-mod-http-lua links against (luajit/libluajit-5.1-dev conflict).
  want+=(luajit2 libluajit2-5.1-dev nginx-light libnginx-mod-http-lua lua-resty-core lua-resty-lrucache)
  want+=(luarocks liblua5.1-0-dev lua5.1) # scripts/check-rockspec.sh (luarocks make for 5.4 and 5.1)
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
# Installing nginx must not start the system's nginx (port 80; fails in
# containers and chroots): the tests start their own. A policy-rc.d that
# denies service starts does that; ours is removed again afterwards.
policy=/usr/sbin/policy-rc.d
own_policy=""
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# envclone deps.sh: no service starts during this install\nexit 101\n' | $sudo tee "$policy" >/dev/null
  $sudo chmod 755 "$policy"
  own_policy=1
fi
rc=0
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
[ -n "$own_policy" ] && $sudo rm -f "$policy"
exit $rc
