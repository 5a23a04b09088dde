-- A loopback HTTPS server that speaks just enough HTTP/2 (RFC 9113) to end a
-- request the ways an HTTP/2 server may: it offers only "h2" by ALPN, reads
-- the client's preface, sends its SETTINGS, waits for the request's HEADERS
-- (so the request went out), then, by MODE:
--   goaway0       GOAWAY, last-stream-id 0, NO_ERROR: the request was not
--                 processed (RFC 9113 §6.8), a retry is safe even for a create
--   refused       RST_STREAM REFUSED_STREAM: not processed either (§8.7)
--   goaway_after  GOAWAY naming the request's stream as the last one
--                 processed, INTERNAL_ERROR, and no answer: it may have acted
--   reset         RST_STREAM INTERNAL_ERROR: it may have acted
-- then closes the connection. It counts connections and HEADERS frames in
-- STATS ("connections requests" on one line, rewritten each time).
-- Usage: lua5.4 h2_server.lua PORTFILE STATS MODE CERT KEY [MAX_LIFETIME]
local socket = require("socket")
local ssl = require("ssl")
local listener = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/listener.lua")

local port_file, stats_path, mode, cert, key = arg[1], arg[2], arg[3], arg[4], arg[5]
local deadline = socket.gettime() + (tonumber(arg[6]) or 300)

local ctx = assert(ssl.newcontext{ mode = "server", protocol = "any", key = key, certificate = cert,
  options = "all", alpn = { "h2" } })
local server, port = listener.listen(1)
listener.publish(port_file, port)

local connections, requests = 0, 0
local function save()
  local f = assert(io.open(stats_path .. ".tmp", "w"))
  f:write(connections, " ", requests, "\n")
  f:close()
  os.rename(stats_path .. ".tmp", stats_path)
end
save()

local function u32(n)
  return string.char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256, math.floor(n / 256) % 256,
    n % 256)
end

local function frame(ftype, flags, stream, payload)
  local n = #payload
  return string.char(math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256, ftype, flags)
    .. u32(stream) .. payload
end

local SETTINGS, HEADERS, RST_STREAM, GOAWAY = 4, 1, 3, 7
local NO_ERROR, INTERNAL_ERROR, REFUSED_STREAM = 0, 2, 7

-- Reads frames until a HEADERS frame arrives; returns its stream id, or nil.
local function await_headers(c)
  local preface = c:receive(24)
  if preface ~= "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" then return nil end
  c:send(frame(SETTINGS, 0, 0, ""))
  for _ = 1, 32 do
    local head = c:receive(9)
    if not head then return nil end
    local len = head:byte(1) * 65536 + head:byte(2) * 256 + head:byte(3)
    local ftype, flags = head:byte(4), head:byte(5)
    local stream = (head:byte(6) % 128) * 16777216 + head:byte(7) * 65536 + head:byte(8) * 256 + head:byte(9)
    if len > 0 and not c:receive(len) then return nil end
    if ftype == SETTINGS and flags % 2 == 0 then c:send(frame(SETTINGS, 1, 0, "")) end -- ACK theirs
    if ftype == HEADERS then return stream end
  end
end

while socket.gettime() < deadline do
  local raw = server:accept()
  if raw then
    raw:settimeout(5)
    connections = connections + 1
    save()
    local c = ssl.wrap(raw, ctx)
    if c and c:dohandshake() then
      local stream = await_headers(c)
      if stream then
        requests = requests + 1
        save()
        if mode == "goaway0" then
          c:send(frame(GOAWAY, 0, 0, u32(0) .. u32(NO_ERROR)))
        elseif mode == "refused" then
          c:send(frame(RST_STREAM, 0, stream, u32(REFUSED_STREAM)))
        elseif mode == "goaway_after" then
          c:send(frame(GOAWAY, 0, 0, u32(stream) .. u32(INTERNAL_ERROR)))
        else -- reset
          c:send(frame(RST_STREAM, 0, stream, u32(INTERNAL_ERROR)))
          c:send(frame(GOAWAY, 0, 0, u32(stream) .. u32(NO_ERROR)))
        end
        socket.sleep(0.05)
      end
      c:close()
    else
      raw:close()
    end
  end
end
