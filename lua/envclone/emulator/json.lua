--- JSON for the emulator: lua-cjson decodes; the encoder is our own because
-- Debian's lua-cjson 2.1.0 cannot tell an empty array from an empty object
-- (no `empty_array_mt`) nor echo a client's raw JSON (Droplit's `meta`), and
-- the vendors' bodies need both (`"files":[]`, `"labels":{}`).
-- The raw-text inspection tells arrays from objects in a request body, which a
-- decoded cjson table cannot.
-- @module envclone.emulator.json

local cjson_safe = require("cjson.safe")

local M = {}

M.null = cjson_safe.null

--- A private cjson instance: bounded nesting, no NaN/Infinity/hex numbers.
local decoder = cjson_safe.new()
decoder.decode_max_depth(64)
decoder.decode_invalid_numbers(false)

--- Decodes JSON text (cjson.safe: nil plus a message on bad input).
-- @tparam string text
function M.decode(text)
  return decoder.decode(text)
end

local NULL = M.null
local ARRAY_MT = { __name = "envclone.emulator.array" }
local OBJECT_MT = { __name = "envclone.emulator.object" }
local RAW_MT = { __name = "envclone.emulator.raw_json" }

--- Marks a table as a JSON array (so that it encodes as `[]` when empty).
-- @tparam[opt] table t
-- @treturn table t
function M.array(t) return setmetatable(t or {}, ARRAY_MT) end

--- Marks a table as a JSON object (so that it encodes as `{}` when empty).
-- @tparam[opt] table t
-- @treturn table t
function M.object(t) return setmetatable(t or {}, OBJECT_MT) end

--- Wraps raw JSON text to be emitted as is.
-- @tparam string text valid JSON
function M.raw(text) return setmetatable({ text }, RAW_MT) end

local ESCAPES = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}

local function escape_string(s)
  local escaped = s:gsub('[%c"\\]', function(c)
    return ESCAPES[c] or string.format("\\u%04x", c:byte())
  end)
  return '"' .. escaped .. '"'
end

local function is_sequence(t)
  local n, count = #t, 0
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 or k > n then return false end
    count = count + 1
  end
  return count == n
end

local function encode_number(v)
  if math.type(v) == "integer" then return string.format("%d", v) end
  if v ~= v or v == math.huge or v == -math.huge then return "null" end
  local i = math.tointeger(v)
  if i and math.abs(v) < 2 ^ 53 then return string.format("%d", i) end
  local s = string.format("%.14g", v)
  if tonumber(s) ~= v then s = string.format("%.17g", v) end
  return s
end

local function encode_value(v, out, depth)
  if depth > 64 then error("JSON nesting too deep", 0) end
  local tv = type(v)
  if v == nil or v == NULL then
    out[#out + 1] = "null"
  elseif tv == "boolean" then
    out[#out + 1] = tostring(v)
  elseif tv == "number" then
    out[#out + 1] = encode_number(v)
  elseif tv == "string" then
    out[#out + 1] = escape_string(v)
  elseif tv == "table" then
    local mt = getmetatable(v)
    if mt == RAW_MT then
      out[#out + 1] = v[1]
    elseif mt == ARRAY_MT or (mt ~= OBJECT_MT and next(v) ~= nil and is_sequence(v)) then
      out[#out + 1] = "["
      for i = 1, #v do
        if i > 1 then out[#out + 1] = "," end
        encode_value(v[i], out, depth + 1)
      end
      out[#out + 1] = "]"
    else
      local keys = {}
      for k in pairs(v) do keys[#keys + 1] = { tostring(k), k } end
      table.sort(keys, function(a, b) return a[1] < b[1] end)
      out[#out + 1] = "{"
      for i, pair in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        out[#out + 1] = escape_string(pair[1])
        out[#out + 1] = ":"
        encode_value(v[pair[2]], out, depth + 1)
      end
      out[#out + 1] = "}"
    end
  else
    error("cannot encode a " .. tv .. " as JSON", 0)
  end
end

--- Encodes a Lua value as JSON.
-- Tables made by `array()` / `object()` keep their kind even when empty; other
-- empty tables encode as `{}`; `cjson.null` encodes as `null`; keys are sorted
-- so output is deterministic.
-- @param v the value
-- @treturn string JSON text
function M.encode(v)
  local out = {}
  encode_value(v, out, 0)
  return table.concat(out)
end

-- Index of the quote closing the string that opens at i.
local function skip_string(text, i)
  local j, n = i + 1, #text
  while j <= n do
    local k = text:find('["\\]', j)
    if not k then return n end
    if text:byte(k) == 92 then j = k + 2 else return k end
  end
  return n
end

-- Index of the last character of the JSON value that starts at i.
local function skip_value(text, i)
  local c = text:sub(i, i)
  if c == '"' then return skip_string(text, i) end
  if c == "{" or c == "[" then
    local depth, j, n = 0, i, #text
    while j <= n do
      local k = text:find('[%[%]{}"]', j)
      if not k then return n end
      local ch = text:sub(k, k)
      if ch == '"' then
        j = skip_string(text, k) + 1
      else
        depth = depth + ((ch == "{" or ch == "[") and 1 or -1)
        if depth == 0 then return k end
        j = k + 1
      end
    end
    return n
  end
  local k = text:find("[%s,%]}]", i)
  return (k or #text + 1) - 1
end

--- The JSON kind of a raw JSON text, from its first non-space character.
-- @tparam string text raw JSON
-- @treturn string "object", "array", "string", "boolean", "null", "number" or "empty"
function M.kind(text)
  local c = text and text:match("^%s*(%S)")
  if c == nil then return "empty" end
  if c == "{" then return "object" end
  if c == "[" then return "array" end
  if c == '"' then return "string" end
  if c == "t" or c == "f" then return "boolean" end
  if c == "n" then return "null" end
  return "number"
end

--- Maps each top-level member name of a (valid) JSON object text to its raw value text.
-- @tparam string text JSON already validated by cjson
-- @treturn[1] table name -> raw text
-- @treturn[2] nil when the text is not an object
function M.raw_members(text)
  local i = text:find("%S")
  if not i or text:sub(i, i) ~= "{" then return nil end
  local members, n = {}, #text
  i = i + 1
  while i <= n do
    i = text:find("%S", i)
    if not i then break end
    local c = text:sub(i, i)
    if c == "}" then break end
    if c == "," then
      i = i + 1
    elseif c == '"' then
      local key_end = skip_string(text, i)
      local key = decoder.decode(text:sub(i, key_end))
      local colon = text:find(":", key_end + 1, true)
      local vstart = colon and text:find("%S", colon + 1)
      if not vstart then break end
      local vend = skip_value(text, vstart)
      if vend < vstart then break end
      if type(key) == "string" then members[key] = text:sub(vstart, vend) end
      i = vend + 1
    else
      break
    end
  end
  return members
end

--- Lists the raw texts of the elements of a (valid) JSON array text.
-- @tparam string text JSON already validated by cjson
-- @treturn[1] table list of raw element texts
-- @treturn[2] nil when the text is not an array
function M.raw_elements(text)
  local i = text and text:find("%S")
  if not i or text:sub(i, i) ~= "[" then return nil end
  local out, n = {}, #text
  i = i + 1
  while i <= n do
    i = text:find("%S", i)
    if not i then break end
    local c = text:sub(i, i)
    if c == "]" then break end
    if c == "," then
      i = i + 1
    else
      local e = skip_value(text, i)
      if e < i then break end
      out[#out + 1] = text:sub(i, e)
      i = e + 1
    end
  end
  return out
end

--- Decodes a request body that must be a JSON object.
-- @tparam string body
-- @treturn[1] table decoded object
-- @treturn[1] table raw member texts (see raw_members)
-- @treturn[2] nil
-- @treturn[2] string message
function M.decode_object(body)
  if body == nil or not body:find("%S") then return nil, "request body is empty" end
  local value, err = decoder.decode(body)
  if value == nil then return nil, "request body is not valid JSON: " .. tostring(err) end
  if M.kind(body) ~= "object" then return nil, "request body must be a JSON object" end
  return value, M.raw_members(body)
end

return M
