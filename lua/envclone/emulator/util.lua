--- Helpers shared by the emulator's core and vendor modules: HTTP reason
-- phrases, times, identifiers, copies and body-field checks.
-- @module envclone.emulator.util

local json = require("envclone.emulator.json")

local M = {}

local NULL = json.null

--- Reason phrases of the statuses the emulator answers.
M.REASONS = {
  [100] = "Continue", [200] = "OK", [201] = "Created", [202] = "Accepted", [204] = "No Content",
  [232] = "Already Production", [233] = "Production Not Deletable",
  [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [409] = "Conflict", [411] = "Length Required",
  [413] = "Payload Too Large", [429] = "Too Many Requests", [431] = "Request Header Fields Too Large",
  [500] = "Internal Server Error", [502] = "Bad Gateway",
  [503] = "Service Unavailable", [505] = "HTTP Version Not Supported",
}

--- Seconds since the epoch as an ISO 8601 UTC timestamp.
-- @tparam number t seconds
function M.iso_time(t)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t))
end

local CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
M.ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

--- n characters drawn from alphabet.
function M.random_chars(alphabet, n)
  local out = {}
  for i = 1, n do
    local k = math.random(#alphabet)
    out[i] = alphabet:sub(k, k)
  end
  return table.concat(out)
end

--- A new ULID (48-bit millisecond time + 80 random bits, Crockford base32).
-- @tparam number now seconds
function M.new_ulid(now)
  local ms = math.floor(now * 1000)
  local out = {}
  for i = 10, 1, -1 do
    local k = ms % 32
    out[i] = CROCKFORD:sub(k + 1, k + 1)
    ms = ms // 32
  end
  return table.concat(out) .. M.random_chars(CROCKFORD, 16)
end

--- A new random (version 4) UUID.
function M.new_uuid()
  return string.format("%08x-%04x-4%03x-%x%03x-%012x",
    math.random(0, 0xffffffff), math.random(0, 0xffff), math.random(0, 0xfff),
    math.random(8, 11), math.random(0, 0xfff), math.random(0, 0xffffffffffff))
end

--- n random lower-case hex digits.
function M.new_hex(n)
  return M.random_chars("0123456789abcdef", n)
end

--- Whether s is a UUID in its textual form.
function M.is_uuid(s)
  return type(s) == "string"
    and s:match("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$") ~= nil
end

--- A deep copy keeping metatables (the JSON kind markers).
function M.deep_copy(v, depth)
  depth = depth or 0
  if type(v) ~= "table" or depth > 64 then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = M.deep_copy(x, depth + 1) end
  return setmetatable(out, getmetatable(v))
end

--- Number of UTF-8 characters, nil when s is not valid UTF-8.
function M.count_chars(s)
  return utf8.len(s)
end

--- The credential of an `Authorization: <scheme> <credential>` header (scheme
-- matched case-insensitively, RFC 9110 section 11.1), or nil.
-- @tparam table req the request
-- @tparam[opt="Bearer"] string scheme
function M.auth_scheme(req, scheme)
  local h = req.headers["authorization"]
  if not h then return nil end
  local got, cred = h:match("^(%S+) +(.-)%s*$")
  if got and got:lower() == (scheme or "Bearer"):lower() then return cred end
  return nil
end

--- The Bearer credential of the request, or nil.
function M.bearer(req)
  return M.auth_scheme(req, "Bearer")
end

--- t[key] = t[key] + 1 (from nil = 0).
function M.increment(t, key)
  t[key] = (t[key] or 0) + 1
end

--- "Service Unavailable" -> "SERVICE_UNAVAILABLE".
function M.upper_snake(s)
  return (s:upper():gsub("[^%w]+", "_"))
end

--- Checks body fields against a list of {name, type, required}; null counts as absent.
-- @treturn[1] nil when all fields are fine
-- @treturn[2] string the offending field
-- @treturn[2] string message
function M.check_fields(body, fields)
  for _, f in ipairs(fields) do
    local name, want, required = f[1], f[2], f[3]
    local v = body[name]
    if v == nil or v == NULL then
      if required then return name, "field '" .. name .. "' is required" end
    elseif type(v) ~= want then
      return name, "field '" .. name .. "' must be a " .. want
    elseif required and want == "string" and v == "" then
      return name, "field '" .. name .. "' must not be empty"
    end
  end
  return nil
end

--- The first item of list whose `name` is name.
function M.find_by_name(list, name)
  for _, item in ipairs(list) do
    if item.name == name then return item end
  end
  return nil
end

return M
