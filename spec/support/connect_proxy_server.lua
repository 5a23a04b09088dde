-- A loopback HTTP proxy for the proxy specs: it accepts CONNECT and tunnels
-- the bytes both ways; any other request is answered 403 (envclone must
-- never send one). It records what it saw, so a spec can prove that the
-- proxy never sees a credential:
--   LOG: one line per request head ("CONNECT 127.0.0.1:443 HTTP/1.1", then
--        each header line, then "--"), and "PLAIN <request line>" for a
--        request that was not a CONNECT;
--   BYTES: every byte a client sent through a tunnel, appended.
-- Usage: lua5.4 connect_proxy_server.lua PORTFILE LOG BYTES [MAX_LIFETIME]
-- Listens on 127.0.0.1, on an ephemeral port written to PORTFILE. Every loop
-- is bounded: it exits after MAX_LIFETIME seconds (default 300).
local socket = require("socket")
local listener = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/listener.lua")

local port_file, log_path, bytes_path = arg[1], arg[2], arg[3]
local deadline = socket.gettime() + (tonumber(arg[4]) or 300)

local server, port = listener.listen(0)
listener.publish(port_file, port)

local function append(path, text)
  local f = assert(io.open(path, "a"))
  f:write(text)
  f:close()
end

-- conns[sock] = { peer = other socket (tunnel) | nil, head = "" (reading the request head) }
local conns = {}
local socks = { server }

local function add(s, state)
  s:settimeout(0)
  conns[s] = state
  socks[#socks + 1] = s
end

local function drop(s)
  local st = conns[s]
  if not st then return end
  conns[s] = nil
  for i = #socks, 1, -1 do if socks[i] == s then table.remove(socks, i) end end
  s:close()
  if st.peer then drop(st.peer) end
end

local function on_head(s, st)
  local head = st.head
  local lines = {}
  for line in head:gmatch("([^\r\n]*)\r?\n") do lines[#lines + 1] = line end
  local method, target = (lines[1] or ""):match("^(%u+) (%S+) HTTP/1%.%d$")
  if method ~= "CONNECT" then
    append(log_path, "PLAIN " .. tostring(lines[1]) .. "\n")
    s:send("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    drop(s)
    return
  end
  append(log_path, table.concat(lines, "\n") .. "--\n")
  local host, tport = target:match("^%[?([^%]]+)%]?:(%d+)$")
  local up = socket.tcp()
  up:settimeout(5)
  if not (host and up:connect(host, tonumber(tport))) then
    s:send("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    drop(s)
    return
  end
  s:send("HTTP/1.1 200 Connection established\r\n\r\n")
  st.head = nil
  st.peer = up
  st.client = true
  add(up, { peer = s })
  -- bytes that came with the head belong to the tunnel
  if st.rest and #st.rest > 0 then
    append(bytes_path, st.rest)
    up:send(st.rest)
  end
end

while socket.gettime() < deadline do
  local readable = socket.select(socks, nil, 1)
  for _, s in ipairs(readable or {}) do
    if s == server then
      local c = server:accept()
      if c then add(c, { head = "" }) end
    elseif conns[s] then
      local st = conns[s]
      local data, err, partial = s:receive(65536)
      data = data or partial
      if data and #data > 0 then
        if st.head then
          st.head = st.head .. data
          local e = st.head:find("\r\n\r\n", 1, true)
          if e then
            st.rest = st.head:sub(e + 4)
            st.head = st.head:sub(1, e + 1)
            on_head(s, st)
          elseif #st.head > 65536 then
            drop(s)
          end
        elseif st.peer then
          if st.client then append(bytes_path, data) end
          st.peer:send(data)
        end
      end
      if err == "closed" then drop(s) end
    end
  end
end
