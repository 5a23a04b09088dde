--- Timetables: a binary min-heap of entries `{ due, seq, ... }`, ordered by
-- `due`, then by `seq` (the order they were pushed). The batch runner's
-- timers and the limiter's sweep both keep one.
-- @module envclone.heap
local heap = {}

--- Pushes entry `e` (`{ due, seq, ... }`) onto heap `h`.
-- @tparam table h
-- @tparam table e
function heap.push(h, e)
  local n = #h + 1
  h[n] = e
  while n > 1 do
    local p = (n - n % 2) / 2
    local a, b = h[p], h[n]
    if a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) then break end
    h[p], h[n] = b, a
    n = p
  end
end

--- Takes the first entry (least `due`, then `seq`) off heap `h`.
-- @tparam table h
-- @treturn table the entry
function heap.pop(h)
  local top, last = h[1], h[#h]
  h[#h] = nil
  local n = #h
  if n > 0 then
    h[1] = last
    local i = 1
    while true do
      local l, r, m = 2 * i, 2 * i + 1, i
      if l <= n and (h[l][1] < h[m][1] or (h[l][1] == h[m][1] and h[l][2] < h[m][2])) then m = l end
      if r <= n and (h[r][1] < h[m][1] or (h[r][1] == h[m][1] and h[r][2] < h[m][2])) then m = r end
      if m == i then break end
      h[i], h[m] = h[m], h[i]
      i = m
    end
  end
  return top
end

return heap
