-- bench/profile.lua - where an envclone call's instructions go.
--
--   lua5.4 bench/profile.lua SMALL.callgrind LARGE.callgrind CALLS
--
-- Takes two callgrind profiles of the same client, the second with CALLS
-- more requests than the first, and prints per-call instruction counts
-- (inclusive) for the functions on envclone's path, and the self cost per
-- shared object. Start-up (loading Lua, dlopen, the operation table)
-- cancels out in the difference. Needs callgrind_annotate (valgrind).
local small, large, calls = arg[1], arg[2], tonumber(arg[3])
assert(small and large and calls, "usage: profile.lua SMALL LARGE CALLS")

-- function name -> Ir, object basename -> Ir
local function load(file, inclusive)
  local cmd = string.format("callgrind_annotate --auto=no --threshold=100 --inclusive=%s '%s' 2>/dev/null",
    inclusive and "yes" or "no", file)
  local fns, objs, total = {}, {}, nil
  local h = assert(io.popen(cmd))
  for line in h:lines() do
    local num, rest = line:match("^%s*([%d,]+)%s+%b()%s+(.*)$")
    if not num then num, rest = line:match("^%s*([%d,]+)%s+(.*)$") end
    if num then
      local ir = tonumber((num:gsub(",", "")))
      if rest:find("PROGRAM TOTALS", 1, true) then
        total = ir
      else
        local obj = rest:match("%[([^%]]*)%]%s*$")
        obj = obj and obj:match("([^/]+)$") or "(inlined code, object not named)"
        local fn = rest:gsub("%s*%[.*$", ""):match("([^:]+)$") or rest
        -- recursion levels ("'2") and file-less duplicates ("???:")
        -- are the same function: keep the largest figure
        if not fn:find("'", 1, true) then
          fns[fn] = math.max(fns[fn] or 0, ir)
        end
        if not inclusive then objs[obj] = (objs[obj] or 0) + ir end
      end
    end
  end
  h:close()
  return fns, objs, total
end

local a_fn, _, a_total = load(small, true)
local b_fn, _, b_total = load(large, true)
local _, a_obj = load(small, false)
local _, b_obj = load(large, false)

local function per(fn)
  if not b_fn[fn] then return nil end
  return (b_fn[fn] - (a_fn[fn] or 0)) / calls
end

local total = (b_total - a_total) / calls
local rows = {
  { "whole call (Lua loop included)", total, 0 },
  { "l_operation: the C function of the operation", per("l_operation"), 1 },
  { "ec_marshal_request: validate, path, JSON body, headers", per("ec_marshal_request"), 2 },
  { "ec_transport_perform: the libcurl transport", per("ec_transport_perform"), 2 },
  { "curl_easy_perform", per("curl_easy_perform"), 3 },
  { "on_header: header callback (5 captures per line)", per("on_header"), 4 },
  { "curl_easy_reset", per("curl_easy_reset"), 3 },
  { "curl_easy_setopt (about 20 per call)", per("curl_easy_setopt"), 3 },
  { "curl_slist_append + curl_slist_free_all", (per("curl_slist_append") or 0) + (per("curl_slist_free_all") or 0), 3 },
  { "ec_parse_response: status, JSON decode, result", per("ec_parse_response"), 2 },
  { "decode_json (lua-cjson decode)", per("decode_json.constprop.0") or per("decode_json"), 3 },
}
local lop = per("l_operation")
if lop then
  rows[#rows + 1] = { "outside the C core: Lua layer, argument tables, GC", total - lop, 1 }
end

print("| per call | instructions | share |")
print("|---|---:|---:|")
for _, r in ipairs(rows) do
  if r[2] then
    print(string.format("| %s%s | %.1f k | %.0f%% |", string.rep("&nbsp;&nbsp;", r[3]), r[1], r[2] / 1000,
      100 * r[2] / total))
  end
end
print("")
print("| self cost by object | instructions per call |")
print("|---|---:|")
local objs = {}
for o, v in pairs(b_obj) do objs[#objs + 1] = { o, (v - (a_obj[o] or 0)) / calls } end
table.sort(objs, function(x, y) return x[2] > y[2] end)
for _, o in ipairs(objs) do
  if o[2] >= 100 then print(string.format("| %s | %.1f k |", o[1], o[2] / 1000)) end
end
