--- The emulator's HTTP/1.1 server: a single-threaded `socket.select` loop with
-- one coroutine per connection, so a delayed answer on one connection never
-- blocks another. Every buffer, loop and wait is bounded.
--
-- A mixin: `install(Emulator)` adds `listen`, `url`, `step`, `serve`, `close`
-- (and the connection plumbing) to the emulator object, which provides
-- `handle(req)`, `protocol_error(status, message, path)`, `render_body(resp)`,
-- `rejected(resp)`, `finished(resp)`, `connection_closed(conn)`, `clock`, `quiet`.
-- Each parsed request carries its connection (`req.conn`, a table the core may mark).
-- @module envclone.emulator.server

local socket = require("socket")
local util = require("envclone.emulator.util")

local REASONS = util.REASONS

local MAX_HEAD_BYTES = 64 * 1024          -- request line + headers
local MAX_BODY_BYTES = 1024 * 1024        -- request body
local IDLE_TIMEOUT = 30                   -- seconds: idle keep-alive, slow request, slow write
local MAX_CONNECTIONS = 256               -- select() is limited to FD_SETSIZE (1024)
local MAX_REQUESTS_PER_CONNECTION = 100000
local MAX_ACCEPTS_PER_STEP = 64

local S = {}

local function wait_for(kind, sock, deadline)
  return coroutine.yield(kind, sock, deadline)
end

local function sleep(seconds, clock)
  if seconds and seconds > 0 then wait_for("sleep", nil, clock() + seconds) end
end

-- Reads more bytes into conn.buf. Returns true, or nil and "closed"/"timeout"/error.
local function fill(conn, deadline, max)
  for _ = 1, 1e9 do
    local data, err, partial = conn.sock:receive(max or 65536)
    local chunk = data or partial
    if chunk and #chunk > 0 then
      conn.buf = conn.buf .. chunk
      return true
    end
    if err ~= "timeout" then return nil, err or "closed" end
    if wait_for("read", conn.sock, deadline) == "timeout" then return nil, "timeout" end
  end
  return nil, "timeout"
end

local function send_all(conn, data, deadline)
  local i, n = 1, #data
  for _ = 1, 1e9 do
    if i > n then return true end
    local last, err, partial = conn.sock:send(data, i)
    if last then
      i = last + 1
    elseif err == "timeout" then
      i = (partial or i - 1) + 1
      if i <= n and wait_for("write", conn.sock, deadline) == "timeout" then return nil, "timeout" end
    else
      return nil, err
    end
  end
  return nil, "timeout"
end

local function head_text(status, headers, body_len, keep_alive)
  local lines = { string.format("HTTP/1.1 %d %s", status, REASONS[status] or "Status") }
  lines[#lines + 1] = "Server: envclone-emulator"
  lines[#lines + 1] = "Date: " .. os.date("!%a, %d %b %Y %H:%M:%S GMT")
  if body_len > 0 and not (headers and headers["Content-Type"]) then
    lines[#lines + 1] = "Content-Type: application/json; charset=utf-8"
  end
  lines[#lines + 1] = "Content-Length: " .. body_len
  lines[#lines + 1] = "Connection: " .. (keep_alive and "keep-alive" or "close")
  local names = {}
  for k in pairs(headers or {}) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do lines[#lines + 1] = k .. ": " .. headers[k] end
  return table.concat(lines, "\r\n") .. "\r\n\r\n"
end

-- After answering an error early, stop sending and drain what the client still sends
-- (bounded), so that closing does not reset the connection before it reads the answer.
local function linger(conn, clock)
  conn.sock:shutdown("send")
  local deadline = clock() + 1
  for _ = 1, 64 do
    conn.buf = ""
    if not fill(conn, deadline) then return end
  end
end

-- Reads one request from conn. Returns req, or nil plus an optional error response.
local function read_request(self, conn)
  local clock = self.clock
  local deadline = clock() + IDLE_TIMEOUT
  local head_end
  for _ = 1, 1e9 do
    conn.buf = conn.buf:gsub("^\r?\n", "", 4)
    head_end = conn.buf:find("\r\n\r\n", 1, true)
    if head_end then break end
    if #conn.buf > MAX_HEAD_BYTES then
      return nil, self:protocol_error(431, "request line and headers exceed 64 KiB")
    end
    if not fill(conn, deadline) then return nil end
  end
  if head_end + 3 > MAX_HEAD_BYTES then
    return nil, self:protocol_error(431, "request line and headers exceed 64 KiB")
  end
  local head = conn.buf:sub(1, head_end - 1)
  conn.buf = conn.buf:sub(head_end + 4)

  local request_line, rest = head:match("^([^\r\n]*)\r?\n?(.*)$")
  local method, target, major, minor = request_line:match("^(%u+) (%S+) HTTP/(%d)%.(%d)$")
  if not method then return nil, self:protocol_error(400, "malformed request line") end
  if major ~= "1" then return nil, self:protocol_error(505, "only HTTP/1.x is supported") end
  local headers, lengths = {}, {}
  for line in (rest .. "\r\n"):gmatch("(.-)\r\n") do
    if line ~= "" then
      local name, value = line:match("^([!#$%%&'*+%-.^_`|~%w]+):[ \t]*(.-)[ \t]*$")
      if not name then return nil, self:protocol_error(400, "malformed header line") end
      name = name:lower()
      if name == "content-length" then lengths[#lengths + 1] = value end
      headers[name] = headers[name] and (headers[name] .. ", " .. value) or value
    end
  end
  target = target:gsub("^[Hh][Tt][Tt][Pp][Ss]?://[^/]*", "")
  if target == "" then target = "/" end
  local path, query = target:match("^([^?]*)%??(.*)$")
  if not target:find("?", 1, true) then query = nil end

  if headers["transfer-encoding"] then
    return nil, self:protocol_error(411, "chunked request bodies are not supported; send Content-Length", path)
  end
  local length = 0
  for _, v in ipairs(lengths) do
    for part in v:gmatch("[^,]+") do
      local n = part:match("^%s*(%d+)%s*$")
      if not n or #n > 12 then return nil, self:protocol_error(400, "invalid Content-Length", path) end
      n = tonumber(n)
      if length ~= 0 and n ~= length then return nil, self:protocol_error(400, "conflicting Content-Length", path) end
      length = n
    end
  end
  if length > MAX_BODY_BYTES then
    return nil, self:protocol_error(413, "request body exceeds 1 MiB", path)
  end
  if length > 0 and #conn.buf < length and (headers["expect"] or ""):lower() == "100-continue" then
    if not send_all(conn, "HTTP/1.1 100 Continue\r\n\r\n", deadline) then return nil end
  end
  for _ = 1, 1e9 do
    if #conn.buf >= length then break end
    if not fill(conn, deadline, length - #conn.buf) then return nil end
  end
  local body = conn.buf:sub(1, length)
  conn.buf = conn.buf:sub(length + 1)

  local conn_hdr = (headers["connection"] or ""):lower()
  local keep_alive
  if minor == "0" then
    keep_alive = conn_hdr:find("keep-alive", 1, true) ~= nil
  else
    keep_alive = conn_hdr:find("close", 1, true) == nil
  end
  return {
    method = method, target = target, path = path, query = query,
    headers = headers, body = body, keep_alive = keep_alive, conn = conn,
  }
end

-- Sends resp on conn, honouring delay and faults. Returns true to keep the connection.
function S:deliver(conn, req, resp)
  local clock = self.clock
  sleep(resp.delay, clock)
  local fault = resp.fault
  if fault == "close_before" or fault == "close_after" then return false end
  if fault == "slow" then sleep(resp.slow_seconds, clock) end
  local status = resp.status
  local body = self:render_body(resp)
  if fault == "malformed" then
    if body == "" then
      status, body = (status == 204 and 200 or status), '{"malformed":'
    else
      body = body:sub(1, #body // 2)
    end
  end
  local keep = req.keep_alive and not resp.close and not resp.shutdown and fault ~= "truncated"
  local head = head_text(status, resp.headers, #body, keep)
  local deadline = clock() + IDLE_TIMEOUT
  if fault == "truncated" then
    if #body > 0 then
      send_all(conn, head .. body:sub(1, #body // 2), deadline)
    else
      send_all(conn, head:sub(1, #head // 2), deadline)
    end
    return false
  end
  local ok = send_all(conn, head .. body, deadline)
  if resp.shutdown then self.stopping = true end
  return ok and keep
end

function S:note(req, resp)
  if self.quiet then return end
  io.stderr:write(string.format("%s %s%s -> %s%s%s\n", req.method, req.path,
    req.query and ("?" .. req.query) or "",
    (resp.fault == "close_before" or resp.fault == "close_after") and "closed" or tostring(resp.status),
    resp.operation and (" " .. resp.operation) or "",
    resp.fault and (" [fault " .. resp.fault .. "]") or ""))
end

function S:serve_connection(conn)
  local sock = conn.sock
  for _ = 1, MAX_REQUESTS_PER_CONNECTION do
    local req, failure = read_request(self, conn)
    if not req then
      if failure then
        -- Rejected by the HTTP layer (413, 411, 431, 400): counted when aimed at a vendor.
        self:rejected(failure)
        local body = self:render_body(failure)
        if send_all(conn, head_text(failure.status, failure.headers, #body, false) .. body,
            self.clock() + IDLE_TIMEOUT) then
          linger(conn, self.clock)
        end
      end
      break
    end
    local ok, resp = pcall(self.handle, self, req)
    if not ok then
      io.stderr:write("envclone emulator: error: ", tostring(resp), "\n")
      resp = self:protocol_error(500, "internal emulator error", req.path)
    end
    self:note(req, resp)
    conn.pending = resp
    local keep = self:deliver(conn, req, resp)
    conn.pending = nil
    self:finished(resp)
    if not keep then break end
  end
  sock:close()
end

--- Binds the listening socket.
-- @tparam[opt="127.0.0.1"] string host "127.0.0.1" or "::1" only
-- @tparam[opt=0] number port 0 picks a free port
-- @treturn[1] number the port
-- @treturn[2] nil
-- @treturn[2] string error
function S:listen(host, port)
  host = host or "127.0.0.1"
  if host ~= "127.0.0.1" and host ~= "::1" then
    return nil, "refusing to listen on '" .. tostring(host) .. "': only 127.0.0.1 or ::1 are allowed"
  end
  port = tonumber(port or 0)
  if not port or port < 0 or port > 65535 or port ~= math.floor(port) then
    return nil, "invalid port"
  end
  local server, err = socket.bind(host, port, 128)
  if not server then return nil, "cannot listen on " .. host .. ":" .. port .. ": " .. tostring(err) end
  server:settimeout(0)
  local _, bound = server:getsockname()
  self.server = server
  self.host = host
  self.port = tonumber(bound)
  return self.port
end

--- The base URL of the listening emulator (`http://127.0.0.1:PORT`).
-- @treturn string
function S:url()
  local h = self.host == "::1" and "[::1]" or self.host
  return "http://" .. h .. ":" .. tostring(self.port)
end

function S:spawn(sock)
  local conn = { sock = sock, buf = "" }
  local co = coroutine.create(function() self:serve_connection(conn) end)
  self.tasks[co] = { sock = sock, conn = conn }
  self.connections = self.connections + 1
  self:resume(co)
end

function S:resume(co, ...)
  local task = self.tasks[co]
  local ok, kind, _, deadline = coroutine.resume(co, ...)
  if not ok then
    io.stderr:write("envclone emulator: connection error: ", tostring(kind), "\n")
    pcall(task.sock.close, task.sock)
  end
  if not ok or coroutine.status(co) == "dead" then
    self.tasks[co] = nil
    self.connections = self.connections - 1
    self:connection_closed(task.conn)
    return
  end
  task.wait, task.deadline = kind, deadline
end

--- Runs one iteration of the server loop (accept, wait up to max_wait, resume).
-- @tparam[opt=1] number max_wait seconds
function S:step(max_wait)
  local now = self.clock()
  local recvt, sendt = {}, {}
  local wait = max_wait or 1
  if self.server and self.connections < MAX_CONNECTIONS then recvt[1] = self.server end
  for _, t in pairs(self.tasks) do
    if t.wait == "read" then recvt[#recvt + 1] = t.sock
    elseif t.wait == "write" then sendt[#sendt + 1] = t.sock end
    if t.deadline then wait = math.min(wait, math.max(0, t.deadline - now)) end
  end
  local readable, writable = socket.select(recvt, sendt, wait)
  readable, writable = readable or {}, writable or {}
  if self.server and readable[self.server] then
    for _ = 1, MAX_ACCEPTS_PER_STEP do
      if self.connections >= MAX_CONNECTIONS then break end
      local client = self.server:accept()
      if not client then break end
      client:settimeout(0)
      client:setoption("tcp-nodelay", true)
      self:spawn(client)
    end
  end
  now = self.clock()
  local ready = {}
  for co, t in pairs(self.tasks) do
    if (t.wait == "read" and readable[t.sock]) or (t.wait == "write" and writable[t.sock]) then
      ready[#ready + 1] = { co, "ready" }
    elseif t.deadline and now >= t.deadline then
      ready[#ready + 1] = { co, "timeout" }
    end
  end
  for _, r in ipairs(ready) do
    if self.tasks[r[1]] then self:resume(r[1], r[2]) end
  end
end

--- Serves until `POST /_emulator/shutdown` (or until max_lifetime seconds passed).
-- @tparam[opt] number max_lifetime seconds
function S:serve(max_lifetime)
  local stop_at = max_lifetime and (self.clock() + max_lifetime) or math.huge
  while not self.stopping and self.clock() < stop_at do
    self:step(1)
  end
  self:close()
end

--- Closes the listening socket and every open connection.
function S:close()
  for co, t in pairs(self.tasks) do
    pcall(t.sock.close, t.sock)
    self.tasks[co] = nil
    self:connection_closed(t.conn)
  end
  self.connections = 0
  if self.server then self.server:close() end
  self.server = nil
end

--- Adds the server methods to an emulator class.
-- @tparam table class the emulator's method table
function S.install(class)
  for k, f in pairs(S) do
    if k ~= "install" then class[k] = f end
  end
end

return S
