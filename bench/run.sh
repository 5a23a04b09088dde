#!/usr/bin/env bash
# bench/run.sh - envclone against its peers, side by side in one run.
#
# Starts a private nginx on 127.0.0.1 that answers like Kontent.ai's
# cloning endpoints, then runs every client for the same N sequential
# requests, in rounds whose order rotates (so each client runs early and
# late), and reports medians and the median of the per-round ratios.
# Then counts instructions per call under callgrind (stable on a shared
# machine) and shows where an envclone call's instructions go.
#
# Only 127.0.0.1 is contacted. Every client run is bounded by `timeout`.
# The default run takes about 2-3 minutes on 2 cores.
#
# Environment:
#   BENCH_N          GET requests per client and round   (default 20000)
#   BENCH_N_POST     POST requests per client and round  (default BENCH_N/4)
#   BENCH_ROUNDS     rounds                              (default 5)
#   BENCH_CALLGRIND  1 = instruction counts and profile  (default 1 when valgrind is there)
#   BENCH_CG_N       calls in the callgrind difference   (default 300)
#   BENCH_PORT       first port to try                   (default 18480)
#   BENCH_OUT        also write the report to this file
#   ENVCLONE_BUILD   use this build dir's envclone/core.so instead of building one
#   BENCH_NO_INSTALL 1 = never apt-get install missing packages
#   BENCH_ONCE       fresh processes per client for the start-up row (default 40)
#   BENCH_RSS_N      calls in the RSS row (default 20000)
#   BENCH_PIN        1 = nginx's worker on CPU 0 and every client on CPU 1 (default 1 on 2+ cores)
#   BENCH_BATCH      0 = skip bench/batch.sh (batches against libcurl multi)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

N_GET=${BENCH_N:-20000}
N_POST=${BENCH_N_POST:-$((N_GET / 4))}
ROUNDS=${BENCH_ROUNDS:-5}
CG_N=${BENCH_CG_N:-300}
CG_BASE=50
PORT=${BENCH_PORT:-18480}
RUN_TIMEOUT=120
ONCE=${BENCH_ONCE:-40}
RSS_N=${BENCH_RSS_N:-20000}
# Pinned, the same pair of clients measures the same; unpinned on 2 shared
# cores it ranged from 0.4x to 1.7x (issue 13).
PIN=${BENCH_PIN:-1}
server_pin=()
client_pin=()
if [ "$PIN" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  server_pin=(taskset -c 0)
  client_pin=(taskset -c 1)
fi

say() { printf 'bench: %s\n' "$*" >&2; }

# ---- packages ---------------------------------------------------------------
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
if [ "${BENCH_NO_INSTALL:-0}" != 1 ] && command -v apt-get >/dev/null && [ "$(id -u)" -eq 0 ]; then
  bash scripts/deps.sh demo
  missing=()
  # lua-curl is Debian's luacurl 0.3.0, built for Lua 5.1 and 5.2 only
  for p in nginx-light lua-curl lua5.2 valgrind; do installed "$p" || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || true
    # nginx-light's postinst may fail to start the system service in a
    # container; that is fine, a private nginx is started below
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || true
  fi
fi
for c in nginx lua5.4 cc pkg-config; do
  command -v "$c" >/dev/null || { say "missing $c (apt-get install nginx-light lua5.4 gcc pkg-config)"; exit 1; }
done
have_luacurl=0
lua5.2 -e 'require("curl"); require("cjson"); require("socket")' 2>/dev/null && have_luacurl=1
have_luasocket=0
lua5.4 -e 'require("socket.http"); require("cjson")' 2>/dev/null && have_luasocket=1
CALLGRIND=${BENCH_CALLGRIND:-1}
command -v valgrind >/dev/null && command -v callgrind_annotate >/dev/null || CALLGRIND=0

# ---- work dir, builds -------------------------------------------------------
# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_init envclone-bench
bench_build
# shellcheck disable=SC2046
cc -O2 -g -Wall -Wextra -o "$work/peer_curl" bench/peer_curl.c $(pkg-config --cflags --libs libcurl)

# ---- the server ------------------------------------------------------------
bench_nginx "" "" "${server_pin[@]}"
say "nginx $(nginx -v 2>&1 | sed 's/.*\///') on 127.0.0.1:$PORT (pid $nginx_pid)"

# ---- clients ---------------------------------------------------------------
# run_client NAME OP N [wrapper...]: prints the client's RESULT line
run_client() {
  local name=$1 op=$2 n=$3
  shift 3
  set -- "${client_pin[@]}" "$@"
  case $name in
    envclone | envclone-core | envclone-rss | cjson-decode)
      LUA_CPATH="$build/?.so;;" LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;;" \
        timeout "$RUN_TIMEOUT" "$@" lua5.4 bench/client.lua "$name" "$op" "$n" "$PORT" ;;
    c-libcurl) timeout "$RUN_TIMEOUT" "$@" "$work/peer_curl" "$op" "$n" "$PORT" reuse once ;;
    c-libcurl-reset-each) timeout "$RUN_TIMEOUT" "$@" "$work/peer_curl" "$op" "$n" "$PORT" reuse each ;;
    c-libcurl-fresh) timeout "$RUN_TIMEOUT" "$@" "$work/peer_curl" "$op" "$n" "$PORT" fresh once ;;
    luacurl) timeout "$RUN_TIMEOUT" "$@" lua5.2 bench/client.lua luacurl "$op" "$n" "$PORT" ;;
    luasocket) timeout "$RUN_TIMEOUT" "$@" lua5.4 bench/client.lua luasocket "$op" "$n" "$PORT" ;;
  esac
}

get_clients=(envclone c-libcurl c-libcurl-reset-each)
post_clients=(envclone c-libcurl c-libcurl-fresh)
if [ "$have_luacurl" = 1 ]; then get_clients+=(luacurl); post_clients+=(luacurl); else say "skipping luacurl (lua5.2 + lua-curl missing)"; fi
if [ "$have_luasocket" = 1 ]; then get_clients+=(luasocket); post_clients+=(luasocket); else say "skipping luasocket"; fi

results="$work/results.txt"
: >"$results"
started=$(date +%s)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# round R runs the list rotated by R, so no client always goes first
run_round() {
  local r=$1 op=$2 n=$3
  shift 3
  local list=("$@")
  local k=${#list[@]} i
  for ((i = 0; i < k; i++)); do
    local c=${list[$(((i + r) % k))]}
    local line
    line=$(run_client "$c" "$op" "$n") || { say "$c $op failed"; exit 1; }
    echo "round=$r $line" >>"$results"
  done
}

say "$ROUNDS rounds of $N_GET GETs and $N_POST POSTs per client: ${get_clients[*]} / ${post_clients[*]}"
for ((r = 1; r <= ROUNDS; r++)); do
  run_round "$r" get "$N_GET" "${get_clients[@]}"
  run_round "$r" post "$N_POST" "${post_clients[@]}"
  say "round $r/$ROUNDS done ($(($(date +%s) - started)) s)"
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- callgrind: instructions per call --------------------------------------
# Two runs per client, CG_BASE and CG_BASE+CG_N requests; the difference
# divided by CG_N is the per-call cost without start-up. Counts do not
# depend on load, so two run at a time.
cg_run() { # client op n -> $work/cg-client-op-n.out
  run_client "$1" "$2" "$3" valgrind --tool=callgrind --callgrind-out-file="$work/cg-$1-$2-$3.out" \
    >/dev/null 2>"$work/cg-$1-$2-$3.log"
}
if [ "$CALLGRIND" = 1 ]; then
  say "callgrind: $CG_BASE and $((CG_BASE + CG_N)) calls per client"
  jobs_list=()
  for op in get post; do
    if [ $op = get ]; then list=(envclone envclone-core "${get_clients[@]:1}"); else list=(envclone envclone-core "${post_clients[@]:1}"); fi
    for c in "${list[@]}"; do
      jobs_list+=("$c $op $CG_BASE" "$c $op $((CG_BASE + CG_N))")
    done
  done
  # the floor for a Lua client: lua-cjson decoding the same answer
  jobs_list+=("cjson-decode get $CG_BASE" "cjson-decode get $((CG_BASE + CG_N))")
  for ((i = 0; i < ${#jobs_list[@]}; i += 2)); do
    # shellcheck disable=SC2086
    cg_run ${jobs_list[$i]} &
    p1=$!
    p2=""
    if [ $((i + 1)) -lt ${#jobs_list[@]} ]; then
      # shellcheck disable=SC2086
      cg_run ${jobs_list[$((i + 1))]} &
      p2=$!
    fi
    wait "$p1" || say "callgrind run failed: ${jobs_list[$i]}"
    [ -z "$p2" ] || wait "$p2" || say "callgrind run failed: ${jobs_list[$((i + 1))]}"
  done
  for op in get post; do
    for c in envclone envclone-core c-libcurl c-libcurl-reset-each c-libcurl-fresh luacurl luasocket cjson-decode; do
      a="$work/cg-$c-$op-$CG_BASE.out"
      b="$work/cg-$c-$op-$((CG_BASE + CG_N)).out"
      if [ ! -s "$a" ] || [ ! -s "$b" ]; then continue; fi
      echo "IR client=$c op=$op per_call=$((($(cg_total "$b") - $(cg_total "$a")) / CG_N))" >>"$results"
    done
  done
fi

# ---- one call in a fresh process; memory over many calls --------------------
# envclone's whole start-up (lua5.4, require, a client, one GET) against the
# C program's (exec, libcurl, one GET), alternating, each process timed alone.
ms_now() { date +%s%N; }
say "start-up: $ONCE fresh processes each, alternating"
for ((i = 0; i < ONCE; i++)); do
  for c in envclone c-libcurl; do
    t0=$(ms_now)
    if [ $c = envclone ]; then
      LUA_CPATH="$build/?.so;;" LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;;" \
        timeout "$RUN_TIMEOUT" "${client_pin[@]}" lua5.4 bench/one_call.lua "$PORT" >/dev/null
    else
      # warmup=0: one GET, as envclone's one_call.lua makes (the peer's
      # default 50 untimed requests made this row compare with 51 GETs)
      timeout "$RUN_TIMEOUT" "${client_pin[@]}" "$work/peer_curl" get 1 "$PORT" reuse once warmup=0 >/dev/null
    fi
    t1=$(ms_now)
    echo "ONCE client=$c us=$(((t1 - t0) / 1000))" >>"$results"
  done
done
say "RSS: $RSS_N calls in one process"
run_client envclone-rss get "$RSS_N" >>"$results" || say "the RSS run failed"

# ---- report ----------------------------------------------------------------
report="$work/report.md"
{
  echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores ($(uname -m), $(sed -n 's/^model name.*: //p' /proc/cpuinfo | head -1)),"
  echo "nginx $(nginx -v 2>&1 | sed 's/.*\///') with 1 worker on 127.0.0.1, $(curl-config --version 2>/dev/null || echo libcurl),"
  echo "$(lua5.4 -v 2>&1 | cut -d' ' -f1-2), lua-cjson; $ROUNDS rounds of $N_GET GETs and $N_POST POSTs per client;"
  echo "load average $load_before before, $load_after after the timed rounds (the bench itself adds about 2);"
  echo "$(($(date +%s) - started)) s in all."
  echo
  lua5.4 bench/report.lua "$results"
  if [ "$CALLGRIND" = 1 ]; then
    for op in get post; do
      a="$work/cg-envclone-$op-$CG_BASE.out"
      b="$work/cg-envclone-$op-$((CG_BASE + CG_N)).out"
      if [ ! -s "$a" ] || [ ! -s "$b" ]; then continue; fi
      echo "**Where an envclone ${op^^} goes** (callgrind, per call)"
      echo
      lua5.4 bench/profile.lua "$a" "$b" "$CG_N"
      echo
    done
  fi
  echo "Raw lines:"
  echo
  echo '```'
  cat "$results"
  echo '```'
  # batches against libcurl multi, and RSS over many batches (bench/batch.sh)
  if [ "${BENCH_BATCH:-1}" = 1 ]; then
    echo
    ENVCLONE_BUILD="$build" bash bench/batch.sh || echo "(bench/batch.sh failed)"
  fi
} >"$report"
cat "$report"
if [ -n "${BENCH_OUT:-}" ]; then cp "$report" "$BENCH_OUT"; fi
say "done in $(($(date +%s) - started)) s"
