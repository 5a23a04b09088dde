--- JSON for the command line: every byte of JSON it reads or writes goes
-- through these two functions, the C core's exact, locale-free pair: integers
-- as written (no 14-digit rounding), [] stays [] and {} stays {} (decoded
-- arrays carry envclone.array_mt), floats in the shortest form that reads back.
-- @module envclone.cli.json

local core = require("envclone.core")

local json = {}

--- Decodes JSON text from the command line.
-- @tparam string text
-- @return[1] the value
-- @return[2] nil
-- @treturn[2] string message, when the text is not JSON
function json.decode(text)
  local value, err = core.json_decode(text)
  if value == nil then return nil, tostring(err) end
  return value
end

local REPLACEMENT = "\239\191\189" -- U+FFFD

--- A copy of `s` in which every byte that does not belong to a valid UTF-8
-- sequence (overlong forms, surrogates and code points past U+10FFFF are not
-- valid) is replaced with U+FFFD; `s` itself when it is valid.
-- @tparam string s
-- @treturn string
function json.utf8_repair(s)
  local out, i, n, bad = {}, 1, #s, false
  while i <= n do
    local c = s:byte(i)
    local len, lo, hi = 0, 0x80, 0xBF -- lo/hi: the range of the second byte
    if c < 0x80 then len = 1
    elseif c >= 0xC2 and c <= 0xDF then len = 2
    elseif c == 0xE0 then len, lo = 3, 0xA0
    elseif c == 0xED then len, hi = 3, 0x9F
    elseif c >= 0xE1 and c <= 0xEF then len = 3
    elseif c == 0xF0 then len, lo = 4, 0x90
    elseif c >= 0xF1 and c <= 0xF3 then len = 4
    elseif c == 0xF4 then len, hi = 4, 0x8F
    end
    local ok = len > 0 and i + len - 1 <= n
    for k = 1, len - 1 do
      if not ok then break end
      local b = s:byte(i + k)
      if k == 1 then ok = b >= lo and b <= hi else ok = b >= 0x80 and b <= 0xBF end
    end
    if ok then
      out[#out + 1] = s:sub(i, i + len - 1)
      i = i + len
    else
      out[#out + 1] = REPLACEMENT
      bad = true
      i = i + 1
    end
  end
  return bad and table.concat(out) or s
end

-- Tables whose members print in a given order: table -> { key, ... }.
local key_order = setmetatable({}, { __mode = "k" })

--- Marks `t` (an object) so that `encode` writes the keys listed in
-- `keys` first, in that order; its other keys follow, sorted.
-- @tparam table t
-- @tparam {string,...} keys
-- @treturn table t
function json.ordered(t, keys)
  key_order[t] = keys
  return t
end

local function is_array(t)
  if getmetatable(t) == core.array_mt then return true end
  local n = #t
  if n == 0 then return false end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

local encode_value

-- A string, a number, a boolean or null as JSON (the C encoder's forms).
local function scalar(v)
  if type(v) == "string" then
    return core.json_encode(v) or assert(core.json_encode(json.utf8_repair(v)))
  end
  return assert(core.json_encode(v))
end

local function encode_object(t, buf, depth)
  local keys, seen = {}, {}
  for _, k in ipairs(key_order[t] or {}) do
    if t[k] ~= nil then keys[#keys + 1] = k; seen[k] = true end
  end
  local rest = {}
  for k in pairs(t) do
    if not seen[k] then rest[#rest + 1] = k end
  end
  table.sort(rest, function(x, y) return tostring(x) < tostring(y) end)
  for _, k in ipairs(rest) do keys[#keys + 1] = k end
  buf[#buf + 1] = "{"
  for i, k in ipairs(keys) do
    if i > 1 then buf[#buf + 1] = "," end
    buf[#buf + 1] = scalar(tostring(k))
    buf[#buf + 1] = ":"
    encode_value(t[k], buf, depth + 1)
  end
  buf[#buf + 1] = "}"
end

function encode_value(v, buf, depth)
  if depth > 64 then error("envclone: json: nested too deep", 0) end
  local tv = type(v)
  if tv == "table" then
    if is_array(v) then
      buf[#buf + 1] = "["
      for i = 1, #v do
        if i > 1 then buf[#buf + 1] = "," end
        encode_value(v[i], buf, depth + 1)
      end
      buf[#buf + 1] = "]"
    else
      encode_object(v, buf, depth)
    end
  elseif tv == "string" or tv == "number" or tv == "boolean" or v == core.null then
    buf[#buf + 1] = scalar(v)
  else
    buf[#buf + 1] = "null" -- a function or userdata: nothing JSON can hold
  end
end

--- Encodes a value for stdout, the same bytes on every run: an object's
-- keys in the order `ordered` gave, then sorted; arrays (decoded ones, or
-- tables 1..n) in order; strings, numbers and null as the C encoder writes
-- them. Strings that are not valid UTF-8 (a vendor's message in
-- ISO-8859-1) never stop the output: each invalid byte becomes U+FFFD.
-- @param value
-- @treturn string
function json.encode(value)
  local buf = {}
  encode_value(value, buf, 0)
  return table.concat(buf)
end

return json
