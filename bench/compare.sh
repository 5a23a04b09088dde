#!/usr/bin/env bash
# bench/compare.sh - two envclone trees (before and after a change) side by
# side against the same C peers, in one run.
#
#   git archive 1cd07ed | tar -x -C /tmp/bench-before   # an empty directory
#   git archive HEAD    | tar -x -C /tmp/bench-after
#   (cd /tmp/bench-before && bash scripts/build.sh)       # Lua 5.4, into build/
#   (cd /tmp/bench-after && bash scripts/build.sh)
#   bash bench/compare.sh /tmp/bench-before /tmp/bench-after
#
# Each tree is selected by LUA_PATH (TREE/lua) and LUA_CPATH (TREE/build);
# the clients are this tree's bench/client.lua, batch_client.lua and
# one_call.lua, the same for both, through envclone's public API only. The
# server is bench/lib.sh's private nginx on 127.0.0.1 (1 worker on CPU 0;
# every client on CPU 1). Four rows; in every round each row runs its three
# clients (before, after, the C peer) in an order that rotates from round to
# round:
#   get     BENCH_N sequential GETs, connection reused, vs bench/peer_curl.c
#           with one reused handle
#   post    BENCH_N_POST sequential creates (a fresh connection each), vs
#           peer_curl.c with CURLOPT_FRESH_CONNECT
#   batch   one envclone.batch of BENCH_BATCH_N GETs, BENCH_BATCH_K in flight,
#           vs bench/peer_multi.c (libcurl multi)
#   once    BENCH_ONCE fresh processes per client (bench/one_call.lua:
#           require, a client, one GET; the C program's one GET, and as a
#           diagnostic that program as bench/run.sh runs it, with 50 untimed
#           GETs before the one), alternating, each process timed alone
# A ratio is the median of the per-round ratios: req/s envclone ÷ peer for
# get, post and batch (higher is better); for once the median time envclone
# ÷ C (lower is better). "after ÷ before" compares the two trees measured in
# the same round. Then, unless BENCH_CALLGRIND=0, instructions per call
# (callgrind, client only): two runs of different N, the difference per call.
#
# Bounded: at most 7 rounds (BENCH_ROUNDS, default 7), no round starts once
# BENCH_BUDGET seconds (default 900) would be passed at the last round's
# pace, and every client run is under `timeout`. Only 127.0.0.1 is
# contacted. Prints a markdown report (and the raw lines); BENCH_OUT also
# writes it to a file.
#
# Environment: BENCH_ROUNDS (7), BENCH_BUDGET (900), BENCH_N (20000),
#   BENCH_N_POST (5000), BENCH_BATCH_N (20000), BENCH_BATCH_K (64),
#   BENCH_ONCE (20 per client and round), BENCH_CALLGRIND (1),
#   BENCH_CG_N (300), BENCH_PIN (1), BENCH_OUT, BENCH_LABELS ("before after")
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

say() { printf 'bench/compare: %s\n' "$*" >&2; }
if [ $# -ne 2 ]; then
  say "usage: bash bench/compare.sh BEFORE_TREE AFTER_TREE (each built: TREE/build/envclone/core.so)"
  exit 2
fi
trees=()
for t in "$1" "$2"; do
  if [ ! -f "$t/build/envclone/core.so" ] || [ ! -f "$t/lua/envclone/init.lua" ]; then
    say "$t: no build/envclone/core.so or lua/envclone/init.lua (run bash scripts/build.sh in it)"
    exit 2
  fi
  trees+=("$(cd "$t" && pwd)")
done
read -r label_before label_after <<<"${BENCH_LABELS:-before after}"

ROUNDS=${BENCH_ROUNDS:-7}
if [ "$ROUNDS" -gt 7 ]; then ROUNDS=7; fi
if [ "$ROUNDS" -lt 1 ]; then ROUNDS=1; fi
BUDGET=${BENCH_BUDGET:-900}
N_GET=${BENCH_N:-20000}
N_POST=${BENCH_N_POST:-5000}
N_BATCH=${BENCH_BATCH_N:-20000}
K=${BENCH_BATCH_K:-64}
ONCE=${BENCH_ONCE:-20}
CALLGRIND=${BENCH_CALLGRIND:-1}
CG_N=${BENCH_CG_N:-300}
CG_BASE=50
RUN_TIMEOUT=120
PORT=${BENCH_PORT:-18480}
for c in nginx lua5.4 cc pkg-config; do
  command -v "$c" >/dev/null || { say "missing $c"; exit 1; }
done
command -v valgrind >/dev/null || CALLGRIND=0

server_pin=()
client_pin=()
if [ "${BENCH_PIN:-1}" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  server_pin=(taskset -c 0)
  client_pin=(taskset -c 1)
fi

work=""      # both set by bench/lib.sh: the work directory, the nginx
nginx_pid=""
# shellcheck source=bench/lib.sh disable=SC1091
. bench/lib.sh
bench_init envclone-bench-compare
# shellcheck disable=SC2046
cc -O2 -g -Wall -Wextra -o "$work/peer_curl" bench/peer_curl.c $(pkg-config --cflags --libs libcurl)
# shellcheck disable=SC2046
cc -O2 -g -Wall -Wextra -o "$work/peer_multi" bench/peer_multi.c $(pkg-config --cflags --libs libcurl)
PORT=$(bench_free_port)
bench_nginx "" "" "${server_pin[@]}"
say "nginx on 127.0.0.1:$PORT (pid $nginx_pid); trees: $label_before=${trees[0]} $label_after=${trees[1]}"

# tree_env WHO: the env(1) words selecting that tree's envclone
tree_env() {
  local t=${trees[0]}
  if [ "$1" = after ]; then t=${trees[1]}; fi
  tree=(env LUA_CPATH="$t/build/?.so;;" LUA_PATH="$t/lua/?.lua;$t/lua/?/init.lua;;")
}

# run_client ROW WHO N [wrapper...]: the client's RESULT line (WHO: before,
# after or peer); the wrapper (valgrind) runs inside the pinning and env
run_client() {
  local row=$1 who=$2 n=$3
  shift 3
  if [ "$who" = peer ]; then
    local pre=(timeout "$RUN_TIMEOUT" "${client_pin[@]}" "$@")
    case $row in
      get) "${pre[@]}" "$work/peer_curl" get "$n" "$PORT" reuse once ;;
      post) "${pre[@]}" "$work/peer_curl" post "$n" "$PORT" fresh once ;;
      batch) "${pre[@]}" "$work/peer_multi" "$n" "$PORT" "$K" ;;
    esac
    return
  fi
  tree_env "$who"
  local pre=(timeout "$RUN_TIMEOUT" "${client_pin[@]}" "${tree[@]}" "$@")
  case $row in
    get | post) "${pre[@]}" lua5.4 "$root/bench/client.lua" envclone "$row" "$n" "$PORT" ;;
    batch) "${pre[@]}" lua5.4 "$root/bench/batch_client.lua" get "$n" "$PORT" "$K" ;;
  esac
}

# one_call WHO: one call in a fresh process, its wall time in µs. peer is
# the C program making one GET; peer51 is the same program as bench/run.sh
# runs it for its start-up row, with peer_curl.c's 50 untimed warm-up GETs
# before the one (kept as a diagnostic: it ties this row to run.sh's figures)
one_call() {
  local t0 t1
  t0=$(date +%s%N)
  if [ "$1" = peer ]; then
    timeout "$RUN_TIMEOUT" "${client_pin[@]}" "$work/peer_curl" get 1 "$PORT" reuse once warmup=0 >/dev/null
  elif [ "$1" = peer51 ]; then
    timeout "$RUN_TIMEOUT" "${client_pin[@]}" "$work/peer_curl" get 1 "$PORT" reuse once >/dev/null
  else
    tree_env "$1"
    timeout "$RUN_TIMEOUT" "${client_pin[@]}" "${tree[@]}" lua5.4 "$root/bench/one_call.lua" "$PORT" >/dev/null
  fi
  t1=$(date +%s%N)
  echo $(((t1 - t0) / 1000))
}

whos=(before after peer)
once_whos=(before after peer peer51)
results="$work/results.txt"
: >"$results"
started=$(date +%s)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
say "up to $ROUNDS rounds (budget $BUDGET s): $N_GET GETs, $N_POST creates, a batch of $N_BATCH ($K in flight), $ONCE one-call processes, per client (pinned: ${client_pin[*]:-no})"
done_rounds=0
for ((r = 1; r <= ROUNDS; r++)); do
  t_round=$(date +%s)
  for row in get post batch; do
    case $row in get) n=$N_GET ;; post) n=$N_POST ;; batch) n=$N_BATCH ;; esac
    for ((i = 0; i < 3; i++)); do
      who=${whos[$(((i + r) % 3))]}
      line=$(run_client "$row" "$who" "$n") || { say "$row $who failed"; exit 1; }
      echo "round=$r row=$row who=$who $line" >>"$results"
    done
  done
  for ((j = 0; j < ONCE; j++)); do
    for ((i = 0; i < 4; i++)); do
      who=${once_whos[$(((i + j + r) % 4))]}
      us=$(one_call "$who") || { say "one call $who failed"; exit 1; }
      echo "round=$r row=once who=$who us=$us" >>"$results"
    done
  done
  done_rounds=$r
  now=$(date +%s)
  say "round $r/$ROUNDS done ($((now - started)) s)"
  if [ $((now - started + now - t_round)) -gt "$BUDGET" ] && [ "$r" -lt "$ROUNDS" ]; then
    say "stopping after $r rounds: another would pass the $BUDGET s budget"
    break
  fi
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
timed_s=$(($(date +%s) - started))

# ---- callgrind: instructions per call (they do not depend on load) ----------
cg_run() { # row who n
  client_pin=()
  run_client "$1" "$2" "$3" valgrind --tool=callgrind --callgrind-out-file="$work/cg-$1-$2-$3.out" \
    >/dev/null 2>"$work/cg-$1-$2-$3.log"
}
if [ "$CALLGRIND" = 1 ]; then
  say "callgrind: each client twice, with different N"
  for row in get post batch; do
    if [ $row = batch ]; then a=500 b=$((500 + 2000)); else a=$CG_BASE b=$((CG_BASE + CG_N)); fi
    for who in "${whos[@]}"; do
      cg_run "$row" "$who" "$a" &
      p1=$!
      cg_run "$row" "$who" "$b" &
      p2=$!
      wait "$p1" || say "callgrind failed: $row $who $a"
      wait "$p2" || say "callgrind failed: $row $who $b"
      fa="$work/cg-$row-$who-$a.out"
      fb="$work/cg-$row-$who-$b.out"
      if [ -s "$fa" ] && [ -s "$fb" ]; then
        echo "IR row=$row who=$who per_call=$((($(cg_total "$fb") - $(cg_total "$fa")) / (b - a)))" >>"$results"
      fi
    done
  done
fi

# ---- report ----------------------------------------------------------------
report="$work/report.md"
{
  echo "Measured $(date -u '+%Y-%m-%d %H:%M') UTC on $(nproc) cores ($(uname -m), $(sed -n 's/^model name.*: //p' /proc/cpuinfo | head -1)),"
  echo "nginx $(nginx -v 2>&1 | sed 's/.*\///') (1 worker) on 127.0.0.1, $(curl-config --version 2>/dev/null || echo libcurl), $(lua5.4 -v 2>&1 | cut -d' ' -f1-2);"
  echo "$done_rounds rounds in $timed_s s (load average $load_before before, $load_after after the timed rounds);"
  echo "$label_before = ${trees[0]}, $label_after = ${trees[1]}."
  echo
  lua5.4 - "$results" "$label_before" "$label_after" "$N_GET" "$N_POST" "$N_BATCH" "$K" "$ONCE" <<'LUA'
local file, lb, la, n_get, n_post, n_batch, k, once = table.unpack(arg, 1, 8)
local median, range
do
  local bench_stats = dofile("bench/stats.lua")
  median, range = bench_stats.median, bench_stats.range
end
local rate, cpu, us, ir = {}, {}, {}, {} -- [row][round][who]; [row][who] list; [row][round][who] list; [row][who]
for line in io.lines(file) do
  local r, row, who, n, wall, c = line:match("^round=(%d+) row=(%a+) who=(%a+) RESULT .- n=(%d+) wall=([%d.]+) cpu=([%d.]+)")
  if r then
    rate[row] = rate[row] or {}
    rate[row][r] = rate[row][r] or {}
    rate[row][r][who] = tonumber(n) / tonumber(wall)
    cpu[row] = cpu[row] or {}
    cpu[row][who] = cpu[row][who] or {}
    table.insert(cpu[row][who], tonumber(c) / tonumber(n) * 1e6)
  end
  local r2, who2, t = line:match("^round=(%d+) row=once who=(%w+) us=(%d+)")
  if r2 then
    us[r2] = us[r2] or {}
    us[r2][who2] = us[r2][who2] or {}
    table.insert(us[r2][who2], tonumber(t))
  end
  local row3, who3, per = line:match("^IR row=(%a+) who=(%a+) per_call=(%-?%d+)")
  if row3 then ir[row3] = ir[row3] or {}; ir[row3][who3] = tonumber(per) end
end
-- per round: the ratios; x[who] = a figure of that round
local function ratios(per_round, higher_better)
  local out = { before = {}, after = {}, ab = {}, vals = { before = {}, after = {}, peer = {} } }
  for _, x in pairs(per_round) do
    if x.before and x.after and x.peer then
      table.insert(out.before, x.before / x.peer)
      table.insert(out.after, x.after / x.peer)
      table.insert(out.ab, x.after / x.before)
      for w, list in pairs(out.vals) do table.insert(list, x[w]) end
    end
  end
  out.higher_better = higher_better
  return out
end
local rows = {}
local names = {
  get = "sequential GET, reused connection, vs C libcurl one reused handle (req/s)",
  post = "sequential create, fresh connection, vs C libcurl FRESH_CONNECT (req/s)",
  batch = "batch of " .. n_batch .. " GETs, " .. k .. " in flight, vs C libcurl multi (req/s)",
  once = "one call in a fresh process vs the C program's one call (time; lower is better)",
  once51 = "the same vs the C program as bench/run.sh runs it (50 untimed GETs before its one; diagnostic)",
}
for _, row in ipairs({ "get", "post", "batch" }) do
  if rate[row] then rows[#rows + 1] = { row, ratios(rate[row], true) } end
end
local once_rounds = {}
for r, x in pairs(us) do
  once_rounds[r] = {}
  for w, list in pairs(x) do once_rounds[r][w] = median(list) end
end
if next(once_rounds) then
  rows[#rows + 1] = { "once", ratios(once_rounds, false) }
  local as_run_sh = {}
  for r, x in pairs(once_rounds) do as_run_sh[r] = { before = x.before, after = x.after, peer = x.peer51 } end
  rows[#rows + 1] = { "once51", ratios(as_run_sh, false) }
end
local function spread(t)
  local lo, hi = range(t)
  return string.format("%.2f-%.2f", lo, hi)
end
print(string.format("| row | %s ÷ peer | rounds | %s ÷ peer | rounds | %s ÷ %s | rounds |", lb, la, la, lb))
print("|---|---:|---:|---:|---:|---:|---:|")
for _, x in ipairs(rows) do
  local row, q = x[1], x[2]
  print(string.format("| %s | %.2fx | %s | %.2fx | %s | %.2fx | %s |", names[row], median(q.before), spread(q.before),
    median(q.after), spread(q.after), median(q.ab), spread(q.ab)))
end
print()
print(string.format("Per client (medians over the rounds; %s GETs, %s creates, a batch of %s, %s one-call processes per round):",
  n_get, n_post, n_batch, once))
print()
print("| row | client | req/s or ms (median) | min-max | client CPU per call |")
print("|---|---|---:|---:|---:|")
for _, x in ipairs(rows) do
  local row, q = x[1], x[2]
  for _, w in ipairs(row == "once51" and { "peer" } or { "before", "after", "peer" }) do
    local lo, hi = range(q.vals[w])
    local label = w == "peer" and (row == "once51" and "C peer as run.sh runs it" or "C peer") or (w == "before" and lb or la)
    if row:match("^once") then
      print(string.format("| %s | %s | %.1f ms | %.1f-%.1f | - |", row, label, median(q.vals[w]) / 1000, lo / 1000, hi / 1000))
    else
      print(string.format("| %s | %s | %.0f | %.0f-%.0f | %.1f µs |", row, label, median(q.vals[w]), lo, hi,
        median(cpu[row][w])))
    end
  end
end
print()
if next(ir) then
  print("Instructions per call (callgrind, client process only, user space; the difference of two runs of different N):")
  print()
  print(string.format("| row | %s | %s | C peer | %s ÷ %s | %s ÷ peer | %s ÷ peer |", lb, la, la, lb, lb, la))
  print("|---|---:|---:|---:|---:|---:|---:|")
  for _, row in ipairs({ "get", "post", "batch" }) do
    local t = ir[row]
    if t and t.before and t.after and t.peer then
      print(string.format("| %s | %.1f k | %.1f k | %.1f k | %.3fx | %.2fx | %.2fx |", row, t.before / 1000,
        t.after / 1000, t.peer / 1000, t.after / t.before, t.before / t.peer, t.after / t.peer))
    end
  end
  print()
end
LUA
  echo "Raw lines:"
  echo
  echo '```'
  cat "$results"
  echo '```'
} >"$report"
cat "$report"
if [ -n "${BENCH_OUT:-}" ]; then cp "$report" "$BENCH_OUT"; fi
say "done in $(($(date +%s) - started)) s"
