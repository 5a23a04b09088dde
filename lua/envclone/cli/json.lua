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

-- `value` with every string (keys too) repaired; tables copied, metatables kept.
local function repair(value, depth)
  if type(value) == "string" then return json.utf8_repair(value) end
  if type(value) ~= "table" or depth > 64 then return value end
  local copy = {}
  for k, v in pairs(value) do copy[repair(k, depth + 1)] = repair(v, depth + 1) end
  return setmetatable(copy, getmetatable(value))
end

--- Encodes a result for stdout. Strings that are not valid UTF-8 (a vendor's
-- message in ISO-8859-1) never stop the output: when the encoder refuses
-- them, each invalid byte is replaced with U+FFFD and the value encoded again.
-- @param value
-- @treturn string
function json.encode(value)
  local text = core.json_encode(value)
  if text == nil then text = assert(core.json_encode(repair(value, 0))) end
  return text
end

return json
