-- bench/https_report.lua - bench/https.sh's raw lines -> markdown tables.
--
--   lua5.4 bench/https_report.lua RESULTS K CLK_TCK
--
-- RESULTS holds, per timed run,
--   round=R row=ROW srv_ticks=T RESULT client=C op=OP n=N wall=S cpu=S
--   SEEN round=R row=ROW client=C requests=N connections=N resumed=N first=r|. proto=P tls=T
-- then HANDSHAKES name=NAME n=N requests=... (the same fields as SEEN)
-- and IR client=C row=ROW per_call=N (callgrind).
-- A row's ratio is the median of the per-round ratios (client / peer, both
-- measured in the same round, seconds apart); spread is their min-max.
local file, k, clk = arg[1], arg[2] or "64", tonumber(arg[3]) or 100

local median, range
do
  local bench_stats = dofile("bench/stats.lua")
  median, range = bench_stats.median, bench_stats.range
end
local function fields(s)
  local t = {}
  for key, v in s:gmatch("([%w_]+)=(%S+)") do t[key] = tonumber(v) or v end
  return t
end

local runs = {}      -- row -> round -> client -> { rate, cpu_us, srv_us }
local seen = {}      -- row -> client -> summed SEEN fields
local hand, ir = {}, {}
local hand_order = {}
for line in io.lines(file) do
  if line:match("^round=") then
    local f = fields(line)
    runs[f.row] = runs[f.row] or {}
    runs[f.row][f.round] = runs[f.row][f.round] or {}
    runs[f.row][f.round][f.client] = { rate = f.n / f.wall, cpu = f.cpu / f.n * 1e6,
      srv = f.srv_ticks / clk / f.n * 1e6 }
  elseif line:match("^SEEN ") then
    local f = fields(line)
    seen[f.row] = seen[f.row] or {}
    local s = seen[f.row][f.client] or { requests = 0, connections = 0, resumed = 0, proto = {}, tls = {} }
    s.requests = s.requests + f.requests
    s.connections = s.connections + f.connections
    s.resumed = s.resumed + f.resumed
    s.proto[f.proto] = true
    s.tls[f.tls] = true
    seen[f.row][f.client] = s
  elseif line:match("^HANDSHAKES ") then
    local f = fields(line)
    hand[f.name] = f
    hand_order[#hand_order + 1] = f.name
  elseif line:match("^IR ") then
    local f = fields(line)
    ir[f.row] = ir[f.row] or {}
    ir[f.row][f.client] = f.per_call
  end
end

local peer_of = { batch = "c-libcurl-multi", ["get-h2"] = "c-libcurl", ["get-h1"] = "c-libcurl",
  ["post-h2"] = "c-libcurl-fresh", ["post-h1"] = "c-libcurl-fresh" }
local row_title = {
  batch = "Batch of GETs, " .. k .. " in flight, HTTPS + HTTP/2",
  ["get-h2"] = "Sequential GETs, HTTPS + HTTP/2, connection reused",
  ["get-h1"] = "Sequential GETs, HTTPS + HTTP/1.1, connection reused",
  ["post-h2"] = "Sequential creates (clone_environment), HTTPS + HTTP/2, a fresh connection each",
  ["post-h1"] = "Sequential creates (clone_environment), HTTPS + HTTP/1.1, a fresh connection each",
}
local label = {
  ["envclone-batch"] = "envclone.batch, max_in_flight = " .. k .. " (Lua 5.4)",
  ["envclone-batch-luajit"] = "envclone.batch, max_in_flight = " .. k .. " (LuaJIT)",
  ["c-libcurl-multi"] = "C libcurl multi, " .. k .. " handles, PIPEWAIT, CURLSH (TLS sessions)",
  envclone = "envclone (Lua 5.4)",
  ["envclone-luajit"] = "envclone (LuaJIT)",
  ["envclone-nowatch"] = "envclone, HTTP/2 watch off (diagnostic, nowatch.c)",
  ["c-libcurl"] = "C libcurl, one reused handle",
  ["c-libcurl-fresh"] = "C libcurl, FRESH_CONNECT, CURLSH (TLS sessions)",
  ["c-libcurl-fresh-watch"] = "the same + VERBOSE and envclone's debug callback (diagnostic)",
  ["c-libcurl-fresh-full"] = "C libcurl, FRESH_CONNECT, no session kept: a full handshake each (diagnostic)",
}
local order = { "envclone-batch", "envclone-batch-luajit", "envclone", "envclone-luajit", "envclone-nowatch",
  "c-libcurl-multi", "c-libcurl", "c-libcurl-fresh", "c-libcurl-fresh-watch", "c-libcurl-fresh-full" }

-- per row: rates, cpu, srv and ratios (to the peer, or to another client)
local function stats(row, client, against)
  local rates, cpu, srv, ratios = {}, {}, {}, {}
  for _, per in pairs(runs[row] or {}) do
    local x = per[client]
    if x then
      rates[#rates + 1], cpu[#cpu + 1], srv[#srv + 1] = x.rate, x.cpu, x.srv
      local p = per[against or peer_of[row]]
      if p then ratios[#ratios + 1] = x.rate / p.rate end
    end
  end
  return rates, cpu, srv, ratios
end
local function ratio_text(ratios)
  if #ratios == 0 then return "-" end
  local lo, hi = range(ratios)
  return string.format("%.2fx (rounds %.2f-%.2f)", median(ratios), lo, hi)
end

local rows = { "batch", "get-h2", "get-h1", "post-h2", "post-h1" }

-- the headline: issue 17's rows
print("| row | envclone req/s | peer req/s | envclone ÷ peer (median of rounds) | rounds min-max | LuaJIT ÷ peer "
  .. "| target | met | client CPU per call, peer ÷ envclone |")
print("|---|---:|---:|---:|---:|---:|---:|:---:|---:|")
for _, row in ipairs(rows) do
  local me = row == "batch" and "envclone-batch" or "envclone"
  local rates, cpu, _, ratios = stats(row, me)
  if #rates > 0 then
    local peer_rates, peer_cpu = stats(row, peer_of[row], peer_of[row])
    local _, _, _, jit_ratios = stats(row, me .. "-luajit")
    local lo, hi = range(ratios)
    local m = median(ratios)
    print(string.format("| %s | %.0f | %.0f | %.2fx | %.2f-%.2f | %s | >= 0.95x | %s | %.2fx (%.1f ÷ %.1f µs) |",
      row_title[row], median(rates), median(peer_rates), m, lo, hi,
      #jit_ratios > 0 and string.format("%.2fx", median(jit_ratios)) or "-", m >= 0.95 and "yes" or "no",
      median(peer_cpu) / median(cpu), median(peer_cpu), median(cpu)))
  end
end
for _, proto in ipairs({ "h2", "h1" }) do
  local h = hand["envclone-" .. proto]
  if h then
    local later = h.connections - 1
    local resumed_later = h.resumed - (h.first == "r" and 1 or 0)
    print(string.format("| TLS handshakes resumed, %d sequential creates (%s, fresh process) | %d of %d (the first %s) "
      .. "| - | %d of the %d after the first | - | - | >= 99 of 100 | %s | - |", h.n,
      proto == "h2" and "HTTP/2" or "HTTP/1.1", h.resumed, h.connections,
      h.first == "r" and "resumed" or "a full handshake", resumed_later, later,
      (h.connections == h.n and h.resumed >= h.n - 1) and "yes" or "no"))
  end
end
print()

for _, row in ipairs(rows) do
  if runs[row] then
    local nrounds = 0
    for _ in pairs(runs[row]) do nrounds = nrounds + 1 end
    print(string.format("**%s** (median of %d rounds)", row_title[row], nrounds))
    print()
    print("| client | req/s (median) | req/s (min-max) | client CPU per call | nginx CPU per call "
      .. "| runs at … of the peer |")
    print("|---|---:|---:|---:|---:|---:|")
    for _, c in ipairs(order) do
      local rates, cpu, srv, ratios = stats(row, c)
      if #rates > 0 then
        local lo, hi = range(rates)
        print(string.format("| %s | %.0f | %.0f-%.0f | %.1f µs | %.1f µs | %s |", label[c] or c, median(rates), lo, hi,
          median(cpu), median(srv), c == peer_of[row] and "(the peer)" or ratio_text(ratios)))
      end
    end
    print()
  end
end

-- the watch's cost, measured two ways
local watch_lines = {}
for _, row in ipairs({ "post-h2", "post-h1" }) do
  local _, _, _, on_off = stats(row, "envclone", "envclone-nowatch")
  local _, _, _, c_on_off = stats(row, "c-libcurl-fresh-watch", "c-libcurl-fresh")
  if #on_off > 0 then
    watch_lines[#watch_lines + 1] = string.format("| %s | %s | %s |", row, ratio_text(on_off), ratio_text(c_on_off))
  end
end
if #watch_lines > 0 then
  print("**The HTTP/2 watch on creates** (src/ec_curl.c: CURLOPT_VERBOSE + on_debug on every create over https)")
  print()
  print("| row | envclone with ÷ without the watch (req/s) | C libcurl with ÷ without the same watch (req/s) |")
  print("|---|---:|---:|")
  for _, l in ipairs(watch_lines) do print(l) end
  print()
end
if next(ir) then
  print("**Instructions per call** (callgrind, the client process only, user space; the difference of two runs "
    .. "of different N, so start-up, warm-up and the first handshake cancel)")
  print()
  print("| row | envclone | peer | envclone ÷ peer |")
  print("|---|---:|---:|---:|")
  for _, row in ipairs(rows) do
    local t = ir[row] or {}
    local me = t["envclone-batch"] or t.envclone
    local p = t[peer_of[row]]
    if me and p then
      print(string.format("| %s | %.1f k | %.1f k | %.2fx |", row_title[row], me / 1000, p / 1000, me / p))
    end
  end
  for _, row in ipairs({ "post-h2", "post-h1" }) do
    local t = ir[row] or {}
    local proto = row == "post-h2" and "HTTP/2" or "HTTP/1.1"
    if t.envclone and t["envclone-nowatch"] then
      print(string.format("| the HTTP/2 watch, envclone: creates over %s with it and without (nowatch.c) "
        .. "| %.1f k | %.1f k | +%.1f k, %.1f%% of a create |", proto, t.envclone / 1000, t["envclone-nowatch"] / 1000,
        (t.envclone - t["envclone-nowatch"]) / 1000, (t.envclone - t["envclone-nowatch"]) / t.envclone * 100))
    end
    if t["c-libcurl-fresh"] and t["c-libcurl-fresh-watch"] then
      print(string.format("| the same watch in the C peer, creates over %s: with it and without | %.1f k | %.1f k "
        .. "| +%.1f k, %.1f%% |", proto, t["c-libcurl-fresh-watch"] / 1000, t["c-libcurl-fresh"] / 1000,
        (t["c-libcurl-fresh-watch"] - t["c-libcurl-fresh"]) / 1000,
        (t["c-libcurl-fresh-watch"] - t["c-libcurl-fresh"]) / t["c-libcurl-fresh-watch"] * 100))
    end
  end
  print()
end

-- what nginx saw: the protocol, connections, resumed handshakes
print("**What nginx saw** (its access log, all rounds, warm-up requests included)")
print()
print("| row | client | protocol | TLS | requests | connections | requests per connection | resumed handshakes |")
print("|---|---|---|---|---:|---:|---:|---:|")
local function keys(t)
  local out = {}
  for key in pairs(t) do out[#out + 1] = key end
  table.sort(out)
  return table.concat(out, ",")
end
for _, row in ipairs(rows) do
  for _, c in ipairs(order) do
    local s = seen[row] and seen[row][c]
    if s then
      print(string.format("| %s | %s | %s | %s | %d | %d | %.1f | %d of %d |", row, c, keys(s.proto), keys(s.tls),
        s.requests, s.connections, s.requests / math.max(1, s.connections), s.resumed, s.connections))
    end
  end
end
print()
if #hand_order > 0 then
  print("**TLS handshakes of creates**, each client in a fresh process with no warm-up (nginx's `$ssl_session_reused`)")
  print()
  print("| client | creates | connections | resumed | the first | protocol | TLS |")
  print("|---|---:|---:|---:|---|---|---|")
  for _, name in ipairs(hand_order) do
    local h = hand[name]
    print(string.format("| %s | %d | %d | %d | %s | %s | %s |", name, h.requests, h.connections, h.resumed,
      h.first == "r" and "resumed" or "full", h.proto, h.tls))
  end
  print()
end
