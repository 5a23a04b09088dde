--- The OpenResty transport: one HTTP/1.1 exchange over an nginx cosocket,
-- so a request handler never blocks its worker while a vendor answers.
--
-- `envclone.Client._send` uses it for every call made where cosockets work
-- (`transport = "auto"`, the default) or always (`transport = "cosocket"`).
-- It shares everything but the socket with the libcurl transport: the C
-- core validates and builds the request (`core.prepare`) and turns the
-- answer into a result or an error (`core.parse`), and a failure of the
-- exchange itself gives the same error object libcurl's would (`kind`
-- "transport" or "timeout", `code`, `sent`, `maybe_applied`, `retryable`).
--
-- Safety: http and https only; TLS certificates are verified unless the
-- client was built with `insecure = true` (nginx needs
-- `lua_ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt;` for
-- that, and a `resolver` for host names); the client's `timeout` bounds the
-- whole exchange and `connect_timeout` the connect; response headers are
-- capped at 256 KiB and the body at `max_response_size`; redirects are
-- never followed. Idle connections go back to nginx's pool (one pool per
-- scheme, host, port, vendor and TLS setting; `pool_size`,
-- `keepalive_timeout` options of the client) when the answer allows it.
-- A client's `ca_file` cannot be applied to a cosocket: an https call from
-- such a client fails with code "tls" rather than trust other CAs.
-- @module envclone.cosocket
local core = require("envclone.core")
local runtime = require("envclone.runtime")

local M = {}

--- Cap on the bytes of a response's status line and headers (as libcurl's).
M.MAX_HEADER_BYTES = 256 * 1024
--- Default idle time of a pooled connection, seconds.
M.DEFAULT_KEEPALIVE = 60
--- Default size of a connection pool (nginx's lua_socket_pool_size).
M.DEFAULT_POOL_SIZE = 30

--- Counters of this worker (or process): `requests`, `connects` (new
-- connections), `reused` (connections taken from the pool), `kept`
-- (returned to the pool), `failures` (exchanges that ended in a transport error).
M.counters = { requests = 0, connects = 0, reused = 0, kept = 0, failures = 0 }

--- Cap on one header line (libcurl's own limit).
M.MAX_HEADER_LINE = 100 * 1024

local READ_CHUNK = 64 * 1024
local MAX_CHUNK_LINE = 4096

local function ngx_api()
  local ngx = rawget(_G, "ngx")
  if runtime.in_openresty() and type(ngx.socket) == "table" and type(ngx.socket.tcp) == "function" then
    return ngx
  end
  return nil
end

--- Can this code use cosockets right now (inside nginx, in a phase that allows them)?
-- @treturn boolean
function M.available()
  return ngx_api() ~= nil
end

-- An error of the exchange, shaped as libcurl's (see push_transport_error in ec_core.c).
local function fail(op, code, message, sent, retryable, kind)
  M.counters.failures = M.counters.failures + 1
  return nil, core.error{
    kind = kind or (code == "timeout" and "timeout" or "transport"),
    code = code,
    vendor = op.vendor,
    operation = op.name,
    message = message,
    sent = sent and true or false,
    maybe_applied = (sent and op.method ~= "GET") and true or false,
    retryable = retryable and true or false,
  }
end

-- scheme, host (brackets kept for IPv6), port, path+query; or nil, why
local function split_url(url)
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then return nil, "the URL has no scheme" end
  scheme = scheme:lower()
  if scheme ~= "http" and scheme ~= "https" then
    return nil, "only http and https are supported"
  end
  local authority, path = rest:match("^([^/?#]*)(.*)$")
  if authority:find("@", 1, true) then
    return nil, "user information in base_url is not supported by the cosocket transport"
  end
  local host, port = authority:match("^(%[[%x:.]+%])(.*)$")
  if not host then host, port = authority:match("^([^:]*)(.*)$") end
  if host == "" then return nil, "the URL has no host" end
  if port == "" then
    port = scheme == "https" and 443 or 80
  else
    port = tonumber(port:match("^:(%d+)$"))
    if not port or port < 1 or port > 65535 then return nil, "the URL has an invalid port" end
  end
  if path == "" then path = "/" end
  return scheme, host, port, path
end

-- How a cosocket error string from connect() maps to libcurl's codes.
local function connect_failure(op, err, where)
  local e = tostring(err)
  local l = e:lower()
  if l == "timeout" then
    return fail(op, "timeout", "connect to " .. where .. " timed out", false, true)
  end
  if l:find("no resolver defined", 1, true) then
    return fail(op, "resolve", "could not resolve " .. where .. ": " .. e
      .. " (add a 'resolver' directive to nginx.conf)", false, false)
  end
  if l:find("resolve", 1, true) or l:find("host not found", 1, true) or l:find("server failure", 1, true) then
    return fail(op, "resolve", "could not resolve " .. where .. ": " .. e, false, true)
  end
  return fail(op, "connect", "failed to connect to " .. where .. ": " .. e, false, true)
end

-- TLS handshake errors: certificate problems are final (as libcurl's
-- CURLE_PEER_FAILED_VERIFICATION), others (reset, timeout) may pass.
local function tls_failure(op, err, where)
  local e = tostring(err)
  if e == "timeout" then
    return fail(op, "timeout", "TLS handshake with " .. where .. " timed out", false, true)
  end
  local verify = e:match("^%d+: ") or e:find("certificate", 1, true) or e:find("verify", 1, true)
  return fail(op, "tls", "TLS handshake with " .. where .. " failed: " .. e, false, not verify)
end

-- A buffered reader over the socket, with every read bounded by the caller.
-- `buf` holds received bytes, `pos` the first one not consumed yet.
local Reader = {}
Reader.__index = Reader

local function ms(seconds)
  local v = math.floor(seconds * 1000)
  return v < 1 and 1 or v
end

local function new_reader(sock, deadline)
  return setmetatable({ sock = sock, buf = "", pos = 1, deadline = deadline, eof = false, consumed = 0 }, Reader)
end

-- Bytes received but not consumed.
function Reader:pending()
  return #self.buf - self.pos + 1
end

-- Sets the timeouts to what is left of the call's time; false when none is.
function Reader:arm()
  local left = self.deadline - runtime.now()
  if left <= 0 then return false end
  self.sock:settimeouts(ms(left), ms(left), ms(left))
  return true
end

-- Takes n pending bytes.
function Reader:take(n)
  local s = self.buf:sub(self.pos, self.pos + n - 1)
  self.pos = self.pos + n
  self.consumed = self.consumed + n
  return s
end

-- Reads whatever arrives next (up to max bytes) into the buffer.
function Reader:more(max)
  if not self:arm() then return nil, "timeout" end
  local data, err = self.sock:receiveany(max)
  if not data then
    if err == "closed" then self.eof = true end
    return nil, err
  end
  self.buf = self.buf:sub(self.pos) .. data
  self.pos = 1
  return true
end

-- The next line (without CR LF), looking at most `cap` bytes ahead; nil, err.
function Reader:line(cap)
  local from = self.pos
  while true do
    local nl = self.buf:find("\n", from, true)
    if nl then
      local line = self:take(nl - self.pos + 1):sub(1, -2)
      return (line:gsub("\r$", ""))
    end
    local have = self:pending()
    if have >= cap then return nil, "too_large" end
    from = have + 1 -- where the new bytes will start once `more` compacts the buffer
    local ok, err = self:more(math.min(READ_CHUNK, cap - have))
    if not ok then return nil, err end
  end
end

-- Exactly n bytes; nil, err.
function Reader:exact(n)
  local have = self:pending()
  if have >= n then return self:take(n) end
  local parts = { self:take(have) }
  while have < n do
    if not self:arm() then return nil, "timeout" end
    local data, err = self.sock:receive(math.min(n - have, READ_CHUNK))
    if not data then
      if err == "closed" then self.eof = true end
      return nil, err
    end
    parts[#parts + 1] = data
    have = have + #data
  end
  self.consumed = self.consumed + (n - #parts[1])
  return table.concat(parts)
end

-- Everything up to the end of the stream, at most cap bytes; nil, err.
function Reader:rest(cap)
  local have = self:pending()
  local parts = { self:take(have) }
  while not self.eof do
    if have > cap then return nil, "too_large" end
    if not self:arm() then return nil, "timeout" end
    local data, err = self.sock:receiveany(READ_CHUNK)
    if not data then
      if err ~= "closed" then return nil, err end
      self.eof = true
    else
      parts[#parts + 1] = data
      have = have + #data
    end
  end
  if have > cap then return nil, "too_large" end
  return table.concat(parts)
end

-- Reads one response head: status, version, headers (lower-case names, the
-- last value of a repeated header wins), or nil, err. `budget` is what is
-- left of the header cap.
local function read_head(r, budget)
  local start = r.consumed
  local function used() return r.consumed - start end
  local status_line, err = r:line(math.min(budget, M.MAX_HEADER_LINE))
  if not status_line then return nil, err == "too_large" and "headers_too_large" or err end
  local major, minor, status = status_line:match("^HTTP/(%d)%.(%d) (%d%d%d)")
  if not major then return nil, "protocol" end
  local headers = {}
  while true do
    local left = budget - used()
    if left <= 0 then return nil, "headers_too_large" end
    local line, lerr = r:line(math.min(left, M.MAX_HEADER_LINE))
    if not line then return nil, lerr == "too_large" and "headers_too_large" or lerr end
    if line == "" then break end
    local name, value = line:match("^([^:%s]+):%s*(.-)%s*$")
    if not name then return nil, "protocol" end
    name = name:lower()
    if name == "transfer-encoding" and headers[name] then
      headers[name] = headers[name] .. ", " .. value
    else
      headers[name] = value
    end
  end
  if used() > budget then return nil, "headers_too_large" end
  return tonumber(status), tonumber(major) * 10 + tonumber(minor), headers, used()
end

-- The body of a chunked response, at most cap bytes; nil, err.
local function read_chunked(r, cap, header_budget)
  local parts, have = {}, 0
  while true do
    local line, err = r:line(MAX_CHUNK_LINE)
    if not line then return nil, err == "too_large" and "protocol" or err end
    local size = line:match("^%s*(%x+)%s*;?")
    size = size and #size <= 8 and tonumber(size, 16)
    if not size then return nil, "protocol" end
    if size == 0 then break end
    if have + size > cap then return nil, "too_large" end
    local data, derr = r:exact(size)
    if not data then return nil, derr end
    parts[#parts + 1] = data
    have = have + size
    local crlf, cerr = r:line(2)
    if crlf ~= "" then return nil, crlf and "protocol" or cerr end
  end
  -- trailers, counted against the header cap
  local used = 0
  while true do
    local line, err = r:line(math.max(1, math.min(header_budget - used, M.MAX_HEADER_LINE)))
    if not line then return nil, err == "too_large" and "headers_too_large" or err end
    used = used + #line + 2
    if used > header_budget then return nil, "headers_too_large" end
    if line == "" then break end
  end
  return table.concat(parts)
end

-- Maps a failed read of the response to libcurl's error (the request is out).
local function read_failure(op, what, err, settings, where)
  if err == "timeout" then
    return fail(op, "timeout", "no complete answer from " .. where .. " within "
      .. settings.timeout .. " s (" .. what .. ")", true, true)
  end
  -- the messages are libcurl's (ec_curl.c)
  if err == "headers_too_large" then
    return fail(op, "too_large", string.format(
      "the response headers are larger than the limit (%d KiB in all, %d KiB a line); not read further",
      math.floor(M.MAX_HEADER_BYTES / 1024), math.floor(M.MAX_HEADER_LINE / 1024)), true, false)
  end
  if err == "too_large" then
    return fail(op, "too_large", string.format(
      "the response body is larger than max_response_size (%d bytes); not read further",
      settings.max_response_size), true, false)
  end
  if err == "protocol" then
    return fail(op, "protocol", "malformed HTTP response from " .. where .. " (" .. what .. ")", true, false)
  end
  return fail(op, "recv", "receiving the " .. what .. " from " .. where .. " failed: " .. tostring(err), true, true)
end

local function header_has(value, token)
  if not value then return false end
  for part in value:lower():gmatch("[^,%s]+") do
    if part == token then return true end
  end
  return false
end

-- One exchange on one connection: connect (or take a pooled connection),
-- TLS, send `wire`, read the answer. Returns the result, or nil, err and
-- `stale` = true when a pooled connection turned out to be closed before
-- any answer byte (the caller may then try once more, as libcurl does).
local function exchange(ngx, client, op, t)
  local settings, host, port, where, tls, verify, deadline, method, scheme, wire =
    t.settings, t.host, t.port, t.where, t.tls, t.verify, t.deadline, t.method, t.scheme, t.wire
  local connect_ms = ms(math.min(settings.connect_timeout, settings.timeout))
  local sock = ngx.socket.tcp()
  sock:settimeouts(connect_ms, ms(settings.timeout), ms(settings.timeout))

  local pool = client._pool or {}
  -- Creates go out on a fresh connection and never return to the pool, as
  -- with libcurl: a pooled connection the server has since closed would
  -- fail a create with maybe_applied for no reason.
  local pool_name = table.concat({ "envclone", scheme, host, port, op.vendor,
    tls and (verify and "verify" or "insecure") or "plain", op.creates and "fresh" or "pooled" }, ":")
  local ok, cerr = sock:connect(host, port, { pool = pool_name,
    pool_size = pool.size or M.DEFAULT_POOL_SIZE })
  if not ok then return connect_failure(op, cerr, where) end
  local reused = sock:getreusedtimes() > 0
  M.counters.requests = M.counters.requests + 1
  if reused then
    M.counters.reused = M.counters.reused + 1
  else
    M.counters.connects = M.counters.connects + 1
  end

  local sni = host:match("^%[(.*)%]$") or host
  if tls and not reused then
    local left = deadline - runtime.now()
    if left <= 0 then
      sock:close()
      return fail(op, "timeout", "TLS handshake with " .. where .. " timed out", false, true)
    end
    sock:settimeouts(ms(left), ms(left), ms(left))
    -- false: no session object back (and Debian 12's lua-resty-core asserts
    -- when asked for one)
    local shaken, terr = sock:sslhandshake(false, sni, verify)
    if not shaken then
      sock:close()
      return tls_failure(op, terr, where)
    end
  end

  local left = deadline - runtime.now()
  if left <= 0 then
    sock:close()
    return fail(op, "timeout", "no time left to send the request to " .. where, false, true)
  end
  sock:settimeouts(ms(left), ms(left), ms(left))
  local sent_bytes, serr = sock:send(wire)
  if not sent_bytes then
    sock:close()
    if serr == "timeout" then
      return fail(op, "timeout", "sending the request to " .. where .. " timed out", true, true)
    end
    local res, err = fail(op, "send", "sending the request to " .. where .. " failed: " .. tostring(serr), true, true)
    return res, err, reused
  end

  -- The answer: skip interim 1xx heads, all heads counted against the cap.
  local r = new_reader(sock, deadline)
  local budget = M.MAX_HEADER_BYTES
  local status, version, headers, used
  for _ = 1, 16 do
    status, version, headers, used = read_head(r, budget)
    if not status then
      sock:close()
      local res, err = read_failure(op, "response headers", version, settings, where)
      -- a pooled connection the server had closed: nothing came back
      return res, err, reused and r.consumed == 0 and r:pending() == 0 and version ~= "timeout"
    end
    budget = budget - used
    if status >= 200 or status == 101 then break end
  end
  if status < 200 or status == 101 then
    sock:close()
    return read_failure(op, "response headers", "protocol", settings, where)
  end

  local cap = settings.max_response_size
  local reusable = (version >= 11 and not header_has(headers["connection"], "close"))
    or (version == 10 and header_has(headers["connection"], "keep-alive"))
  local text, berr
  if method == "HEAD" or status == 204 or status == 304 then
    text = ""
  elseif headers["transfer-encoding"] then
    if not header_has(headers["transfer-encoding"], "chunked") then
      sock:close()
      return read_failure(op, "response body", "protocol", settings, where)
    end
    text, berr = read_chunked(r, cap, budget)
  elseif headers["content-length"] then
    local n = headers["content-length"]:match("^%d+$") and tonumber(headers["content-length"])
    if not n or #headers["content-length"] > 15 then
      sock:close()
      return read_failure(op, "response body", "protocol", settings, where)
    end
    if n > cap then
      sock:close()
      return read_failure(op, "response body", "too_large", settings, where)
    end
    text, berr = r:exact(n)
  else
    reusable = false
    text, berr = r:rest(cap)
  end
  if not text then
    sock:close()
    return read_failure(op, "response body", berr, settings, where)
  end

  if reusable and r:pending() == 0 and not op.creates then
    local idle = pool.idle or M.DEFAULT_KEEPALIVE
    if sock:setkeepalive(ms(idle), pool.size or M.DEFAULT_POOL_SIZE) then
      M.counters.kept = M.counters.kept + 1
    end
  else
    sock:close()
  end
  return core.parse(client._handle, op.name, status, headers, text)
end

--- Sends one attempt of `op` over a cosocket and parses the answer.
-- @tparam table client an envclone client (fields `_handle`, `_pool`)
-- @tparam table op the operation descriptor (`core.operations` row)
-- @tparam table args the operation's arguments
-- @return the result, or nil and an error object (as the libcurl transport's)
function M.send(client, op, args)
  local ngx = ngx_api()
  if not ngx then
    return fail(op, "unavailable", "the cosocket transport needs OpenResty/nginx in a phase that allows "
      .. "cosockets (not init, init_worker, set, header_filter, body_filter or log); use transport = "
      .. "'curl' or 'auto' here", false, false)
  end
  local req, verr = core.prepare(client._handle, op.name, args)
  if not req then return nil, verr end
  local settings = client._handle:settings()

  local scheme, host, port, path = split_url(req.url)
  if not scheme then
    return fail(op, "protocol", "cannot send to this base_url: " .. host, false, false)
  end
  local where = host .. ":" .. port
  local tls = scheme == "https"
  local verify = not settings.insecure
  if tls and settings.ca_file and verify then
    return fail(op, "tls", "the cosocket transport cannot use the client's ca_file: set "
      .. "lua_ssl_trusted_certificate in nginx.conf instead, or use transport = 'curl'", false, false)
  end

  local deadline = runtime.now() + settings.timeout
  -- The request. Host names the authority as the URL does (port if not default).
  local host_header = host
  if port ~= (tls and 443 or 80) then host_header = host .. ":" .. port end
  local lines = { req.method .. " " .. path .. " HTTP/1.1", "Host: " .. host_header }
  for _, h in ipairs(req.headers) do lines[#lines + 1] = h end
  local body = req.body
  if body then
    lines[#lines + 1] = "Content-Length: " .. #body
  elseif req.method == "POST" or req.method == "PUT" or req.method == "PATCH" then
    lines[#lines + 1] = "Content-Length: 0"
  end
  lines[#lines + 1] = "Connection: keep-alive"
  local wire = table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")

  local t = { settings = settings, host = host, port = port, where = where, tls = tls, verify = verify,
    deadline = deadline, method = req.method, scheme = scheme, wire = wire }
  local res, err, stale = exchange(ngx, client, op, t)
  -- libcurl sends a GET again on a fresh connection when a reused one died
  -- before answering; never anything else (it may have been applied).
  if res == nil and stale and req.method == "GET" then
    res, err = exchange(ngx, client, op, t)
  end
  return res, err
end

M._split_url = split_url -- for tests

return M
