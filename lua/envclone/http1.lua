--- Reading one HTTP/1.1 response (RFC 9112) for transports written in Lua,
-- such as the OpenResty cosocket transport (`envclone.cosocket`).
--
-- It accepts and refuses what RFC 9112 tells a client to, and refuses the
-- same answers the libcurl transport refuses, so the same server bytes give
-- the same result or the same error on both transports
-- (`spec/support/http1_cases.lua` lists the rules, one case each;
-- `spec/http1_spec.lua` and the nginx test run them). The rules for head
-- lines live in one place, the C core's `src/ec_http1.c`
-- (`core.http1_head`), which the libcurl transport applies from its header
-- callback; this module reads the bytes, applies them, and decodes the body
-- as libcurl does:
--
-- * status line (§4): `HTTP/1.0` or `HTTP/1.1`, one SP, a three-digit code
--   from 100, then nothing or SP and a reason phrase (ignored). Other
--   versions, and lines that are not a status line, are refused.
-- * header fields (§5): `token ":" OWS value OWS`; whitespace before the
--   colon, a line without a colon, a NUL or a bare CR (§2.2) are refused.
--   Names are case-insensitive. An obs-fold (§5.2) is replaced by one SP,
--   except that a fold right after the status line (§2.2) or inside
--   Content-Length or Transfer-Encoding is refused (libcurl cannot unfold
--   them, and framing must be read one way). A bare LF ends a line (§2.2).
-- * interim responses (§15.2 of RFC 9110): 1xx heads are skipped, except
--   101 Switching Protocols, refused (envclone never asks to upgrade).
-- * message length (§6.3): no body after HEAD, 1xx, 204 and 304 whatever the
--   fields say; Transfer-Encoding must be exactly `chunked` (envclone sends no
--   TE, so no other coding may be applied), and is refused in an HTTP/1.0
--   answer (§6.1); it overrides Content-Length (the connection is then not
--   reused). Content-Length must be digits; a list, or repeated fields, of
--   one same value is that value; differing values are refused. Without
--   either, the body runs to the end of the connection.
-- * chunked (§7.1): a size of 1 to 16 hex digits (at most 2^63-1), then
--   extensions, ignored whatever they hold; the data, then CRLF; after the
--   last chunk, trailer fields (same grammar as header fields, not merged),
--   then an empty line. A chunk that cannot be decoded makes the message
--   incomplete (§8), as a cut connection does: code "recv".
-- * caps: 256 KiB for all heads and trailers together, 100 KiB for one
--   line, `max_body` bytes for the body (decoded).
-- * time: every read runs against what is left of `deadline`, so a server
--   that trickles bytes cannot stretch the exchange past it.
--
-- Errors are tables `{ code, message, retryable, received }` with the codes
-- of the libcurl transport: "timeout", "recv" (cut, reset, incomplete;
-- retryable), "protocol" (not HTTP/1.1 as the RFC allows; not retryable),
-- "too_large" (the body; not retryable), "headers_too_large" (the heads;
-- not retryable; the C core's transport-error constructor, `request:fail`,
-- writes both size messages). `received` is the number of bytes read.
-- @module envclone.http1
local core = require("envclone.core")
local limits = core.limits

local M = {}

--- Cap on the bytes of all response heads (interim and final) and trailers
-- (the C core's, shared with the libcurl transport).
M.MAX_HEADER_BYTES = limits.max_header_bytes
--- Cap on one head line (libcurl's own limit), bytes.
M.MAX_HEADER_LINE = limits.max_header_line

local READ_CHUNK = 64 * 1024
local MAX_SIZE_LINE = 4096 -- a chunk-size line longer than this is read on and its excess dropped

local function ms(seconds)
  local v = math.floor(seconds * 1000)
  return v < 1 and 1 or v
end

-- A buffered reader over the socket; every receive is bounded by the deadline.
local Reader = {}
Reader.__index = Reader

local function new_reader(sock, deadline, now)
  return setmetatable({ sock = sock, buf = "", pos = 1, deadline = deadline, now = now,
    eof = false, received = 0 }, Reader)
end

-- Receives what arrives next (up to max bytes) against the remaining time:
-- data, or nil and "timeout", "closed" or the socket's error.
function Reader:receive(max)
  local left = self.deadline - self.now()
  if left <= 0 then return nil, "timeout" end
  -- A cosocket's read timeout restarts whenever bytes arrive, so it bounds
  -- one wait, not the call: re-armed with what is left before each one.
  local t = ms(left)
  self.sock:settimeouts(t, t, t)
  local data, err = self.sock:receiveany(max)
  if not data then
    if err == "closed" then self.eof = true end
    return nil, err
  end
  self.received = self.received + #data
  return data
end

function Reader:pending()
  return #self.buf - self.pos + 1
end

function Reader:take(n)
  local s = self.buf:sub(self.pos, self.pos + n - 1)
  self.pos = self.pos + n
  return s
end

function Reader:fill(max)
  local data, err = self:receive(max)
  if not data then return nil, err end
  self.buf = self.buf:sub(self.pos) .. data
  self.pos = 1
  return true
end

-- The next line without its LF (a CR before it is the caller's), looking at
-- most `cap` bytes ahead: line, or nil and "too_long" or a receive error.
-- With `drop`, bytes past the cap are read and dropped up to the LF.
function Reader:line(cap, drop)
  local kept
  local from = self.pos
  while true do
    local nl = self.buf:find("\n", from, true)
    if nl then
      local len = nl - self.pos + 1
      if len > cap and not drop then return nil, "too_long" end
      local line = self:take(len):sub(1, -2)
      return kept or line
    end
    local have = self:pending()
    if have >= cap then
      if not drop then return nil, "too_long" end
      kept = kept or self:take(cap)
      self:take(self:pending())
      have = 0
    end
    from = have + 1 -- where the new bytes start once `fill` compacts the buffer
    local ok, err = self:fill(READ_CHUNK)
    if not ok then return nil, err end
  end
end

-- n bytes, or nil and a receive error.
function Reader:exact(n)
  local have = self:pending()
  if have >= n then return self:take(n) end
  local parts = { self:take(have) }
  while have < n do
    local data, err = self:receive(math.min(n - have, READ_CHUNK))
    if not data then return nil, err end
    parts[#parts + 1] = data
    have = have + #data
  end
  return table.concat(parts)
end

-- Everything up to the end of the stream, at most cap bytes: text, or nil
-- and "too_large" or a receive error.
function Reader:rest(cap)
  local have = self:pending()
  local parts = { self:take(have) }
  while not self.eof do
    if have > cap then return nil, "too_large" end
    local data, err = self:receive(READ_CHUNK)
    if not data then
      if err ~= "closed" then return nil, err end
    else
      parts[#parts + 1] = data
      have = have + #data
    end
  end
  if have > cap then return nil, "too_large" end
  return table.concat(parts)
end

local function trim(s)
  return (s:gsub("^[ \t]+", ""):gsub("[ \t]+$", ""))
end

-- The elements of a comma-separated list, empty ones dropped (RFC 9110 §5.6.1).
local function list(value)
  local out = {}
  for part in value:gmatch("[^,]+") do
    part = trim(part)
    if part ~= "" then out[#out + 1] = part end
  end
  return out
end

local function has_token(value, token)
  for _, part in ipairs(list(value or "")) do
    if part:lower() == token then return true end
  end
  return false
end

-- A read error: code and retryable as the libcurl transport's.
local function failure(code, message)
  return { code = code, message = message, retryable = code == "recv" or code == "timeout" }
end

-- The heads and trailers went past their caps (the message is libcurl's).
local function head_too_large()
  return nil, failure("headers_too_large", string.format(
    "the response headers are larger than the limit (%d KiB in all, %d KiB a line); not read further",
    math.floor(M.MAX_HEADER_BYTES / 1024), math.floor(M.MAX_HEADER_LINE / 1024)))
end

-- One head or trailer line, counted against `budget` ({ left = bytes }) and
-- checked by `check` (the C core's RFC 9112 rules, src/ec_http1.c, which the
-- libcurl transport applies too): the line without its line end and "ok" or
-- "fold"; or nil and an error.
local function head_line(r, budget, check)
  if budget.left <= 0 then return head_too_large() end
  local line, err = r:line(math.min(budget.left, M.MAX_HEADER_LINE))
  if not line then
    if err == "too_long" then return head_too_large() end
    return nil, err
  end
  budget.left = budget.left - (#line + 1)
  if budget.left < 0 then return head_too_large() end
  local verdict, why, code = check:line(line)
  if not verdict then return nil, failure(code, why) end
  return (line:gsub("\r$", "")), verdict
end

-- Reads field lines into `fields` (a list of {lname, value}) up to the
-- empty line: true, or nil and an error (a table, or a receive error).
local function field_lines(r, budget, check, fields)
  while true do
    local line, verdict = head_line(r, budget, check)
    if not line then return nil, verdict end
    if line == "" then return true end
    if verdict == "fold" then -- obs-fold: one SP, then the text (RFC 9112 §5.2)
      local prev = fields[#fields]
      prev.value = trim(prev.value .. " " .. trim(line))
    else
      local name, value = line:match("^([^:]*):(.*)$")
      fields[#fields + 1] = { lname = name:lower(), value = trim(value) }
    end
  end
end

-- Reads one head: status, version (10 or 11), fields; or nil and an error.
local function read_head(r, budget, check)
  local line, err = head_line(r, budget, check)
  if not line then return nil, err end
  local minor, status = line:match("^HTTP/1%.([01]) (%d%d%d)")
  local fields = {}
  local ok, ferr = field_lines(r, budget, check, fields)
  if not ok then return nil, ferr end
  return tonumber(status), minor == "1" and 11 or 10, fields
end

-- The framing the fields declare (the checker has refused every other
-- shape): chunked (boolean) and length (number, math.huge past any cap, or
-- nil). Not asked for answers without a body (RFC 9112 §6.3 rule 1).
local function framing(fields)
  local chunked, digits = false, nil
  for _, f in ipairs(fields) do
    if f.lname == "content-length" then
      digits = digits or f.value:match("%d+"):gsub("^0+(%d)", "%1")
    elseif f.lname == "transfer-encoding" and f.value:find("%a") then
      chunked = true
    end
  end
  if digits and #digits > 15 then return chunked, math.huge end
  return chunked, digits and tonumber(digits)
end

-- The decoded body of a chunked message, at most cap bytes; nil and an error.
local function read_chunked(r, cap, budget, check)
  local parts, have = {}, 0
  while true do
    local line, err = r:line(MAX_SIZE_LINE, true)
    if not line then return nil, err end
    local hex = line:match("^%x+")
    if not hex or #hex > 16 or (#hex == 16 and hex:sub(1, 1):find("[89a-fA-F]")) then
      return nil, failure("recv", "a chunk size that is not 1 to 16 hex digits up to 2^63-1 (RFC 9112 §7.1):"
        .. " the answer is incomplete")
    end
    local size = tonumber(hex, 16)
    if size == 0 then break end
    -- read no further than one byte past the cap, as libcurl stops there
    local want = math.min(size, cap - have + 1)
    local data, derr = r:exact(want)
    if not data then return nil, derr end
    parts[#parts + 1] = data
    have = have + want
    if have > cap then return nil, "too_large" end
    local crlf, cerr = r:line(MAX_SIZE_LINE)
    if not crlf then return nil, cerr == "too_long" and failure("recv", "chunk data not followed by CRLF") or cerr end
    if not crlf:find("^\r*$") then
      return nil, failure("recv", "chunk data not followed by CRLF (RFC 9112 §7.1): the answer is incomplete")
    end
  end
  -- trailer fields: read to their end, counted against the head cap, not merged
  local ok, terr = field_lines(r, budget, check, {})
  if not ok then return nil, terr end
  return table.concat(parts)
end

local function closes(fields, version)
  local conn = {}
  for _, f in ipairs(fields) do
    if f.lname == "connection" then conn[#conn + 1] = f.value end
  end
  conn = table.concat(conn, ",")
  if version >= 11 then return has_token(conn, "close") end
  return not has_token(conn, "keep-alive")
end

--- Reads one response (after any interim 1xx ones) from a connected socket.
-- @param sock an OpenResty cosocket, or any object with `receiveany(max)`
--   (returns data, or nil and "closed", "timeout" or another error) and
--   `settimeouts(connect, send, read)` (milliseconds)
-- @tparam table opts `deadline` (seconds, on the `now` clock): every read
--   ends by then; `now` (function returning seconds); `method` of the
--   request ("HEAD" answers have no body); `max_body` (bytes); `where`
--   ("host:port", for messages); `timeout` (seconds, for messages)
-- @treturn[1] table `status` (number), `version` (10 or 11), `headers`
--   (lower-case names; the last of a repeated field wins, Connection and
--   Transfer-Encoding joined with ", "), `body` (string),
--   `reusable` (the connection may carry another request: HTTP/1.1 without
--   `Connection: close`, or HTTP/1.0 with keep-alive, and a length known
--   from Content-Length or chunked alone)
-- @treturn[2] nil
-- @treturn[2] table `code` ("timeout", "recv", "protocol", "too_large", "headers_too_large"),
--   `message`, `retryable`, `received` (bytes read before the error)
function M.read_response(sock, opts)
  local r = new_reader(sock, opts.deadline, opts.now)
  local where = opts.where or "the server"
  local what = "response headers"
  local function fail(err)
    if type(err) ~= "table" then
      if err == "timeout" then
        err = failure("timeout", "no complete answer from " .. where .. " within "
          .. tostring(opts.timeout) .. " s (" .. what .. ")")
      elseif err == "too_large" then
        err = failure("too_large", string.format(
          "the response body is larger than max_response_size (%d bytes); not read further", opts.max_body))
      elseif err == "closed" and r.received == 0 then
        err = failure("recv", "empty reply from " .. where)
      else
        err = failure("recv", "receiving the " .. what .. " from " .. where .. " failed: " .. tostring(err))
      end
    elseif err.code == "protocol" then
      err.message = "malformed HTTP response from " .. where .. ": " .. err.message
    end
    err.received = r.received
    return nil, err
  end

  local budget = { left = M.MAX_HEADER_BYTES }
  local check = core.http1_head(opts.method == "HEAD")
  local status, version, fields
  repeat -- interim 1xx heads are skipped (the checker refuses a 101)
    status, version, fields = read_head(r, budget, check)
    if not status then return fail(version) end
  until status >= 200

  local headers = {}
  for _, f in ipairs(fields) do
    if (f.lname == "connection" or f.lname == "transfer-encoding") and headers[f.lname] then
      headers[f.lname] = headers[f.lname] .. ", " .. f.value
    else
      headers[f.lname] = f.value
    end
  end

  what = "response body"
  local cap = opts.max_body
  local reusable = not closes(fields, version)
  local body, berr
  if opts.method == "HEAD" or status == 204 or status == 304 then
    body = ""
  else
    local is_chunked, length = framing(fields)
    if is_chunked then
      if length then reusable = false end -- both framings: RFC 9112 §6.1 has the connection closed
      body, berr = read_chunked(r, cap, budget, check)
    elseif length then
      if length > cap then return fail("too_large") end
      body, berr = r:exact(length)
    else
      reusable = false
      body, berr = r:rest(cap)
    end
  end
  if not body then return fail(berr) end
  return { status = status, version = version, headers = headers, body = body,
    reusable = reusable and r:pending() == 0 }
end

return M
