--- The OpenResty transport: one HTTP/1.1 exchange over an nginx cosocket,
-- so a request handler never blocks its worker while a vendor answers.
--
-- A client uses it for every call made where cosockets work
-- (`transport = "auto"`, the default) or always (`transport = "cosocket"`).
-- It is a transport like any host's (`perform(request) -> response`): the
-- C core validates and builds the request (`request:wire()`), decides its
-- policy (`request.reuse`), turns the answer into a result or an error
-- (`request:parse`), and makes the error of a failed exchange
-- (`request:fail`), so the error objects are libcurl's; envclone.http1
-- reads the answer.
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

--- Cap on the bytes of a response's status line and headers (the C core's, as libcurl's).
M.MAX_HEADER_BYTES = core.limits.max_header_bytes
--- Default idle time of a pooled connection, seconds.
M.DEFAULT_KEEPALIVE = 60
--- Default size of a connection pool (nginx's lua_socket_pool_size).
M.DEFAULT_POOL_SIZE = 30

--- Counters of this worker (or process): `requests`, `connects` (new
-- connections), `reused` (connections taken from the pool), `kept`
-- (returned to the pool), `failures` (exchanges that ended in a transport error).
M.counters = { requests = 0, connects = 0, reused = 0, kept = 0, failures = 0 }

--- Cap on one header line (libcurl's own limit).
M.MAX_HEADER_LINE = core.limits.max_header_line

local ngx_api = runtime.cosockets_available

--- Can this code use cosockets right now (inside nginx, in a phase that allows them)?
-- @treturn boolean
function M.available()
  return ngx_api() ~= nil
end

-- An error of the exchange: the C core's one constructor (kind, retryable,
-- maybe_applied follow from the code and the request's policy).
local function fail(req, code, message, sent, retryable)
  M.counters.failures = M.counters.failures + 1
  return req:fail(code, message, sent and true or false, retryable)
end

-- How a cosocket error string from connect() maps to libcurl's codes.
local function connect_failure(req, err, where)
  local e = tostring(err)
  local l = e:lower()
  if l == "timeout" then
    return fail(req, "timeout", "connect to " .. where .. " timed out", false, true)
  end
  if l:find("no resolver defined", 1, true) then
    return fail(req, "resolve", "could not resolve " .. where .. ": " .. e
      .. " (add a 'resolver' directive to nginx.conf)", false, false)
  end
  if l:find("resolve", 1, true) or l:find("host not found", 1, true) or l:find("server failure", 1, true) then
    return fail(req, "resolve", "could not resolve " .. where .. ": " .. e, false, true)
  end
  return fail(req, "connect", "failed to connect to " .. where .. ": " .. e, false, true)
end

-- TLS handshake errors: certificate problems are final (as libcurl's
-- CURLE_PEER_FAILED_VERIFICATION), others (reset, timeout) may pass.
local function tls_failure(req, err, where)
  local e = tostring(err)
  if e == "timeout" then
    return fail(req, "timeout", "TLS handshake with " .. where .. " timed out", false, true)
  end
  local verify = e:match("^%d+: ") or e:find("certificate", 1, true) or e:find("verify", 1, true)
  return fail(req, "tls", "TLS handshake with " .. where .. " failed: " .. e, false, not verify)
end

local function ms(seconds)
  local v = math.floor(seconds * 1000)
  return v < 1 and 1 or v
end

-- One exchange on one connection: connect (or take a pooled connection),
-- TLS, send `wire`, read the answer. Returns the response, or nil, err and
-- `stale` = true when a pooled connection turned out to be closed before
-- any answer byte (the caller may then try once more, as libcurl does).
local function exchange(ngx, req, pool, t)
  local host, port, where, tls, verify, deadline, wire =
    t.host, t.port, t.where, t.tls, t.verify, t.deadline, t.wire
  local timeout = req.timeout
  local connect_ms = ms(math.min(req.connect_timeout, timeout))
  local sock = ngx.socket.tcp()
  sock:settimeouts(connect_ms, ms(timeout), ms(timeout))

  -- The connection-reuse rule is the request's (the C core's, as libcurl's):
  -- a request that may not reuse one goes out on a fresh connection and
  -- never returns to the pool.
  local pool_name = table.concat({ "envclone", t.scheme, host, port, req.vendor,
    tls and (verify and "verify" or "insecure") or "plain", req.reuse and "pooled" or "fresh" }, ":")
  local ok, cerr = sock:connect(host, port, { pool = pool_name,
    pool_size = pool.size or M.DEFAULT_POOL_SIZE })
  if not ok then return connect_failure(req, cerr, where) end
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
      return fail(req, "timeout", "TLS handshake with " .. where .. " timed out", false)
    end
    sock:settimeouts(ms(left), ms(left), ms(left))
    -- false: no session object back (and Debian 12's lua-resty-core asserts
    -- when asked for one)
    local shaken, terr = sock:sslhandshake(false, sni, verify)
    if not shaken then
      sock:close()
      return tls_failure(req, terr, where)
    end
  end

  local left = deadline - runtime.now()
  if left <= 0 then
    sock:close()
    return fail(req, "timeout", "no time left to send the request to " .. where, false)
  end
  sock:settimeouts(ms(left), ms(left), ms(left))
  local sent_bytes, serr = sock:send(wire)
  if not sent_bytes then
    sock:close()
    if serr == "timeout" then
      return fail(req, "timeout", "sending the request to " .. where .. " timed out", true)
    end
    if serr == "closed" and tls and verify and not reused then
      -- lua-nginx-module without openresty/lua-nginx-module#2506 (Debian 12 ships 0.10.23)
      -- returns true from a verifying sslhandshake whose certificate check failed when the
      -- handshake completed at once, and has closed the socket: nothing left, and it is a TLS
      -- failure, as libcurl reports it
      return fail(req, "tls", "TLS handshake with " .. where .. " failed: the server's certificate "
        .. "could not be verified", false, false)
    end
    local res, err = fail(req, "send", "sending the request to " .. where .. " failed: " .. tostring(serr), true)
    return res, err, reused
  end

  -- The answer, read as RFC 9112 says (envclone.http1), within the deadline.
  local resp, rerr = http1.read_response(sock, { deadline = deadline, now = runtime.now, method = t.method,
    max_body = req.max_response_size, where = where, timeout = timeout })
  if not resp then
    sock:close()
    local res, err = fail(req, rerr.code, rerr.message, true, rerr.retryable)
    -- a pooled connection the server had closed: nothing came back
    return res, err, reused and rerr.received == 0 and rerr.code ~= "timeout"
  end
  if resp.reusable and req.reuse then
    local idle = pool.idle or M.DEFAULT_KEEPALIVE
    if sock:setkeepalive(ms(idle), pool.size or M.DEFAULT_POOL_SIZE) then
      M.counters.kept = M.counters.kept + 1
    end
  else
    sock:close()
  end
  return resp
end

--- Carries one request over a cosocket: the transport interface's
-- `perform`, with the client's pool settings.
-- @param req an envclone request (see doc/transports.md)
-- @tparam[opt] table pool `size` (idle connections kept per pool) and
--   `idle` (seconds an idle connection is kept)
-- @return a response `{ status, headers, body }` (header names in lower
--   case), or nil and an error object made by `req:fail`
function M.perform(req, pool)
  pool = pool or {}
  local ngx = ngx_api()
  if not ngx then
    return fail(req, "unavailable", "the cosocket transport needs OpenResty/nginx in a phase that allows "
      .. "cosockets (rewrite, access, content, a timer, ssl_certificate; not init, init_worker, set, balancer, "
      .. "header_filter, body_filter or log); transport = 'curl' sends from here, blocking the worker", false)
  end
  local scheme, host, port = req.scheme, req.host, req.port
  local where = host .. ":" .. port
  local tls = scheme == "https"
  local verify = not req.insecure
  if tls and req.ca_file and verify then
    return fail(req, "tls", "the cosocket transport cannot use the client's ca_file: set "
      .. "lua_ssl_trusted_certificate in nginx.conf instead, or use transport = 'curl'", false, false)
  end
  if req.proxy then
    return fail(req, "unavailable", "the cosocket transport does not go through a proxy: use "
      .. "transport = 'curl' for a client with a proxy", false)
  end
  local t = { host = host, port = port, where = where, tls = tls, verify = verify, scheme = scheme,
    deadline = runtime.now() + req.timeout, method = req.method, wire = req:wire() }
  local res, err, stale = exchange(ngx, req, pool, t)
  -- libcurl sends a request again on a fresh connection when a reused one
  -- died before answering; only requests that may reuse connections ever
  -- meet that (GETs).
  if res == nil and stale and req.reuse then
    res, err = exchange(ngx, req, pool, t)
  end
  return res, err
end

--- A transport table for a client: `{ perform = function(req) ... end }`.
-- @tparam[opt] table pool as for `perform`
-- @treturn table
function M.transport(pool)
  pool = pool or {}
  return { perform = function(req) return M.perform(req, pool) end, name = "cosocket" }
end

return M
