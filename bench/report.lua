-- bench/report.lua - turns bench/run.sh's raw lines into markdown tables.
--
--   lua5.4 bench/report.lua results.txt
--
-- Input lines (anything else is ignored):
--   round=<r> RESULT client=<c> op=<get|post> n=<N> wall=<s> cpu=<s>
--   IR client=<c> op=<get|post> per_call=<instructions>
--   ONCE client=<envclone|c-libcurl> us=<microseconds of one fresh process>
--   RSS client=envclone op=get calls=<N> at2k=<KiB> atN=<KiB>
-- Throughput is the median over rounds; a ratio is the median of the
-- per-round ratios (envclone and the peer measured in the same round, a
-- few seconds apart), which is what stays stable on a shared machine.
local path = assert(arg[1], "usage: report.lua results.txt")

local order = {
  "envclone", "envclone-core", "c-libcurl", "c-libcurl-reset-each", "c-libcurl-fresh", "luacurl", "luasocket",
  "cjson-decode",
}
local label = {
  ["envclone"] = "envclone (Lua 5.4)",
  ["envclone-core"] = "envclone C core only (diagnostic)",
  ["c-libcurl"] = "C libcurl, reused connection",
  ["c-libcurl-reset-each"] = "C libcurl, reset + setopt + slist per call",
  ["c-libcurl-fresh"] = "C libcurl, fresh connection per call",
  ["luacurl"] = "Debian lua-curl 0.3.0 + cjson (Lua 5.2)",
  ["luasocket"] = "LuaSocket socket.http + cjson (no keep-alive)",
  ["cjson-decode"] = "lua-cjson decoding the GET's answer (no I/O)",
}
local what = { get = "GET cloning state", post = "POST clone-environment" }

local runs, irs = {}, {} -- runs[op][client][round] = {rps, us}; irs[op][client] = n
local once, rss = {}, nil -- once[client] = { us... }
for line in io.lines(path) do
  local r, c, op, n, wall, cpu =
    line:match("^round=(%d+) RESULT client=(%S+) op=(%a+) n=(%d+) wall=([%d.]+) cpu=([%d.]+)")
  if r then
    n, wall, cpu = tonumber(n), tonumber(wall), tonumber(cpu)
    runs[op] = runs[op] or {}
    runs[op][c] = runs[op][c] or {}
    runs[op][c][tonumber(r)] = { rps = n / wall, us = cpu / n * 1e6 }
  end
  local oc, ous = line:match("^ONCE client=(%S+) us=(%d+)")
  if oc then
    once[oc] = once[oc] or {}
    table.insert(once[oc], tonumber(ous))
  end
  local rn, r2k, rN = line:match("^RSS client=envclone op=%a+ calls=(%d+) at2k=(%d+) atN=(%d+)")
  if rn then rss = { n = tonumber(rn), at2k = tonumber(r2k), atN = tonumber(rN) } end
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

-- The five rows issue 13 sets targets for, first.
do
  local rows = {}
  local function row(name, value, target, ok)
    rows[#rows + 1] = string.format("| %s | %s | %s | %s |", name, value, target,
      ok == nil and "-" or (ok and "yes" or "no"))
  end
  local g, q = runs.get or {}, runs.post or {}
  local rg = g.envclone and g["c-libcurl"] and ratio(g.envclone, g["c-libcurl"])
  row("GET, reused connection, vs C libcurl reused handle (req/s)", fmt_ratio(rg), ">= 0.95x", rg and rg >= 0.95)
  local rp = q.envclone and q["c-libcurl-fresh"] and ratio(q.envclone, q["c-libcurl-fresh"])
  row("create (POST) vs C libcurl with a fresh connection per call (req/s)", fmt_ratio(rp), ">= 0.95x",
    rp and rp >= 0.95)
  local ig = irs.get or {}
  local floor = ig["c-libcurl"] and ig["cjson-decode"] and ig["c-libcurl"] + ig["cjson-decode"]
  local ri = floor and ig.envclone and ig.envclone / floor
  row(string.format("instructions per GET vs the C floor + lua-cjson decode (%s vs %s + %s)",
      ig.envclone and string.format("%.1f k", ig.envclone / 1000) or "-",
      ig["c-libcurl"] and string.format("%.1f k", ig["c-libcurl"] / 1000) or "-",
      ig["cjson-decode"] and string.format("%.1f k", ig["cjson-decode"] / 1000) or "-"),
    fmt_ratio(ri), "<= 1.15x", ri and ri <= 1.15)
  local oe, oc = median(once.envclone or {}), median(once["c-libcurl"] or {})
  local ro = oe and oc and oe / oc
  row(string.format("one call in a fresh process vs the C program's one call (%s vs %s, medians)",
      oe and string.format("%.1f ms", oe / 1000) or "-", oc and string.format("%.1f ms", oc / 1000) or "-"),
    fmt_ratio(ro), "<= 1.2x", ro and ro <= 1.2)
  local grow = rss and rss.atN - rss.at2k
  row(string.format("RSS between 2k and %s calls", rss and (rss.n // 1000) .. "k" or "20k"),
    rss and string.format("%d KiB -> %d KiB (%+d KiB)", rss.at2k, rss.atN, grow) or "-", "flat",
    grow and grow <= 256)
  p("**Issue 13 targets** (measured " .. os.date("!%Y-%m-%d") .. ")")
  p("")
  p("| what | envclone | target | met |")
  p("|---|---:|---:|:---:|")
  for _, r in ipairs(rows) do p(r) end
  p("")
end

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
