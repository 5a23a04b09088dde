#!/usr/bin/env bash
# bench/https.sh - envclone over HTTPS (HTTP/2 and HTTP/1.1) against libcurl
# in C, side by side in one run (issue 17's bench rows).
#
#   bash bench/https.sh          # about 3 minutes on 2 cores
#
# A private nginx on 127.0.0.1 is the TLS front end: one listener
# `ssl http2` (HTTP/2 offered by ALPN), one `ssl` alone (HTTP/1.1 only), a
# certificate from a throwaway CA made here with openssl (ECDSA P-256,
# TLS 1.2 and 1.3), `ssl_session_cache shared:...`, and an access log of
# `$server_port $server_protocol $connection $ssl_session_reused
# $ssl_protocol $request_method`. It answers as the Kontent stand-in of
# bench/run.sh does (`return 200` with the vendor's JSON). Every client
# verifies the certificate against the CA file.
#
# Rows (each round runs a row's clients in rotating order; the ratio is the
# median of the per-round ratios, as in run.sh and batch.sh):
#   batch    one envclone.batch of BENCH_HTTPS_BATCH_N GETs, max_in_flight K,
#            over HTTP/2 | bench/peer_multi.c: one multi handle, K handles,
#            CURLOPT_PIPEWAIT, a CURLSH sharing TLS sessions, the CA file
#   get-h2   BENCH_HTTPS_N sequential GETs over HTTP/2 | bench/peer_curl.c,
#   get-h1   ... over HTTP/1.1                          one reused handle
#   post-h2  BENCH_HTTPS_N_POST sequential creates (clone_environment: a
#   post-h1  fresh connection each) | peer_curl with CURLOPT_FRESH_CONNECT and
#            a CURLSH sharing TLS sessions
# Diagnostics beside the peers: envclone with its HTTP/2 watch on creates
# turned off (bench/nowatch.c, LD_PRELOAD), the C peer with the same watch
# turned on (CURLOPT_VERBOSE + a debug callback reading each line), and (over
# HTTP/2) the C peer with no TLS session kept: a full handshake per create.
# Then the TLS handshakes of BENCH_RESUME_N sequential creates in a fresh
# process, counted at nginx ($ssl_session_reused), and the same in a batch;
# then (valgrind) the instructions per call of each row's envclone client
# and peer, and per create with and without the watch.
# Every client run is bounded by `timeout`; only 127.0.0.1 is contacted.
#
# Environment:
#   BENCH_HTTPS_BATCH_N  GETs per batch run              (default 20000)
#   BENCH_BATCH_K        in flight in the batch row      (default 64)
#   BENCH_HTTPS_N        sequential GETs per run          (default 10000)
#   BENCH_HTTPS_N_POST   sequential creates per run       (default 1000)
#   BENCH_ROUNDS         rounds                           (default 7)
#   BENCH_RESUME_N       creates in the handshake row     (default 100)
#   BENCH_HTTPS_JIT      0 = no LuaJIT clients            (default 1 when luajit is there)
#   BENCH_CALLGRIND      0 = no instruction counts        (default 1 when valgrind is there)
#   BENCH_CG_N           creates in the callgrind difference (default 50)
#                        (GETs: 500, batched GETs: 2000)
#   BENCH_PIN            1 = nginx on CPU 0, clients on CPU 1 (default 1 on 2+ cores)
#   BENCH_OUT            also write the report to this file
#   ENVCLONE_BUILD, ENVCLONE_JIT_BUILD  build dirs holding envclone/core.so (else built here)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

N_BATCH=${BENCH_HTTPS_BATCH_N:-20000}
K=${BENCH_BATCH_K:-64}
N_GET=${BENCH_HTTPS_N:-10000}
N_POST=${BENCH_HTTPS_N_POST:-1000}
ROUNDS=${BENCH_ROUNDS:-7}
RESUME_N=${BENCH_RESUME_N:-100}
CG_N=${BENCH_CG_N:-50}
CG_BASE=10
RUN_TIMEOUT=120
CG_TIMEOUT=600

say() { printf 'bench/https: %s\n' "$*" >&2; }
for c in nginx lua5.4 cc pkg-config openssl; do
  command -v "$c" >/dev/null || { say "missing $c (apt-get install nginx-light lua5.4 gcc pkg-config openssl)"; exit 1; }
done
CALLGRIND=${BENCH_CALLGRIND:-1}
command -v valgrind >/dev/null || CALLGRIND=0

server_pin=()
client_pin=()
if [ "${BENCH_PIN:-1}" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  server_pin=(taskset -c 0)
  client_pin=(taskset -c 1)
fi

# ---- work dir, builds -------------------------------------------------------
# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_init envclone-bench-https
bench_build
curl_flags=$(pkg-config --cflags --libs libcurl)
# shellcheck disable=SC2086
cc -O2 -g -Wall -Wextra -o "$work/peer_curl" bench/peer_curl.c $curl_flags
# shellcheck disable=SC2086
cc -O2 -g -Wall -Wextra -o "$work/peer_multi" bench/peer_multi.c $curl_flags
cc -O2 -g -Wall -Wextra -shared -fPIC -o "$work/nowatch.so" bench/nowatch.c -ldl
jit_build=""
if [ "${BENCH_HTTPS_JIT:-1}" = 1 ] && command -v luajit >/dev/null && pkg-config --exists luajit; then
  if [ -n "${ENVCLONE_JIT_BUILD:-}" ] && [ -f "$ENVCLONE_JIT_BUILD/envclone/core.so" ]; then
    jit_build=$(cd "$ENVCLONE_JIT_BUILD" && pwd)
  else
    say "building envclone for LuaJIT into $work/jit"
    ENVCLONE_BUILD="$work/jit" bash scripts/build.sh -DENVCLONE_LUA=luajit -DENVCLONE_TESTS=OFF >/dev/null \
      && jit_build="$work/jit"
  fi
fi

# ---- a throwaway CA and the server's certificate ---------------------------
tls="$work/tls"
mkdir -p "$tls"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=envclone bench CA" \
  -keyout "$tls/ca.key" -out "$tls/ca.crt" >/dev/null 2>&1
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
  -keyout "$tls/server.key" -out "$tls/server.csr" >/dev/null 2>&1
printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=CA:FALSE" \
  "keyUsage=digitalSignature" "extendedKeyUsage=serverAuth" >"$tls/server.ext"
openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" -CAcreateserial -days 2 \
  -extfile "$tls/server.ext" -out "$tls/server.crt" >/dev/null 2>&1
openssl verify -CAfile "$tls/ca.crt" "$tls/server.crt" >/dev/null || { say "the throwaway CA did not verify"; exit 1; }
CA="$tls/ca.crt"

# ---- nginx: the plain listener of lib.sh, and the two TLS ones --------------
log="$work/nginx/logs/tls.log"
# shellcheck disable=SC2034 # read by bench_start_nginx (lib.sh)
bench_http_conf="log_format tls '\$server_port \$server_protocol \$connection \$ssl_session_reused \$ssl_protocol \$request_method';"
tls_server() { # the lines added to the stand-in's server block, for $H2 and $H1
  cat <<CONF
    listen 127.0.0.1:$H2 ssl http2 backlog=1024;
    listen 127.0.0.1:$H1 ssl backlog=1024;
    ssl_certificate $tls/server.crt;
    ssl_certificate_key $tls/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:envclone_bench:10m;
    ssl_session_timeout 1h;
    access_log $log tls;
CONF
}
started_nginx=0
for _ in $(seq 10); do
  PORT=$(bench_free_port)
  H2=$((PORT + 1))
  H1=$((PORT + 2))
  if bench_start_nginx "$(tls_server)" "" "${server_pin[@]}"; then started_nginx=1; break; fi
done
if [ "$started_nginx" != 1 ]; then
  say "could not start nginx"
  cat "$work/nginx/logs/error.log" >&2 2>/dev/null || true
  exit 1
fi
worker=""
for _ in $(seq 20); do
  worker=$(pgrep -P "$nginx_pid" 2>/dev/null | head -1 || true)
  [ -n "$worker" ] && break
  sleep 0.1
done
say "nginx $(nginx -v 2>&1 | sed 's/.*\///') on 127.0.0.1: HTTP/2 + TLS on $H2, HTTP/1.1 + TLS on $H1 (pid $nginx_pid)"

# ---- clients ----------------------------------------------------------------
base() { # port -> the envclone client's base_url
  printf 'https://127.0.0.1:%s/kontent/v2' "$1"
}
lua_run() { # lua5.4|luajit name script args... (envclone over https; PRELOAD: LD_PRELOAD for the VM)
  local vm=$1 name=$2 dir=$build pre=()
  shift 2
  [ "$vm" = luajit ] && dir=$jit_build
  [ -n "${PRELOAD:-}" ] && pre=(env "LD_PRELOAD=$PRELOAD")
  LUA_CPATH="$dir/?.so;;" LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;;" BENCH_CA_FILE="$CA" \
    timeout "$RUN_TIMEOUT" "${client_pin[@]}" "${pre[@]}" "$vm" "$@" | sed "s/ client=[^ ]* / client=$name /"
}
# run_client ROW CLIENT: prints the client's RESULT line
run_client() {
  local row=$1 c=$2 port=$H2 h1=() v=auto op n vm=lua5.4
  case $row in *-h1) port=$H1; h1=(h1); v=1.1 ;; esac
  case $row in post-*) op="post"; n=$N_POST ;; *) op="get"; n=$N_GET ;; esac
  case $c in *-luajit) vm=luajit ;; esac
  case $row:$c in
    batch:envclone-batch*)
      BENCH_BASE_URL=$(base "$H2") lua_run "$vm" "$c" bench/batch_client.lua get "$N_BATCH" "$H2" "$K" ;;
    batch:c-libcurl-multi)
      timeout "$RUN_TIMEOUT" "${client_pin[@]}" "$work/peer_multi" "$N_BATCH" "$H2" "$K" /kontent/v2 https \
        "ca=$CA" share pipewait "name=$c" ;;
    *:envclone-nowatch)
      PRELOAD="$work/nowatch.so" BENCH_BASE_URL=$(base "$port") BENCH_HTTP_VERSION=$v \
        lua_run lua5.4 "$c" bench/client.lua envclone "$op" "$n" "$port" ;;
    *:envclone*)
      BENCH_BASE_URL=$(base "$port") BENCH_HTTP_VERSION=$v lua_run "$vm" "$c" bench/client.lua envclone "$op" "$n" "$port" ;;
    get-*:c-libcurl)
      timeout "$RUN_TIMEOUT" "${client_pin[@]}" "$work/peer_curl" get "$n" "$port" https "${h1[@]}" "ca=$CA" share \
        pipewait "name=$c" ;;
    post-*:c-libcurl-fresh)
      timeout "$RUN_TIMEOUT" "${client_pin[@]}" "$work/peer_curl" post "$n" "$port" fresh https "${h1[@]}" "ca=$CA" \
        share "name=$c" ;;
    post-*:c-libcurl-fresh-watch)
      timeout "$RUN_TIMEOUT" "${client_pin[@]}" "$work/peer_curl" post "$n" "$port" fresh https "${h1[@]}" "ca=$CA" \
        share watch "name=$c" ;;
    post-*:c-libcurl-fresh-full)
      timeout "$RUN_TIMEOUT" "${client_pin[@]}" "$work/peer_curl" post "$n" "$port" fresh https "${h1[@]}" "ca=$CA" \
        nosessions "name=$c" ;;
    *) say "no client $c for $row"; return 1 ;;
  esac
}

# nginx's worker CPU time (clock ticks), and its access log's length once
# the last line of a run is written
ticks() { if [ -n "$worker" ]; then awk '{ print $14 + $15 }' "/proc/$worker/stat" 2>/dev/null || echo 0; else echo 0; fi; }
log_lines() {
  local a b
  b=$(wc -l <"$log")
  for _ in $(seq 40); do
    sleep 0.05
    a=$b
    b=$(wc -l <"$log")
    [ "$a" = "$b" ] && break
  done
  echo "$b"
}
# what nginx saw of lines FROM+1..TO: requests, connections, resumed
# handshakes, protocols
seen() { # from to
  sed -n "$(($1 + 1)),$2p" "$log" | awk '
    { n++; proto[$2] = 1; tlsv[$5] = 1
      if (!($3 in conn)) { conn[$3] = 1; c++; if ($4 == "r") r++; if (c == 1) first = $4 } }
    END { p = ""; for (k in proto) p = p (p == "" ? "" : ",") k
          t = ""; for (k in tlsv) t = t (t == "" ? "" : ",") k
          printf "requests=%d connections=%d resumed=%d first=%s proto=%s tls=%s\n", n, c, r, first, p, t }'
}
results="$work/results.txt"
: >"$results"
# run_one ROUND ROW CLIENT: one timed run, with what nginx saw of it
run_one() {
  local from to t0 t1 line
  from=$(log_lines)
  t0=$(ticks)
  line=$(run_client "$2" "$3") || { say "$3 ($2) failed"; exit 1; }
  t1=$(ticks)
  to=$(log_lines)
  echo "round=$1 row=$2 srv_ticks=$((t1 - t0)) $line" >>"$results"
  echo "SEEN round=$1 row=$2 client=$3 $(seen "$from" "$to")" >>"$results"
}

rows=(batch get-h2 get-h1 post-h2 post-h1)
clients_of() { # row -> its clients, the peer second
  local jit=""
  case $1 in
    batch) [ -n "$jit_build" ] && jit=envclone-batch-luajit
      echo envclone-batch c-libcurl-multi $jit ;;
    get-*) [ -n "$jit_build" ] && jit=envclone-luajit
      echo envclone c-libcurl $jit ;;
    post-h2) [ -n "$jit_build" ] && jit=envclone-luajit
      echo envclone c-libcurl-fresh $jit envclone-nowatch c-libcurl-fresh-watch c-libcurl-fresh-full ;;
    post-*) [ -n "$jit_build" ] && jit=envclone-luajit
      echo envclone c-libcurl-fresh $jit envclone-nowatch c-libcurl-fresh-watch ;;
  esac
}

started=$(date +%s)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
say "$ROUNDS rounds: batch of $N_BATCH GETs ($K in flight), $N_GET GETs and $N_POST creates per client and protocol (pinned: ${client_pin[*]:-no})"
for ((r = 1; r <= ROUNDS; r++)); do
  for row in "${rows[@]}"; do
    read -r -a list <<<"$(clients_of "$row")"
    k=${#list[@]}
    for ((i = 0; i < k; i++)); do
      run_one "$r" "$row" "${list[$(((i + r) % k))]}"
    done
  done
  say "round $r/$ROUNDS done ($(($(date +%s) - started)) s)"
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- TLS handshakes resumed: sequential creates in a fresh process ----------
# No warm-up: the first create of the process is a full handshake, every
# later one may resume the session libcurl kept.
say "handshakes: $RESUME_N creates per client, each in a fresh process"
handshakes() { # name command...
  local from to
  from=$(log_lines)
  "${@:2}" >/dev/null || { say "$1 failed"; exit 1; }
  to=$(log_lines)
  echo "HANDSHAKES name=$1 n=$RESUME_N $(seen "$from" "$to")" >>"$results"
}
for proto in h2 h1; do
  port=$H2
  v=auto
  h1=()
  if [ $proto = h1 ]; then port=$H1; v=1.1; h1=(h1); fi
  BENCH_WARMUP=0 BENCH_BASE_URL=$(base "$port") BENCH_HTTP_VERSION=$v \
    handshakes "envclone-$proto" lua_run lua5.4 envclone bench/client.lua envclone post "$RESUME_N" "$port"
  handshakes "c-libcurl-fresh-$proto" timeout "$RUN_TIMEOUT" "${client_pin[@]}" "$work/peer_curl" post "$RESUME_N" \
    "$port" fresh https "${h1[@]}" "ca=$CA" share warmup=0
done
# creates in a batch go out on the multi handle (8 in flight)
BENCH_BASE_URL=$(base "$H2") handshakes envclone-batch-h2 lua_run lua5.4 envclone-batch bench/batch_client.lua post \
  "$RESUME_N" "$H2" 8
handshakes c-libcurl-multi-h2 timeout "$RUN_TIMEOUT" "${client_pin[@]}" "$work/peer_multi" "$RESUME_N" "$H2" 8 \
  /kontent/v2 https "ca=$CA" share pipewait post warmup=0

# ---- callgrind: instructions per call, the watch with and without ---------
# Two runs per client of different N (BENCH_WARMUP/warmup= fixed); the
# difference divided by the difference in N is one call without start-up,
# the handshake of the first connection, or the warm-up. Counts do not
# depend on the machine's load, so two run at a time.
cg_run() { # row client n -> $work/cg-row-client-n.out
  local row=$1 c=$2 n=$3 port=$H2 v=auto h1=() pre=()
  local out="$work/cg-$row-$c-$n.out"
  local vg=(timeout "$CG_TIMEOUT" valgrind --tool=callgrind "--callgrind-out-file=$out")
  local lua_env=(env "LUA_CPATH=$build/?.so;;" "LUA_PATH=$root/lua/?.lua;$root/lua/?/init.lua;;" "BENCH_CA_FILE=$CA")
  case $row in *-h1) port=$H1; v=1.1; h1=(h1) ;; esac
  [ "$c" = envclone-nowatch ] && pre=("LD_PRELOAD=$work/nowatch.so")
  lua_env+=("BENCH_BASE_URL=$(base "$port")" "BENCH_HTTP_VERSION=$v" "BENCH_WARMUP=5" "${pre[@]}")
  case $row:$c in
    batch:envclone-batch) "${lua_env[@]}" "${vg[@]}" lua5.4 bench/batch_client.lua get "$n" "$H2" "$K" ;;
    batch:c-libcurl-multi) "${vg[@]}" "$work/peer_multi" "$n" "$H2" "$K" /kontent/v2 https "ca=$CA" share pipewait ;;
    get-*:envclone) "${lua_env[@]}" "${vg[@]}" lua5.4 bench/client.lua envclone get "$n" "$port" ;;
    get-*:c-libcurl) "${vg[@]}" "$work/peer_curl" get "$n" "$port" https "${h1[@]}" "ca=$CA" share pipewait warmup=5 ;;
    post-*:envclone | post-*:envclone-nowatch)
      "${lua_env[@]}" "${vg[@]}" lua5.4 bench/client.lua envclone post "$n" "$port" ;;
    post-*:c-libcurl-fresh)
      "${vg[@]}" "$work/peer_curl" post "$n" "$port" fresh https "${h1[@]}" "ca=$CA" share warmup=5 ;;
    post-*:c-libcurl-fresh-watch)
      "${vg[@]}" "$work/peer_curl" post "$n" "$port" fresh https "${h1[@]}" "ca=$CA" share watch warmup=5 ;;
  esac >/dev/null 2>"$work/cg-$row-$c-$n.log"
}
if [ "$CALLGRIND" = 1 ]; then
  say "callgrind: instructions per call (creates: $CG_BASE and $((CG_BASE + CG_N)) per client), two runs at a time"
  cg_jobs=("batch envclone-batch 500 2500" "batch c-libcurl-multi 500 2500"
    "get-h2 envclone 50 550" "get-h2 c-libcurl 50 550" "get-h1 envclone 50 550" "get-h1 c-libcurl 50 550")
  for c in envclone envclone-nowatch c-libcurl-fresh c-libcurl-fresh-watch; do
    cg_jobs+=("post-h2 $c $CG_BASE $((CG_BASE + CG_N))")
  done
  for c in envclone envclone-nowatch c-libcurl-fresh; do
    cg_jobs+=("post-h1 $c $CG_BASE $((CG_BASE + CG_N))")
  done
  for job in "${cg_jobs[@]}"; do
    read -r row c n1 n2 <<<"$job"
    cg_run "$row" "$c" "$n1" &
    p1=$!
    cg_run "$row" "$c" "$n2" &
    p2=$!
    wait "$p1" || say "callgrind run failed: $row $c $n1"
    wait "$p2" || say "callgrind run failed: $row $c $n2"
    a="$work/cg-$row-$c-$n1.out"
    b="$work/cg-$row-$c-$n2.out"
    if [ -s "$a" ] && [ -s "$b" ]; then
      echo "IR client=$c row=$row per_call=$((($(cg_total "$b") - $(cg_total "$a")) / (n2 - n1)))" >>"$results"
    fi
  done
fi

# ---- report -----------------------------------------------------------------
report="$work/report.md"
{
  echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores ($(uname -m), $(sed -n 's/^model name.*: //p' /proc/cpuinfo | head -1)),"
  echo "nginx $(nginx -v 2>&1 | sed 's/.*\///') with 1 worker on 127.0.0.1 (TLS: ECDSA P-256, $(openssl version | cut -d' ' -f1-2)),"
  echo "$(curl-config --version 2>/dev/null || echo libcurl), $(lua5.4 -v 2>&1 | cut -d' ' -f1-2)${jit_build:+, $(luajit -v | cut -d' ' -f1-2)};"
  echo "pinned: ${server_pin[*]:-no} for nginx, ${client_pin[*]:-no} for the clients; $ROUNDS rounds;"
  echo "load average $load_before before, $load_after after the timed rounds; $(($(date +%s) - started)) s in all."
  echo
  lua5.4 bench/https_report.lua "$results" "$K" "$(getconf CLK_TCK)"
  echo "Raw lines:"
  echo
  echo '```'
  cat "$results"
  echo '```'
} >"$report"
cat "$report"
if [ -n "${BENCH_OUT:-}" ]; then cp "$report" "$BENCH_OUT"; fi
say "done in $(($(date +%s) - started)) s"
