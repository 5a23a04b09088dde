-- bench/report.lua - turns bench/run.sh's raw lines into markdown tables.
--
--   lua5.4 bench/report.lua results.txt
--
-- Input lines (anything else is ignored):
--   round=<r> RESULT client=<c> op=<get|post> n=<N> wall=<s> cpu=<s>
--   IR client=<c> op=<get|post> per_call=<instructions>
-- Throughput is the median over rounds; a ratio is the median of the
-- per-round ratios (envclone and the peer measured in the same round, a
-- few seconds apart), which is what stays stable on a shared machine.
local path = assert(arg[1], "usage: report.lua results.txt")

local order = {
  "envclone", "envclone-core", "c-libcurl", "c-libcurl-reset-each", "c-libcurl-fresh", "luacurl", "luasocket",
}
local label = {
  ["envclone"] = "envclone (Lua 5.4)",
  ["envclone-core"] = "envclone C core only (diagnostic)",
  ["c-libcurl"] = "C libcurl, reused connection",
  ["c-libcurl-reset-each"] = "C libcurl, reset + setopt + slist per call",
  ["c-libcurl-fresh"] = "C libcurl, fresh connection per call",
  ["luacurl"] = "Debian lua-curl 0.3.0 + cjson (Lua 5.2)",
  ["luasocket"] = "LuaSocket socket.http + cjson (no keep-alive)",
}
local what = { get = "GET cloning state", post = "POST clone-environment" }

local runs, irs = {}, {} -- runs[op][client][round] = {rps, us}; irs[op][client] = n
for line in io.lines(path) do
  local r, c, op, n, wall, cpu =
    line:match("^round=(%d+) RESULT client=(%S+) op=(%a+) n=(%d+) wall=([%d.]+) cpu=([%d.]+)")
  if r then
    n, wall, cpu = tonumber(n), tonumber(wall), tonumber(cpu)
    runs[op] = runs[op] or {}
    runs[op][c] = runs[op][c] or {}
    runs[op][c][tonumber(r)] = { rps = n / wall, us = cpu / n * 1e6 }
  end
  local ic, iop, ir = line:match("^IR client=(%S+) op=(%a+) per_call=([%d.]+)")
  if ic then
    irs[iop] = irs[iop] or {}
    irs[iop][ic] = tonumber(ir)
  end
end

local function median(t)
  if #t == 0 then return nil end
  table.sort(t)
  local m = (#t + 1) // 2
  return #t % 2 == 1 and t[m] or (t[m] + t[m + 1]) / 2
end

local function field(rounds, key)
  local t = {}
  for _, v in pairs(rounds) do t[#t + 1] = v[key] end
  return t
end

local function ratio(env, peer)
  local t = {}
  for r, v in pairs(env) do
    if peer[r] then t[#t + 1] = v.rps / peer[r].rps end
  end
  return median(t), #t
end

local function fmt_ratio(x)
  if not x then return "-" end
  return string.format("%.2fx", x)
end

local function range(t)
  table.sort(t)
  return t[1], t[#t]
end

local out = {}
local function p(s) out[#out + 1] = s end

for _, op in ipairs{ "get", "post" } do
  local o = runs[op]
  if o then
    local env = o["envclone"]
    local nrounds = 0
    for _ in pairs(env or {}) do nrounds = nrounds + 1 end
    p(string.format("**%s** (median of %d rounds)", what[op], nrounds))
    p("")
    p("| client | req/s (median) | req/s (min-max) | client CPU per call | envclone runs at |")
    p("|---|---:|---:|---:|---:|")
    for _, c in ipairs(order) do
      if o[c] then
        local rps = median(field(o[c], "rps"))
        local lo, hi = range(field(o[c], "rps"))
        local us = median(field(o[c], "us"))
        local rel = "-"
        if env and c ~= "envclone" then rel = fmt_ratio((ratio(env, o[c]))) .. " of it" end
        p(string.format("| %s | %.0f | %.0f-%.0f | %.1f µs | %s |", label[c] or c, rps, lo, hi, us, rel))
      end
    end
    p("")
  end
end

if next(irs) then
  p("**Client instructions per call** (callgrind, user space only; the difference of two runs of "
    .. "different N, so start-up cancels)")
  p("")
  p("| client | GET | POST | GET ÷ C libcurl | POST ÷ C libcurl reused | POST ÷ C libcurl fresh |")
  p("|---|---:|---:|---:|---:|---:|")
  local g, q = irs.get or {}, irs.post or {}
  local function n(x) return x and string.format("%.1f k", x / 1000) or "-" end
  local function rel(x, b) return (x and b) and string.format("%.2fx", x / b) or "-" end
  for _, c in ipairs(order) do
    if g[c] or q[c] then
      p(string.format("| %s | %s | %s | %s | %s | %s |", label[c] or c, n(g[c]), n(q[c]), rel(g[c], g["c-libcurl"]),
        rel(q[c], q["c-libcurl"]), rel(q[c], q["c-libcurl-fresh"])))
    end
  end
  p("")
end

io.write(table.concat(out, "\n"), "\n")
