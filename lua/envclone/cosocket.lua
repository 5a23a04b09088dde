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
local http1 = require("envclone.http1")

local M = {}

--- Cap on the bytes of a response's status line and headers (as libcurl's).
M.MAX_HEADER_BYTES = http1.MAX_HEADER_BYTES
--- Default idle time of a pooled connection, seconds.
M.DEFAULT_KEEPALIVE = 60
--- Default size of a connection pool (nginx's lua_socket_pool_size).
M.DEFAULT_POOL_SIZE = 30

--- Counters of this worker (or process): `requests`, `connects` (new
-- connections), `reused` (connections taken from the pool), `kept`
-- (returned to the pool), `failures` (exchanges that ended in a transport error).
M.counters = { requests = 0, connects = 0, reused = 0, kept = 0, failures = 0 }

--- Cap on one header line (libcurl's own limit).
M.MAX_HEADER_LINE = http1.MAX_HEADER_LINE

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

local function ms(seconds)
  local v = math.floor(seconds * 1000)
  return v < 1 and 1 or v
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

  -- The answer, read as RFC 9112 says (envclone.http1), within the deadline.
  local resp, rerr = http1.read_response(sock, { deadline = deadline, now = runtime.now, method = method,
    max_body = settings.max_response_size, where = where, timeout = settings.timeout })
  if not resp then
    sock:close()
    local res, err = fail(op, rerr.code, rerr.message, true, rerr.retryable)
    -- a pooled connection the server had closed: nothing came back
    return res, err, reused and rerr.received == 0 and rerr.code ~= "timeout"
  end
  if resp.reusable and not op.creates then
    local idle = pool.idle or M.DEFAULT_KEEPALIVE
    if sock:setkeepalive(ms(idle), pool.size or M.DEFAULT_POOL_SIZE) then
      M.counters.kept = M.counters.kept + 1
    end
  else
    sock:close()
  end
  return core.parse(client._handle, op.name, resp.status, resp.headers, resp.body)
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
