#!/usr/bin/env lua5.4
--- A scripted loopback server for spec/lifecycle_ops_spec.lua: it records
-- each request it gets (method, request target with its query, headers) and
-- answers it with the status and body it was told to.
--
--    lua5.4 spec/support/capture_server.lua --port-file F [--max-lifetime S]
--
-- Control, on the same port (never recorded):
--
--    PUT    /_capture/answer   body "STATUS\nBODY": how the next requests are answered
--    GET    /_capture/log      the recorded requests, as a JSON array
--    DELETE /_capture/log      forgets them
--    POST   /_capture/shutdown
--
-- Bounded: one connection at a time, one request per connection, 5 s socket
-- timeouts, 64 KiB of request head, 1 MiB of request body, and the process
-- exits by itself after --max-lifetime seconds (default 300).
local socket = require("socket")
local cjson = require("cjson")
local listener = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/listener.lua") -- next to this file

local opts = { ["max-lifetime"] = "300" }
do
  local i = 1
  while arg[i] do
    local k = arg[i]:match("^%-%-(.+)$")
    if not k or not arg[i + 1] then error("usage: capture_server.lua --port-file F [--max-lifetime S]") end
    opts[k] = arg[i + 1]
    i = i + 2
  end
end
assert(opts["port-file"], "--port-file is required")

local MAX_HEAD, MAX_BODY = 65536, 1048576
local log = {}
local answer = { status = 200, body = "{}" }

local function read_request(conn)
  local line = conn:receive("*l")
  if not line then return nil end
  local method, target = line:match("^(%u+) (%S+) HTTP/1%.%d$")
  if not method then return nil end
  local headers, size = {}, #line
  while true do
    local h = conn:receive("*l")
    if not h then return nil end
    size = size + #h
    if size > MAX_HEAD then return nil end
    if h == "" then break end
    local k, v = h:match("^([^:]+):%s*(.-)%s*$")
    if k then headers[k:lower()] = v end
  end
  local body = ""
  local len = tonumber(headers["content-length"] or "0")
  if len and len > 0 then
    if len > MAX_BODY then return nil end
    body = conn:receive(len) or ""
  end
  return method, target, headers, body
end

local function respond(conn, status, body)
  local head = { "HTTP/1.1 " .. status .. " Captured" }
  if status ~= 204 then
    head[#head + 1] = "Content-Type: application/json"
    head[#head + 1] = "Content-Length: " .. #body
  else
    body = ""
  end
  head[#head + 1] = "Connection: close"
  conn:send(table.concat(head, "\r\n") .. "\r\n\r\n" .. body)
end

local server, port = listener.listen(1)
listener.publish(opts["port-file"], port)
local deadline = socket.gettime() + tonumber(opts["max-lifetime"])
local running = true
while running and socket.gettime() < deadline do
  local conn = server:accept()
  if conn then
    conn:settimeout(5)
    local method, target, headers, body = read_request(conn)
    if method and target:sub(1, 10) == "/_capture/" then
      if method == "PUT" and target == "/_capture/answer" then
        local status, rest = body:match("^(%d+)\n(.*)$")
        answer = { status = tonumber(status) or 200, body = rest or "{}" }
        respond(conn, 200, "{}")
      elseif method == "GET" and target == "/_capture/log" then
        respond(conn, 200, #log == 0 and "[]" or cjson.encode(log))
      elseif method == "DELETE" and target == "/_capture/log" then
        log = {}
        respond(conn, 200, "{}")
      elseif method == "POST" and target == "/_capture/shutdown" then
        respond(conn, 200, "{}")
        running = false
      else
        respond(conn, 404, "{}")
      end
    elseif method then
      log[#log + 1] = { method = method, target = target, headers = headers, body = body }
      respond(conn, answer.status, answer.body)
    end
    conn:close()
  end
end
server:close()
