#!/usr/bin/env bash
# bench/batch.sh - envclone batches against libcurl's multi interface in C,
# side by side in one run; then the resident set size over many batches.
#
#   bash bench/batch.sh            # about a minute on 2 cores
#
# A private nginx on 127.0.0.1 answers Kontent.ai's cloning-state GET (the
# same stand-in as bench/run.sh). Each round runs both clients, in rotating
# order, for BENCH_BATCH_N GETs with BENCH_BATCH_K in flight:
#   envclone-batch    one envclone.batch of get_cloning_state calls (Lua 5.4)
#   c-libcurl-multi   bench/peer_multi.c: one multi handle, K easy handles set
#                     up once and re-added, curl_multi_poll (the target's peer)
#   c-libcurl-multi-tuned  the same with libcurl set up as envclone sets it up
#                     (parsed URL, 1 KiB receive buffer): what of envclone's
#                     standing comes from those settings
# Then the same against a server that answers after BENCH_BATCH_DELAY_MS (5)
# ms, as a remote API would (nginx's echo module, libnginx-mod-http-echo;
# skipped when it is missing): there the wire, not the client, sets the pace.
# On 2 or more cores the nginx worker runs on CPU 0 and the clients on CPU 1
# (taskset): unpinned, the same pair measures anywhere from 0.4x to 1.7x.
# Prints a markdown section; only 127.0.0.1 is contacted; every run is
# bounded by `timeout`.
#
# Environment: BENCH_BATCH_N (20000), BENCH_BATCH_K (64), BENCH_ROUNDS (5),
#   BENCH_RSS_N (1000 calls per batch), BENCH_RSS_BATCHES (100), BENCH_BATCH_DELAY_MS
#   (5; 0 skips the delayed server), ENVCLONE_BUILD (a build dir with envclone/core.so; else one is built).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

N=${BENCH_BATCH_N:-20000}
K=${BENCH_BATCH_K:-64}
ROUNDS=${BENCH_ROUNDS:-5}
RSS_N=${BENCH_RSS_N:-1000}
RSS_BATCHES=${BENCH_RSS_BATCHES:-100}
PORT=18490
DELAY_MS=${BENCH_BATCH_DELAY_MS:-5}
ECHO_MODULE=/usr/lib/nginx/modules/ngx_http_echo_module.so
RUN_TIMEOUT=120

say() { printf 'bench/batch: %s\n' "$*" >&2; }
for c in nginx lua5.4 cc pkg-config; do
  command -v "$c" >/dev/null || { say "missing $c"; exit 1; }
done

# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_init envclone-bench-batch
bench_build
# shellcheck disable=SC2046
cc -O2 -g -Wall -Wextra -o "$work/peer_multi" bench/peer_multi.c $(pkg-config --cflags --libs libcurl)
# the same batch under LuaJIT (plain LuaJIT hosts: Neovim, scripts), when luajit is installed
jit_build=""
if command -v luajit >/dev/null && pkg-config --exists luajit; then
  if [ -n "${ENVCLONE_JIT_BUILD:-}" ] && [ -f "$ENVCLONE_JIT_BUILD/envclone/core.so" ]; then
    jit_build=$(cd "$ENVCLONE_JIT_BUILD" && pwd)
  else
    say "building envclone for LuaJIT into $work/jit"
    ENVCLONE_BUILD="$work/jit" bash scripts/build.sh -DENVCLONE_LUA=luajit -DENVCLONE_TESTS=OFF >/dev/null \
      && jit_build="$work/jit"
  fi
fi

server_cpu=()
client_cpu=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  server_cpu=(taskset -c 0)
  client_cpu=(taskset -c 1)
fi

load_echo=""
slow_location=""
if [ -f "$ECHO_MODULE" ] && [ "$DELAY_MS" != 0 ]; then
  load_echo="load_module $ECHO_MODULE;"
  delay=$(awk "BEGIN { printf \"%.3f\", $DELAY_MS / 1000 }")
  slow_location="location ~ ^/slow/kontent/v2/projects/[0-9a-fA-F-]+/environment-cloning-state\$ { echo_sleep $delay; echo -n '{\"cloning_state\":\"done\"}'; }"
fi
PORT=$(bench_free_port)
bench_nginx "$slow_location" "$load_echo" "${server_cpu[@]}"

lua_env=(env LUA_CPATH="$build/?.so;;" LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;;")
jit_env=(env LUA_CPATH="$jit_build/?.so;;" LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;;")
run_client() { # client prefix
  case $1 in
    envclone-batch) timeout "$RUN_TIMEOUT" "${client_cpu[@]}" "${lua_env[@]}" lua5.4 bench/batch_client.lua get "$N" "$PORT" "$K" "$2" ;;
    c-libcurl-multi) timeout "$RUN_TIMEOUT" "${client_cpu[@]}" "$work/peer_multi" "$N" "$PORT" "$K" "$2" ;;
    c-libcurl-multi-tuned) timeout "$RUN_TIMEOUT" "${client_cpu[@]}" "$work/peer_multi" "$N" "$PORT" "$K" "$2" tuned ;;
    envclone-batch-luajit)
      timeout "$RUN_TIMEOUT" "${client_cpu[@]}" "${jit_env[@]}" luajit bench/batch_client.lua get "$N" "$PORT" "$K" "$2" \
        | sed 's/client=envclone-batch /client=envclone-batch-luajit /' ;;
  esac
}

clients=(envclone-batch c-libcurl-multi c-libcurl-multi-tuned)
if [ -n "$jit_build" ]; then clients+=(envclone-batch-luajit); fi
rounds() { # prefix results-file
  for ((r = 1; r <= ROUNDS; r++)); do
    for ((i = 0; i < ${#clients[@]}; i++)); do
      c=${clients[$(((i + r) % ${#clients[@]}))]}
      line=$(run_client "$c" "$1") || { say "$c failed"; exit 1; }
      echo "round=$r $line" >>"$2"
    done
  done
}
results="$work/results.txt"
slow_results="$work/slow.txt"
: >"$results"
: >"$slow_results"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
say "$ROUNDS rounds of $N GETs, $K in flight: ${clients[*]} (pinned: ${client_cpu[*]:-no})"
rounds /kontent/v2 "$results"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
if [ -n "$slow_location" ]; then
  say "$ROUNDS rounds against a server answering after $DELAY_MS ms"
  rounds /slow/kontent/v2 "$slow_results"
fi
say "RSS: $RSS_BATCHES batches of $RSS_N calls"
"${lua_env[@]}" timeout "$RUN_TIMEOUT" lua5.4 bench/batch_client.lua rss "$RSS_N" "$PORT" "$K" "$RSS_BATCHES" >"$work/rss.txt"

lua5.4 - "$results" "$work/rss.txt" "$K" "$N" "$ROUNDS" "$load_before" "$load_after" "$slow_results" "$DELAY_MS" <<'LUA'
local results, rss_file, k, n, rounds, lb, la = arg[1], arg[2], arg[3], arg[4], arg[5], arg[6], arg[7]
local slow_file, delay_ms = arg[8], arg[9]
local function median(t)
  table.sort(t)
  local m = #t
  if m == 0 then return 0 end
  return m % 2 == 1 and t[(m + 1) / 2] or (t[m / 2] + t[m / 2 + 1]) / 2
end
local function range(t)
  local lo, hi = math.huge, 0
  for _, v in ipairs(t) do lo = math.min(lo, v); hi = math.max(hi, v) end
  return lo, hi
end
local function table_of(file, title)
local per = {}   -- round -> client -> req/s
local cpu = {}   -- client -> list of cpu per call (us)
for line in io.lines(file) do
  local r, c, nn, wall, c_cpu = line:match("^round=(%d+) RESULT client=(%S+) op=%a+ n=(%d+) wall=([%d.]+) cpu=([%d.]+)")
  if r then
    per[r] = per[r] or {}
    per[r][c] = tonumber(nn) / tonumber(wall)
    cpu[c] = cpu[c] or {}
    table.insert(cpu[c], tonumber(c_cpu) / tonumber(nn) * 1e6)
  end
end
local names = { "envclone-batch", "envclone-batch-luajit", "c-libcurl-multi", "c-libcurl-multi-tuned" }
local rates, ratios = {}, {}
for _, c in ipairs(names) do rates[c], ratios[c] = {}, {} end
for _, row in pairs(per) do
  for c, v in pairs(row) do table.insert(rates[c], v) end
  for _, c in ipairs(names) do
    if row[c] and row["c-libcurl-multi"] then table.insert(ratios[c], row[c] / row["c-libcurl-multi"]) end
  end
end
if not next(per) then return end
print(title)
print()
print("| client | req/s (median) | req/s (min-max) | client CPU per call | runs at … of C libcurl multi |")
print("|---|---:|---:|---:|---:|")
local labels = { ["envclone-batch"] = "envclone.batch, max_in_flight = " .. k .. " (Lua 5.4)",
  ["envclone-batch-luajit"] = "envclone.batch, max_in_flight = " .. k .. " (LuaJIT)",
  ["c-libcurl-multi"] = "C libcurl multi, " .. k .. " in flight",
  ["c-libcurl-multi-tuned"] = "C libcurl multi, " .. k .. " in flight, set up as envclone sets libcurl up (parsed URL, 1 KiB buffer)" }
for _, c in ipairs(names) do
  if #rates[c] > 0 then
    local lo, hi = range(rates[c])
    local lo_r, hi_r = range(ratios[c])
    print(string.format("| %s | %.0f | %.0f-%.0f | %.1f µs | %s |", labels[c], median(rates[c]), lo, hi,
      median(cpu[c] or {}), c == "c-libcurl-multi" and "-"
        or string.format("%.2fx (rounds: %.2f-%.2f)", median(ratios[c]), lo_r, hi_r)))
  end
end
print()
end
table_of(results, string.format("**Batch of GETs, %s in flight, immediate answers** (%s GETs per run, median of %s rounds; "
  .. "load average %s before, %s after)", k, n, rounds, lb, la))
table_of(slow_file, string.format("**Batch of GETs, %s in flight, answers after %s ms** (as from a remote API)", k, delay_ms))
local rows = {}
for line in io.lines(rss_file) do
  local calls, kb = line:match("^RSS calls=(%d+) kb=(%d+)")
  if calls then rows[#rows + 1] = { tonumber(calls), tonumber(kb) } end
end
if #rows > 0 then
  -- glibc's heap settles over the first batches (the figures step up, then
  -- stay): the row compares the end of the 20th batch (or the 2nd, on a
  -- short run) with the last
  local first, last = rows[1], rows[#rows]
  local settled = rows[math.min(#rows, 21)] or rows[2] or first
  local out = {}
  for i, r in ipairs(rows) do
    if i <= 3 or i % 10 == 1 or i == #rows then out[#out + 1] = string.format("%d: %d", r[1], r[2]) end
  end
  print(string.format("**RSS over batches** (KiB after N calls; batches of %d): %s", rows[2] and rows[2][1] or 0,
    table.concat(out, ", ")))
  print()
  print(string.format("From %d calls (%d KiB) to %d (%d KiB): %+d KiB; from the first batch's end: %+d KiB.",
    settled[1], settled[2], last[1], last[2], last[2] - settled[2], last[2] - (rows[2] or first)[2]))
end
LUA
