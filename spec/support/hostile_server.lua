#!/usr/bin/env lua5.4
--- A small hostile HTTP(S) server for spec/hostile_spec.lua and
-- spec/tls_spec.lua: it answers envclone's requests the way a broken or
-- malicious server (or a captive portal, or a proxy) might.
--
--    lua5.4 spec/support/hostile_server.lua --port-file F [--max-lifetime S]
--      [--tls-cert cert.pem --tls-key key.pem]
--
-- It listens on two loopback ports (127.0.0.1 only): "main", where clients
-- are pointed, and "other", the "other host" its redirects point to, which
-- only counts what reaches it (and whether it carried a credential). It
-- writes "MAIN OTHER\n" to the port file once both listen. Control, on main:
--
--    PUT  /_hostile/mode/NAME   how the next requests are answered (below)
--    PUT  /_hostile/script      the request body is the raw HTTP answer (status
--                               line, headers, body) sent, byte for byte, to
--                               the next requests (mode "script")
--    GET  /_hostile/stats       counters (JSON)
--    POST /_hostile/shutdown
--
--    PUT  /_hostile/case/NAME   answer with the bytes of a case of
--                               spec/support/http1_cases.lua, then close
--
-- Modes: good, big_length, big_stream, endless, stall, badjson, deep,
-- wrongtype, html, redirect_host, redirect_307, redirect_file, redirect_ftp,
-- headers_many, header_huge, garbage, close_early, echo, echo_slow, echo_escaped,
-- bare503, bad_date, reset, truncated, trickle, too_many, unavailable, script.
--
-- Everything is bounded: one connection at a time, 5 s socket timeouts,
-- 64 KiB of request head, 1 MiB of request body, 64 MiB per streamed answer,
-- 30 s per dribbled answer, and the process exits by itself after
-- --max-lifetime seconds (default 600).
local socket = require("socket")
local cjson = require("cjson")
local listener = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/listener.lua") -- next to this file

local opts = { ["max-lifetime"] = "600" }
do
  local i = 1
  while arg[i] do
    local k = arg[i]:match("^%-%-(.+)$")
    if not k or not arg[i + 1] then error("usage: hostile_server.lua --port-file F [--tls-cert C --tls-key K]") end
    opts[k] = arg[i + 1]
    i = i + 2
  end
end
assert(opts["port-file"], "--port-file is required")

local tls_ctx
if opts["tls-cert"] then
  local ssl = require("ssl")
  tls_ctx = assert(ssl.newcontext{
    mode = "server", protocol = "any", key = opts["tls-key"], certificate = opts["tls-cert"],
    options = { "all" },
  })
end

local main, main_port = listener.listen(0)
local other, other_port = listener.listen(0)

local MAX_HEAD = 64 * 1024
local MAX_BODY = 1024 * 1024
local STREAM_LIMIT = 64 * 1024 * 1024
local DRIBBLE_SECONDS = 30

-- the parity table, next to this file
local http1_cases = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/http1_cases.lua")

local state = {
  mode = "good", requests = 0, other_requests = 0, other_with_credential = 0,
  bytes_sent = 0, last_path = "", last_had_credential = false, handshake_failures = 0,
  last_headers = {}, last_body = "",
}
local script = "" -- the raw answer of mode "script"
local running = true

local GOOD = '{"id":"8d20758c-d74c-4f59-ae04-ee928c0816b7","name":"Sample project",'
  .. '"environment":"Production","is_production":true}'

-- Reads the request head and body; returns method, path, headers, body or nil.
local function read_request(conn)
  local line, err = conn:receive("*l")
  if not line then return nil, err end
  local method, path = line:match("^(%u+) (%S+) HTTP/1%.%d$")
  if not method then return nil, "bad request line" end
  local headers, size = {}, #line
  while true do
    local h = conn:receive("*l")
    if not h then return nil, "head cut" end
    size = size + #h
    if size > MAX_HEAD then return nil, "head too large" end
    if h == "" then break end
    local k, v = h:match("^([^:]+):%s*(.-)%s*$")
    if k then headers[k:lower()] = v end
  end
  local body = ""
  local len = tonumber(headers["content-length"] or "0")
  if len and len > 0 then
    if len > MAX_BODY then return nil, "body too large" end
    body = conn:receive(len) or ""
  end
  return method, path, headers, body
end

local sent_now = 0 -- bytes of the answer being sent

local function send(conn, data)
  local ok = conn:send(data)
  if ok then sent_now = sent_now + #data end
  return ok ~= nil
end

local function respond(conn, status, reason, headers, body)
  local out = { "HTTP/1.1 " .. status .. " " .. reason }
  for _, h in ipairs(headers or {}) do out[#out + 1] = h end
  if body then out[#out + 1] = "Content-Length: " .. #body end
  out[#out + 1] = "Connection: close"
  out[#out + 1] = ""
  out[#out + 1] = body or ""
  return send(conn, table.concat(out, "\r\n"))
end

local function json(conn, status, value)
  return respond(conn, status, "OK", { "Content-Type: application/json" }, cjson.encode(value))
end

-- Streams `total` bytes of `chunk` repeated, until done or the peer goes.
local function stream(conn, chunk, total)
  local sent = 0
  while sent < total do
    if not send(conn, chunk) then return end
    sent = sent + #chunk
  end
end

local modes = {}

function modes.good(conn)
  respond(conn, 200, "OK", { "Content-Type: application/json", "X-Request-Id: good-1" }, GOOD)
end

-- A declared length far above the client's max_response_size.
function modes.big_length(conn)
  send(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " .. STREAM_LIMIT
    .. "\r\nConnection: close\r\n\r\n[")
  stream(conn, (" "):rep(65536), STREAM_LIMIT)
end

-- No length at all: the body ends when the connection does (HTTP/1.0 style).
function modes.big_stream(conn)
  send(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n[")
  stream(conn, (" "):rep(65536), STREAM_LIMIT)
end

-- A body that never ends: chunked, one byte every 50 ms, no last chunk.
function modes.endless(conn)
  send(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n[\r\n")
  local deadline = socket.gettime() + DRIBBLE_SECONDS
  while socket.gettime() < deadline do
    socket.sleep(0.05)
    if not send(conn, "1\r\n \r\n") then return end
  end
end

-- Reads the request and never answers.
function modes.stall(conn)
  conn:settimeout(0.05)
  local deadline = socket.gettime() + DRIBBLE_SECONDS
  while socket.gettime() < deadline do
    local _, err = conn:receive(1)
    if err == "closed" then return end
  end
end

function modes.badjson(conn)
  respond(conn, 200, "OK", { "Content-Type: application/json" }, '{"id": "abc", "name": ')
end

function modes.deep(conn)
  respond(conn, 200, "OK", { "Content-Type: application/json" }, ("["):rep(100000) .. ("]"):rep(100000))
end

function modes.wrongtype(conn)
  local png = "\137PNG\r\n\26\n\0\0\0\rIHDR" .. ("\0\255\1\254"):rep(64)
  respond(conn, 200, "OK", { "Content-Type: image/png" }, png)
end

function modes.html(conn)
  respond(conn, 200, "OK", { "Content-Type: text/html; charset=utf-8" },
    "<!DOCTYPE html>\n<html><head><title>Sign in - Example SSO</title></head>\n"
      .. "<body><form method=post><input name=password></form></body></html>\n")
end

local function redirect(conn, status, location)
  respond(conn, status, status == 307 and "Temporary Redirect" or "Found", { "Location: " .. location }, "")
end

function modes.redirect_host(conn)
  redirect(conn, 302, "http://127.0.0.1:" .. other_port .. "/steal")
end

function modes.redirect_307(conn)
  redirect(conn, 307, "http://127.0.0.1:" .. other_port .. "/steal")
end

function modes.redirect_file(conn)
  redirect(conn, 302, "file:///etc/passwd")
end

function modes.redirect_ftp(conn)
  redirect(conn, 302, "ftp://127.0.0.1:" .. other_port .. "/pub/secrets")
end

-- 1 MiB of response headers: 1024 lines of 1 KiB.
function modes.headers_many(conn)
  local pad = ("a"):rep(1000)
  if not send(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n") then return end
  for i = 1, 1024 do
    if not send(conn, "X-Pad-" .. i .. ": " .. pad .. "\r\n") then return end
  end
  send(conn, "Content-Length: 2\r\nConnection: close\r\n\r\n{}")
end

-- One header line of 1 MiB.
function modes.header_huge(conn)
  if not send(conn, "HTTP/1.1 200 OK\r\nX-Huge: ") then return end
  stream(conn, ("b"):rep(65536), 1024 * 1024)
  send(conn, "\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
end

function modes.garbage(conn)
  send(conn, "\0\1\2 this is not HTTP \255\254\r\n\r\n")
end

function modes.close_early(_) end

-- Echoes the credential it received everywhere an error can carry text.
function modes.echo(conn, headers)
  local cred = headers.authorization or headers.cookie or "none"
  respond(conn, 401, "Unauthorized", {
    "Content-Type: application/json", "X-Request-Id: " .. cred, "Location: http://x/?c=" .. cred,
  }, cjson.encode{ error_code = "bad " .. cred, request_id = cred, message = "credential " .. cred .. " refused" })
end

-- The same, half a second late: the caller can close its client meanwhile.
function modes.echo_slow(conn, headers)
  socket.sleep(0.5)
  modes.echo(conn, headers)
end

-- The credential echoed with JSON escapes ("/" as "\/", every other
-- character as \uXXXX), as Gson and friends write it.
function modes.echo_escaped(conn, headers)
  local cred = headers.authorization or headers.cookie or "none"
  local escaped = cred:gsub("[^%w ]", function(ch) return string.format("\\u%04x", ch:byte()) end)
  local body = '{"error_code":"bad ' .. escaped .. '","request_id":"' .. escaped .. '","message":"credential refused",'
    .. '"detail":{"list":["' .. escaped .. '"]}}'
  respond(conn, 401, "Unauthorized", { "Content-Type: application/json" }, body)
end

-- 503 with no Retry-After: a gateway that may have passed the request on.
function modes.bare503(conn)
  respond(conn, 503, "Service Unavailable", { "Content-Type: text/plain" }, "no healthy upstream")
end

-- 500, then the good answer: a server error a later attempt gets past.
function modes.error500_once(conn)
  state.mode = "good"
  respond(conn, 500, "Internal Server Error", { "Content-Type: application/json" },
    '{"request_id":"r500","error_code":0,"message":"Internal error"}')
end

-- 429 with an HTTP-date Retry-After that os.time cannot represent.
function modes.bad_date(conn)
  respond(conn, 429, "Too Many Requests", { "Retry-After: 3000000000 Jan 2020 00:00:00",
    "Content-Type: application/json" }, '{"message":"slow down, please"}')
end

-- The raw answer set by PUT /_hostile/script.
function modes.script(conn)
  send(conn, script)
end

-- Resets the connection (RST, not FIN) once the request is in.
function modes.reset(conn)
  conn:setoption("linger", { on = true, timeout = 0 })
end

-- Half the declared body, then the connection closes.
function modes.truncated(conn)
  send(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " .. #GOOD
    .. "\r\n\r\n" .. GOOD:sub(1, #GOOD // 2))
end

-- Headers with Content-Length: 40 at once, then one body byte every 0.3 s.
function modes.trickle(conn)
  if not send(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n") then
    return
  end
  local body = ('{"id":"' .. ("x"):rep(31) .. '"}')
  for i = 1, #body do
    socket.sleep(0.3)
    if not send(conn, body:sub(i, i)) then return end
  end
end

-- 429 and 503, each with Retry-After: 0 (retry at once).
function modes.too_many(conn)
  respond(conn, 429, "Too Many Requests", { "Retry-After: 0", "Content-Type: application/json" },
    '{"message":"slow down"}')
end

function modes.unavailable(conn)
  respond(conn, 503, "Service Unavailable", { "Retry-After: 0", "Content-Type: application/json" },
    '{"message":"try again"}')
end

function modes.case(conn)
  send(conn, http1_cases.by_name[state.case].bytes)
end

local function control(conn, method, path, body)
  local case = path:match("^/_hostile/case/([%w_]+)$")
  if case and (method == "PUT" or method == "POST") then
    if not http1_cases.by_name[case] then return json(conn, 404, { error = "no such case" }) end
    state.mode, state.case = "case", case
    return json(conn, 200, { case = case })
  end
  if path == "/_hostile/script" and method == "PUT" then
    script = body
    state.mode = "script"
    return json(conn, 200, { mode = "script", bytes = #body })
  end
  local name = path:match("^/_hostile/mode/([%w_]+)$")
  if name and (method == "PUT" or method == "POST") then
    if not modes[name] then return json(conn, 404, { error = "no such mode" }) end
    state.mode = name
    return json(conn, 200, { mode = name })
  elseif path == "/_hostile/stats" then
    return json(conn, 200, state)
  elseif path == "/_hostile/shutdown" then
    running = false
    return json(conn, 200, { bye = true })
  end
  return json(conn, 404, { error = "no such control path" })
end

local function handle_main(conn)
  conn:settimeout(5)
  if tls_ctx then
    local ssl = require("ssl")
    local wrapped = ssl.wrap(conn, tls_ctx)
    wrapped:settimeout(5)
    if not wrapped or not wrapped:dohandshake() then
      state.handshake_failures = state.handshake_failures + 1
      return
    end
    conn = wrapped
  end
  local method, path, headers, body = read_request(conn)
  if not method then return end
  if path:sub(1, 10) == "/_hostile/" then return control(conn, method, path, body) end
  state.requests = state.requests + 1
  state.last_path = path
  state.last_had_credential = headers.authorization ~= nil or headers.cookie ~= nil
  state.last_headers = headers
  state.last_body = body
  sent_now = 0
  modes[state.mode](conn, headers)
  state.bytes_sent = sent_now -- of the last vendor answer
end

local function handle_other(conn)
  conn:settimeout(2)
  state.other_requests = state.other_requests + 1
  local method, _, headers = read_request(conn)
  if method and (headers.authorization or headers.cookie) then
    state.other_with_credential = state.other_with_credential + 1
  end
  respond(conn, 200, "OK", { "Content-Type: application/json" }, "{}")
end

listener.publish(opts["port-file"], main_port, other_port)

local deadline = socket.gettime() + tonumber(opts["max-lifetime"])
while running and socket.gettime() < deadline do
  local ready = socket.select({ main, other }, nil, 1)
  for _, server in ipairs(ready or {}) do
    local conn = server:accept()
    if conn then
      local ok, err = pcall(server == main and handle_main or handle_other, conn)
      if not ok then io.stderr:write("hostile server: ", tostring(err), "\n") end
      pcall(conn.close, conn)
    end
  end
end
main:close()
other:close()
