--- Medians and ranges for the bench reports (https_report.lua, compare.sh).
local M = {}

--- The median of the numbers in `t` (left unsorted), or nil when empty.
function M.median(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = v end
  table.sort(s)
  local m = #s
  if m == 0 then return nil end
  return m % 2 == 1 and s[(m + 1) / 2] or (s[m / 2] + s[m / 2 + 1]) / 2
end

--- The least and the greatest number of `t` (math.huge, -math.huge when empty).
function M.range(t)
  local lo, hi = math.huge, -math.huge
  for _, v in ipairs(t) do lo = math.min(lo, v); hi = math.max(hi, v) end
  return lo, hi
end

return M
