-- A loopback HTTPS server that speaks just enough HTTP/2 (RFC 9113) to
-- answer envclone's requests, or to end them the ways an HTTP/2 server may.
-- It offers only "h2" by ALPN. A client whose ALPN list lacks "h2" gets the
-- fatal no_application_protocol alert RFC 7301 §3.2 prescribes (read from
-- its ClientHello with MSG_PEEK, which needs LuaJIT's FFI; under another Lua,
-- luasec leaves ALPN unacknowledged and the server closes the connection
-- on the HTTP/1.1 request that follows). Over h2 it reads the client's
-- frames on any number of connections at once (one coroutine each), decodes
-- each request's HEADERS (HPACK, dynamic table and Huffman included;
-- CONTINUATION too) and DATA, and once a request is complete (END_STREAM)
-- does what MODE says for it.
--
-- MODE is a script: actions joined by "_then_", one per request in the
-- order the requests arrive (whatever their connection), the last one
-- repeating ("goaway0_then_ok": the first request gets a GOAWAY, every
-- later one an answer). Actions:
--   ok            an answer valid for the envclone operation called (chosen
--                 by method and path; 200, 201, 202 or 204, JSON,
--                 x-request-id "h2-<request number>"): processed
--   429           429, retry-after 1, Kontent's rate-limit body: not processed
--   503           503 without retry-after, a JSON error: not processed
--   rid_x         404 with x-request-id "h2-x-request-id", a JSON error
--                 without a request_id; rid_xr: x-request-id then
--                 request-id "h2-request-id"; rid_rx: the same in the other
--                 order: not processed
--   goaway0       GOAWAY, last-stream-id 0, NO_ERROR: the request was not
--                 processed (RFC 9113 §6.8), a retry is safe even for a create
--   refused       RST_STREAM REFUSED_STREAM: not processed either (§8.7)
--   goaway_after  GOAWAY naming the request's stream as the last one
--                 processed, INTERNAL_ERROR, and no answer: processed (it
--                 may have acted)
--   reset         RST_STREAM INTERNAL_ERROR (and GOAWAY naming the stream):
--                 processed (it may have acted)
-- Every action but the answers (ok, 429, 503, rid_*) closes the connection
-- after it.
--
-- STATS is rewritten after every event, whole: a first line
-- "connections requests processed alpn_refused", then one line per request,
-- "request N conn C stream S METHOD PATH ACTION" (a request is counted
-- when its HEADERS block is complete: it arrived as HTTP/2).
-- It listens on 127.0.0.1 only and exits after MAX_LIFETIME seconds.
-- Usage: luajit h2_server.lua PORTFILE STATS MODE CERT KEY [MAX_LIFETIME]
local socket = require("socket")
local ssl = require("ssl")
local listener = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/listener.lua")

local port_file, stats_path, mode, cert, key = arg[1], arg[2], arg[3], arg[4], arg[5]
local deadline = socket.gettime() + (tonumber(arg[6]) or 300)

local ACTIONS = { ok = true, ["429"] = true, ["503"] = true, rid_x = true, rid_xr = true, rid_rx = true,
  goaway0 = true, refused = true, goaway_after = true, reset = true }
local script = {}
for action in (mode .. "_then_"):gmatch("(.-)_then_") do
  assert(ACTIONS[action], "h2_server: unknown action '" .. action .. "' in MODE " .. mode)
  script[#script + 1] = action
end

local ctx = assert(ssl.newcontext{ mode = "server", protocol = "any", key = key, certificate = cert,
  options = "all", alpn = { "h2" } })
local server, port = listener.listen(0)
listener.publish(port_file, port)

-- Stats ----------------------------------------------------------------------

local connections, requests, processed, alpn_refused = 0, 0, 0, 0
local log = {}
local function save()
  local f = assert(io.open(stats_path .. ".tmp", "w"))
  f:write(connections, " ", requests, " ", processed, " ", alpn_refused, "\n")
  for _, line in ipairs(log) do f:write(line, "\n") end
  f:close()
  os.rename(stats_path .. ".tmp", stats_path)
end
save()

-- Bytes ----------------------------------------------------------------------

local function u16(s, i) return s:byte(i) * 256 + s:byte(i + 1) end
local function u32(n)
  return string.char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256, math.floor(n / 256) % 256,
    n % 256)
end
local function has(flags, bit) return math.floor(flags / bit) % 2 == 1 end

-- ALPN (RFC 7301): the protocols a ClientHello offers, or nil without the
-- extension. `rec` is the first TLS record; raises on a short or odd one.
local function offered_alpn(rec)
  if rec:byte(1) ~= 22 or rec:byte(6) ~= 1 then return nil end -- handshake record, ClientHello
  local p = 6 + 4 + 2 + 32 -- message type and length, client version, random
  p = p + 1 + rec:byte(p) -- session id
  p = p + 2 + u16(rec, p) -- cipher suites
  p = p + 1 + rec:byte(p) -- compression methods
  local stop = p + 2 + u16(rec, p)
  p = p + 2
  while p + 4 <= stop do
    local ext, len = u16(rec, p), u16(rec, p + 2)
    p = p + 4
    if ext == 16 then
      local list, q = {}, p + 2
      while q < p + len do
        list[#list + 1] = rec:sub(q + 1, q + rec:byte(q))
        q = q + 1 + rec:byte(q)
      end
      return list
    end
    p = p + len
  end
end

-- recv(MSG_PEEK) through LuaJIT's FFI: reads the ClientHello and leaves it
-- for OpenSSL. nil where there is no FFI.
local peek
do
  local ok, ffi = pcall(require, "ffi")
  if ok then
    ffi.cdef("long recv(int fd, void *buf, size_t n, int flags);")
    local MSG_PEEK, MSG_DONTWAIT, EAGAIN = 2, 64, 11
    local buf = ffi.new("uint8_t[?]", 16384 + 5)
    -- what is waiting on fd, up to n bytes; "" when nothing yet; nil at EOF or error
    peek = function(fd, n)
      local got = tonumber(ffi.C.recv(fd, buf, n, MSG_PEEK + MSG_DONTWAIT))
      if got > 0 then return ffi.string(buf, got) end
      if got < 0 and ffi.errno() == EAGAIN then return "" end
      return nil
    end
  end
end

-- HPACK (RFC 7541) ---------------------------------------------------------

local STATIC = {
  { ":authority" }, { ":method", "GET" }, { ":method", "POST" }, { ":path", "/" }, { ":path", "/index.html" },
  { ":scheme", "http" }, { ":scheme", "https" }, { ":status", "200" }, { ":status", "204" }, { ":status", "206" },
  { ":status", "304" }, { ":status", "400" }, { ":status", "404" }, { ":status", "500" }, { "accept-charset" },
  { "accept-encoding", "gzip, deflate" }, { "accept-language" }, { "accept-ranges" }, { "accept" },
  { "access-control-allow-origin" }, { "age" }, { "allow" }, { "authorization" }, { "cache-control" },
  { "content-disposition" }, { "content-encoding" }, { "content-language" }, { "content-length" },
  { "content-location" }, { "content-range" }, { "content-type" }, { "cookie" }, { "date" }, { "etag" },
  { "expect" }, { "expires" }, { "from" }, { "host" }, { "if-match" }, { "if-modified-since" },
  { "if-none-match" }, { "if-range" }, { "if-unmodified-since" }, { "last-modified" }, { "link" },
  { "location" }, { "max-forwards" }, { "proxy-authenticate" }, { "proxy-authorization" }, { "range" },
  { "referer" }, { "refresh" }, { "retry-after" }, { "server" }, { "set-cookie" },
  { "strict-transport-security" }, { "transfer-encoding" }, { "user-agent" }, { "vary" }, { "via" },
  { "www-authenticate" },
}

-- The Huffman code (Appendix B) is canonical: each symbol's code length
-- (symbols 0-255, then EOS) gives its code.
local HUFFMAN_LENGTHS = {
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28,
  28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12,
  10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6,
  5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22,
  22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22, 21, 20,
  22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28,
  27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28,
  27, 27, 27, 27, 27, 26, 30,
}
local huffman = {} -- code length -> code -> symbol
do
  local kraft = 0
  for _, len in ipairs(HUFFMAN_LENGTHS) do kraft = kraft + 2 ^ -len end
  assert(#HUFFMAN_LENGTHS == 257 and kraft == 1, "h2_server: the Huffman code lengths are not a complete code")
  local code = 0
  for len = 1, 30 do
    for sym = 0, 256 do
      if HUFFMAN_LENGTHS[sym + 1] == len then
        huffman[len] = huffman[len] or {}
        huffman[len][code] = sym
        code = code + 1
      end
    end
    code = code * 2
  end
end

local function huffman_decode(s)
  local out, code, len = {}, 0, 0
  for i = 1, #s do
    local byte = s:byte(i)
    for shift = 7, 0, -1 do
      code = code * 2 + math.floor(byte / 2 ^ shift) % 2
      len = len + 1
      local sym = huffman[len] and huffman[len][code]
      if sym then
        assert(sym < 256, "hpack: EOS in a string")
        out[#out + 1] = string.char(sym)
        code, len = 0, 0
      end
    end
  end
  assert(len < 8, "hpack: Huffman padding too long")
  return table.concat(out)
end

-- An integer with an n-bit prefix at s[pos]; returns it and the next position.
local function hpack_int(s, pos, n)
  local max = 2 ^ n - 1
  local v = s:byte(pos) % (max + 1)
  pos = pos + 1
  if v < max then return v, pos end
  local mult = 1
  repeat
    local b = assert(s:byte(pos), "hpack: truncated integer")
    pos = pos + 1
    v = v + (b % 128) * mult
    mult = mult * 128
  until b < 128
  return v, pos
end

local function hpack_string(s, pos)
  local huff = s:byte(pos) >= 128
  local len
  len, pos = hpack_int(s, pos, 7)
  local raw = s:sub(pos, pos + len - 1)
  assert(#raw == len, "hpack: truncated string")
  return huff and huffman_decode(raw) or raw, pos + len
end

-- A decoder for one connection (its dynamic table): block -> { {name, value}, ... }.
local function hpack_decoder()
  local dynamic, size, max = {}, 0, 4096
  local function evict()
    while size > max do
      local e = table.remove(dynamic)
      size = size - (#e[1] + #e[2] + 32)
    end
  end
  local function entry(i)
    local e = STATIC[i] or dynamic[i - #STATIC]
    assert(i > 0 and e, "hpack: no entry " .. i)
    return e[1], e[2] or ""
  end
  return function(block)
    local headers, pos = {}, 1
    while pos <= #block do
      local b = block:byte(pos)
      local index, name, value
      if b >= 128 then -- indexed field
        index, pos = hpack_int(block, pos, 7)
        name, value = entry(index)
      elseif b >= 64 or b < 32 then -- literal: with incremental indexing, without, never indexed
        index, pos = hpack_int(block, pos, b >= 64 and 6 or 4)
        if index == 0 then name, pos = hpack_string(block, pos) else name = entry(index) end
        value, pos = hpack_string(block, pos)
        if b >= 64 then
          table.insert(dynamic, 1, { name, value })
          size = size + #name + #value + 32
          evict()
        end
      else -- dynamic table size update
        max, pos = hpack_int(block, pos, 5)
        evict()
      end
      if name then headers[#headers + 1] = { name, value } end
    end
    return headers
  end
end

-- Literal header fields without indexing, new names, no Huffman (§6.2.2).
local function hpack_encode(headers)
  local function str(s)
    local n = #s
    if n < 127 then return string.char(n) .. s end
    local len = string.char(127)
    n = n - 127
    while n >= 128 do
      len = len .. string.char(n % 128 + 128)
      n = math.floor(n / 128)
    end
    return len .. string.char(n) .. s
  end
  local out = {}
  for _, h in ipairs(headers) do out[#out + 1] = "\0" .. str(h[1]) .. str(h[2]) end
  return table.concat(out)
end

-- Frames ---------------------------------------------------------------------

local DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0, 1, 3, 4, 6, 7, 8, 9
local END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 1, 1, 4, 8, 32
local NO_ERROR, INTERNAL_ERROR, REFUSED_STREAM = 0, 2, 7
local MAX_FRAME = 16384

local function frame(ftype, flags, stream, payload)
  local n = #payload
  return string.char(math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256, ftype, flags)
    .. u32(stream) .. payload
end

-- A frame's payload without its padding (and a HEADERS frame's priority).
local function unpad(ftype, flags, payload)
  if has(flags, PADDED) then payload = payload:sub(2, #payload - payload:byte(1)) end
  if ftype == HEADERS and has(flags, PRIORITY_FLAG) then payload = payload:sub(6) end
  return payload
end

-- Answers --------------------------------------------------------------------

local function json_string(s)
  return '"' .. tostring(s):gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
end

local function uuid(n) return string.format("00000000-0000-4000-8000-%012d", n) end

-- A string member of a JSON body, read loosely (the bodies are envclone's).
local function member(body, name)
  local v = (body or ""):match('"' .. name .. '"%s*:%s*"([^"]*)"')
  return v and json_string(v) or "null"
end

-- status, JSON body (nil: none) of an answer valid for the operation called.
local function success(req, n)
  local m, path, body = req.method, (req.path or ""):gsub("%?.*$", ""), req.body
  local id = path:match("/projects/([^/]+)$")
  local function environment(name)
    return string.format('{"id":%s,"name":"h2 project","environment":%s,"is_production":false}',
      json_string(id), name)
  end
  if m == "GET" and id then return 200, environment('"Production"') end -- kontent.get_environment
  if m == "PATCH" and id then -- kontent.rename_environment: [{"op":"rename_environment","value":...}]
    return 200, environment(member(body, "value"))
  end
  if m == "DELETE" and id then return 204 end -- kontent.delete_environment
  if m == "PUT" and path:match("/projects/[^/]+/mark%-environment%-as%-production$") then return 204 end
  if m == "GET" and path:match("/projects/[^/]+/environment%-cloning%-state$") then
    return 200, '{"cloning_state":"done"}'
  end
  if m == "POST" and path:match("/projects/[^/]+/clone%-environment$") then -- kontent.clone_environment
    return 200, string.format('{"id":%s,"management_api_key":"h2-management-key",'
      .. '"secured_delivery_api_key":null,"delivery_preview_api_key":null}', json_string(uuid(n)))
  end
  if m == "POST" and path:match("/application/[^/]+/clone$") then -- qovery.clone_application
    return 202, string.format('{"id":%s,"name":%s,"environment":{"id":%s}}', json_string(uuid(n)),
      member(body, "name"), member(body, "environment_id"))
  end
  local project = path:match("/o/[^/]+/projects/([^/]+)/environments/clone$")
  if m == "POST" and project then -- versori.clone_environment: the project, with the new environment
    return 200, string.format('{"id":%s,"name":"h2 project","environments":[{"id":%s,"name":%s}]}',
      json_string(project), json_string(uuid(n)), member(body, "newEnvName"))
  end
  if m == "POST" and path:match("/o/[^/]+/connections/[^/]+/versions$") then -- versori.create_connection_version
    return 201, string.format('{"id":%s,"name":%s}', json_string(uuid(n)), member(body, "name"))
  end
  if m == "POST" and path:match("/api/environments/?$") then -- droplit.create_environment
    return 201, string.format('{"id":%s,"ecosystemId":%s,"alias":%s,"createdAt":"2024-01-01T00:00:00.000Z"}',
      json_string(uuid(n)), member(body, "ecosystemId"), member(body, "alias"))
  end
  return 404, '{"error_code":100,"message":"h2_server: no such operation"}'
end

local NOT_FOUND = '{"error_code":100,"message":"The environment was not found."}'

-- status, body, extra headers of the answer `action` gives request number n.
local function answer(action, req, n)
  if action == "ok" then
    local status, body = success(req, n)
    return status, body, { { "x-request-id", "h2-" .. n } }
  elseif action == "429" then
    return 429, '{"request_id":"h2-429","error_code":10000,'
      .. '"message":"API rate limit exceeded. Please retry your request later."}', { { "retry-after", "1" } }
  elseif action == "503" then
    return 503, '{"error_code":503,"message":"Service unavailable."}', {}
  elseif action == "rid_x" then
    return 404, NOT_FOUND, { { "x-request-id", "h2-x-request-id" } }
  elseif action == "rid_xr" then
    return 404, NOT_FOUND, { { "x-request-id", "h2-x-request-id" }, { "request-id", "h2-request-id" } }
  elseif action == "rid_rx" then
    return 404, NOT_FOUND, { { "request-id", "h2-request-id" }, { "x-request-id", "h2-x-request-id" } }
  end
end

-- Connections ----------------------------------------------------------------

local AGAIN = { timeout = true, wantread = true, wantwrite = true }

-- One connection, run as a coroutine that yields whenever it would wait;
-- k.raw is its TCP socket, k.id its number, k.sock the socket to watch.
local function serve(k)
  local raw, id, c = k.raw, k.id, nil
  local function send(data)
    c:settimeout(5)
    local ok = c:send(data)
    c:settimeout(0)
    return ok
  end
  -- exactly n bytes, or nil when the connection ended
  local function recv(n)
    local got = ""
    while #got < n do
      local data, err, partial = c:receive(n - #got)
      got = got .. (data or partial or "")
      if err and not AGAIN[err] then return nil end
      if #got < n then coroutine.yield() end
    end
    return got
  end
  local function linger() -- lets the client read what was sent before the close
    local until_ = socket.gettime() + 0.05
    while socket.gettime() < until_ do coroutine.yield() end
  end

  if peek then -- ALPN: refuse a client that does not offer h2, as RFC 7301 says
    local fd, rec = raw:getfd(), ""
    while #rec < 5 or #rec < 5 + u16(rec, 4) do
      rec = peek(fd, #rec < 5 and 5 or math.min(5 + u16(rec, 4), 16384 + 5))
      if not rec then return end
      if #rec < 5 or #rec < 5 + u16(rec, 4) then coroutine.yield() end
    end
    local ok, offered = pcall(offered_alpn, rec)
    local h2 = not ok or offered == nil
    for _, p in ipairs(ok and offered or {}) do h2 = h2 or p == "h2" end
    if not h2 then
      alpn_refused = alpn_refused + 1
      save()
      raw:settimeout(5)
      raw:receive(#rec) -- read, so that the close sends no RST over the alert
      raw:send(string.char(21, 3, 3, 0, 2, 2, 120)) -- alert: fatal, no_application_protocol
      linger()
      return
    end
  end

  c = ssl.wrap(raw, ctx) -- it takes the descriptor over
  if not c then return end
  k.sock = c
  c:settimeout(0)
  while true do
    local ok, err = c:dohandshake()
    if ok then break end
    if not AGAIN[err] then return end
    coroutine.yield()
  end
  if recv(24) ~= "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" then return end
  if not send(frame(SETTINGS, 0, 0, "")) then return end

  local decode = hpack_decoder()
  local streams = {}
  local block, block_stream, block_flags -- a header block waiting for its CONTINUATION

  -- the request on `stream` is complete: act on it; false when the connection is done
  local function complete(stream)
    local req = streams[stream]
    streams[stream] = nil
    local action = req.action
    if action == "goaway0" then
      send(frame(GOAWAY, 0, 0, u32(0) .. u32(NO_ERROR)))
    elseif action == "refused" then
      send(frame(RST_STREAM, 0, stream, u32(REFUSED_STREAM)))
    elseif action == "goaway_after" then
      processed = processed + 1
      send(frame(GOAWAY, 0, 0, u32(stream) .. u32(INTERNAL_ERROR)))
    elseif action == "reset" then
      processed = processed + 1
      send(frame(RST_STREAM, 0, stream, u32(INTERNAL_ERROR)) .. frame(GOAWAY, 0, 0, u32(stream) .. u32(NO_ERROR)))
    else
      local status, body, extra = answer(action, req, req.n)
      if action == "ok" and status < 300 then processed = processed + 1 end
      local headers = { { ":status", tostring(status) } }
      if body then headers[2] = { "content-type", "application/json" } end
      for _, h in ipairs(extra) do headers[#headers + 1] = h end
      local out = { frame(HEADERS, END_HEADERS + (body and 0 or END_STREAM), stream, hpack_encode(headers)) }
      body = body or ""
      for i = 1, #body, MAX_FRAME do
        out[#out + 1] = frame(DATA, i + MAX_FRAME > #body and END_STREAM or 0, stream, body:sub(i, i + MAX_FRAME - 1))
      end
      save()
      return send(table.concat(out)) and true
    end
    save()
    linger()
    return false
  end

  -- a complete header block for `stream`
  local function headers_done(stream, flags, fragment)
    local fields = decode(fragment)
    if streams[stream] then -- trailers: the request ends here
      return not has(flags, END_STREAM) or complete(stream)
    end
    local req = { body = "" }
    for _, h in ipairs(fields) do
      if h[1] == ":method" then req.method = h[2] elseif h[1] == ":path" then req.path = h[2] end
    end
    requests = requests + 1
    req.n = requests
    req.action = script[math.min(requests, #script)]
    log[#log + 1] = string.format("request %d conn %d stream %d %s %s %s", requests, id, stream,
      tostring(req.method), tostring(req.path), req.action)
    streams[stream] = req
    save()
    return not has(flags, END_STREAM) or complete(stream)
  end

  while true do
    local head = recv(9)
    if not head then return end
    local len = head:byte(1) * 65536 + head:byte(2) * 256 + head:byte(3)
    local ftype, flags = head:byte(4), head:byte(5)
    local stream = (head:byte(6) % 128) * 16777216 + head:byte(7) * 65536 + head:byte(8) * 256 + head:byte(9)
    local payload = len > 0 and recv(len) or ""
    if not payload then return end
    local go_on = true
    if ftype == HEADERS then
      payload = unpad(ftype, flags, payload)
      if has(flags, END_HEADERS) then
        go_on = headers_done(stream, flags, payload)
      else
        block, block_stream, block_flags = payload, stream, flags
      end
    elseif ftype == CONTINUATION and block and stream == block_stream then
      block = block .. payload
      if has(flags, END_HEADERS) then
        go_on = headers_done(stream, block_flags, block)
        block = nil
      end
    elseif ftype == DATA then
      local req = streams[stream]
      if req then req.body = req.body .. unpad(ftype, flags, payload) end
      if len > 0 then -- give the flow-control window back at once
        send(frame(WINDOW_UPDATE, 0, 0, u32(len)) .. frame(WINDOW_UPDATE, 0, stream, u32(len)))
      end
      if req and has(flags, END_STREAM) then go_on = complete(stream) end
    elseif ftype == SETTINGS and not has(flags, ACK) then
      send(frame(SETTINGS, ACK, 0, ""))
    elseif ftype == PING and not has(flags, ACK) then
      send(frame(PING, ACK, 0, payload))
    elseif ftype == RST_STREAM then
      streams[stream] = nil
    elseif ftype == GOAWAY then
      return
    end -- PRIORITY, WINDOW_UPDATE and the rest: nothing to do
    if not go_on then return end
  end
end

-- The loop -------------------------------------------------------------------

-- Every connection's coroutine is resumed on every turn (a socket's TLS
-- layer may hold data select does not see); select only bounds the wait.
local conns = {}
while socket.gettime() < deadline do
  local watch = { server }
  for _, k in ipairs(conns) do watch[#watch + 1] = k.sock end
  socket.select(watch, nil, 0.01)
  local raw = server:accept()
  if raw then
    raw:settimeout(0)
    connections = connections + 1
    save()
    local k = { raw = raw, sock = raw, id = connections }
    k.co = coroutine.create(function() return serve(k) end)
    conns[#conns + 1] = k
  end
  for i = #conns, 1, -1 do
    local k = conns[i]
    local ok, err = coroutine.resume(k.co)
    if not ok then io.stderr:write("h2_server: ", tostring(err), "\n") end
    if coroutine.status(k.co) == "dead" then
      k.sock:close()
      table.remove(conns, i)
    end
  end
end
