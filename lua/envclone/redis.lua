--- A small Redis client: the store URL, one connection, commands in RESP2
-- and their replies, every socket operation with a timeout. It serves the
-- rate limiter's Redis store (`envclone.limiter`), nothing more.
--
-- **Why not a packaged client.** Debian 12 has two: `lua-redis` (redis-lua
-- 2.0.5, 2014) installs for Lua 5.1-5.3 only, not 5.4, and talks over
-- LuaSocket alone, which would block an nginx worker; `lua-nginx-redis`
-- (`resty.redis`) needs nginx's cosockets and does not run in plain Lua.
-- envclone runs the same limiter in Lua 5.4, LuaJIT and nginx, so this module
-- speaks RESP itself over either socket API (LuaSocket's and `ngx.socket.tcp`
-- have the same `connect`, `send`, `receive`, `close`); it is tested by
-- spec/redis_client_spec.lua against a real redis-server and by
-- scripts/fuzz_redis.lua (random and truncated replies: an error, never a
-- raise or a hang).
--
-- URL: `redis://[[user]:password@]host[:port][/db]` (port 6379, db 0). The
-- password is never shown: `redis.masked(url)` and every error print it as `***`.
-- @module envclone.redis
local redis = {}

-- Caps on what a reply may hold, so a server that answers garbage costs a
-- bounded read: the limiter's replies are a few short strings.
local MAX_BULK = 1024 * 1024
local MAX_ITEMS = 1024
local MAX_DEPTH = 4
local MAX_LINE = 64 * 1024

--- The URL with its password (and any user information) masked:
-- `redis://user:***@host:port/db`. Safe to log.
-- @tparam string url
-- @treturn string
function redis.masked(url)
  url = tostring(url)
  -- everything between "://" and the last "@" before the path is user information
  local scheme, rest = url:match("^([^:/]*://)(.*)$")
  if not scheme then
    -- not a URL: show nothing of it that could be a secret
    return url:find("@", 1, true) and "***" or url
  end
  -- the last "@" anywhere: a password may hold an unencoded "/" (base64),
  -- and a store URL's path (/DB) never holds an "@"
  local auth, tail = rest:match("^(.*)@(.*)$")
  if not auth then return url end
  local user = auth:match("^([^:]*):") or ""
  if user == "" then return scheme .. "***@" .. tail end
  return scheme .. user .. ":***@" .. tail
end

local function unescape(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

--- Parses a store URL.
-- @tparam string url `redis://[[user]:password@]host[:port][/db]`
-- @treturn[1] table `{ host, port, db, user, password, url (masked) }`
-- @treturn[2] nil
-- @treturn[2] string what is wrong (the password masked)
function redis.parse_url(url)
  if type(url) ~= "string" then return nil, "the store URL must be a string, got " .. type(url) end
  local shown = redis.masked(url)
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then return nil, "malformed store URL '" .. shown .. "': expected redis://host:port/db" end
  if scheme:lower() ~= "redis" then
    return nil, "unknown store URL scheme '" .. scheme .. "' in '" .. shown .. "': only redis:// is supported"
  end
  -- user information up to the last "@" (a password may hold "/", as
  -- generated base64 passwords do), then host, port and path
  local auth, after = rest:match("^(.*)@(.*)$")
  local authority, path = (after or rest):match("^([^/?#]*)(.*)$")
  local cfg = { url = shown, db = 0, port = 6379 }
  local hostport = authority
  if auth then
    local user, pass = auth:match("^([^:]*):(.*)$")
    if not user then user, pass = nil, auth end -- "redis://secret@host": a password alone
    cfg.user = user ~= "" and user and unescape(user) or nil
    cfg.password = unescape(pass)
  end
  local host, port = hostport:match("^%[([%x:.]+)%]:?(%d*)$")
  if not host then host, port = hostport:match("^([%w.-]+):?(%d*)$") end
  if not host or host == "" then return nil, "malformed store URL '" .. shown .. "': no host" end
  if port ~= "" then
    local p = tonumber(port)
    if not p or p < 1 or p > 65535 then return nil, "malformed store URL '" .. shown .. "': bad port" end
    cfg.port = p
  end
  cfg.host = host
  if path ~= "" and path ~= "/" then
    local db = path:match("^/(%d+)$")
    if not db or tonumber(db) > 65535 then
      return nil, "malformed store URL '" .. shown .. "': the path must be /DB (a database number)"
    end
    cfg.db = tonumber(db)
  end
  return cfg
end

--- One command as RESP: an array of bulk strings.
-- @param ... the command and its arguments (strings or numbers)
-- @treturn string
function redis.encode(...)
  local n = select("#", ...)
  local out = { "*" .. n .. "\r\n" }
  for i = 1, n do
    local a = select(i, ...)
    a = type(a) == "number" and (a == math.floor(a) and string.format("%d", a) or string.format("%.17g", a))
      or tostring(a)
    out[#out + 1] = "$" .. #a .. "\r\n" .. a .. "\r\n"
  end
  return table.concat(out)
end

local function err_reply(msg) return { redis_error = msg } end
--- Whether a reply is an error reply (`{ redis_error = text }`).
-- @param v a reply
-- @treturn boolean
function redis.is_error(v) return type(v) == "table" and v.redis_error ~= nil end

--- Reads one reply with `read(pattern)` (LuaSocket's `receive`: "*l" for a
-- line, a number for that many bytes). Error replies come back as
-- `{ redis_error = text }`, nil bulk strings and arrays as `false`.
-- @tparam function read
-- @tparam[opt] number depth
-- @return the reply, or nil and what went wrong (a protocol error, a timeout)
function redis.read_reply(read, depth)
  depth = depth or 0
  if depth > MAX_DEPTH then return nil, "protocol error: replies nested too deep" end
  local line, err = read("*l")
  if not line then return nil, err or "closed" end
  if #line > MAX_LINE then return nil, "protocol error: line too long" end
  local kind, rest = line:sub(1, 1), line:sub(2)
  if kind == "+" then return rest end
  if kind == "-" then return err_reply(rest) end
  if kind == ":" then
    local n = rest:match("^%-?%d+$") and tonumber(rest)
    if not n then return nil, "protocol error: bad integer" end
    return n
  end
  if kind == "$" or kind == "*" then
    local n = rest:match("^%-?%d+$") and tonumber(rest)
    if not n or n < -1 then return nil, "protocol error: bad length" end
    if n == -1 then return false end
    if kind == "$" then
      if n > MAX_BULK then return nil, "protocol error: bulk string too long" end
      local data, rerr = read(n + 2)
      if not data then return nil, rerr or "closed" end
      if #data ~= n + 2 or data:sub(-2) ~= "\r\n" then return nil, "protocol error: bad bulk string" end
      return data:sub(1, n)
    end
    if n > MAX_ITEMS then return nil, "protocol error: array too long" end
    local arr = {}
    for i = 1, n do
      local v, verr = redis.read_reply(read, depth + 1)
      if v == nil then return nil, verr end
      arr[i] = v
    end
    return arr
  end
  return nil, "protocol error: not a Redis reply"
end

local Conn = {}
Conn.__index = Conn
Conn.__tostring = function(c) return "envclone.redis connection to " .. c.cfg.url end

--- Opens a connection: a cosocket inside nginx where nginx allows one, else
-- LuaSocket. Authenticates and selects the database on a new connection.
-- @tparam table cfg from `redis.parse_url`
-- @tparam number timeout seconds, for connect and for each send and read
-- @treturn[1] table the connection: `c:call(...)`, `c:close()`, `c:keepalive()`
-- @treturn[2] nil
-- @treturn[2] string error (the password never in it)
function redis.connect(cfg, timeout)
  -- envclone.runtime only inside nginx: outside, this module needs no C core
  -- (the test helpers use it from any interpreter)
  local ngx = rawget(_G, "ngx") and require("envclone.runtime").cosockets_available()
  local sock, cosocket
  if ngx then
    sock, cosocket = ngx.socket.tcp(), true
    sock:settimeout(math.max(1, math.floor(timeout * 1000)))
  else
    local ok, socket = pcall(require, "socket")
    if not ok then return nil, "LuaSocket is not installed" end
    sock = socket.tcp()
    sock:settimeout(timeout)
  end
  local c = setmetatable({ sock = sock, cfg = cfg, cosocket = cosocket }, Conn)
  local ok, err
  if cosocket then
    -- pooled per store (and credentials): a connection from the pool is
    -- already authenticated and on its database
    ok, err = sock:connect(cfg.host, cfg.port, { pool = "envclone:redis:" .. cfg.host .. ":" .. cfg.port
      .. ":" .. cfg.db .. ":" .. (cfg.user or "") .. ":" .. (cfg.password and #cfg.password or "") })
  else
    ok, err = sock:connect(cfg.host, cfg.port)
  end
  if not ok then
    sock:close()
    return nil, "cannot connect to " .. cfg.url .. ": " .. tostring(err)
  end
  if cosocket and (sock:getreusedtimes() or 0) > 0 then return c end
  if cfg.password then
    local res, aerr
    if cfg.user then
      res, aerr = c:call("AUTH", cfg.user, cfg.password)
    else
      res, aerr = c:call("AUTH", cfg.password)
    end
    if res == nil or redis.is_error(res) then
      c:close()
      local why = res and res.redis_error or aerr
      return nil, "authentication to " .. cfg.url .. " failed: " .. redis.mask_text(why, cfg)
    end
  end
  if cfg.db ~= 0 then
    local res, serr = c:call("SELECT", cfg.db)
    if res == nil or redis.is_error(res) then
      c:close()
      return nil, "SELECT " .. cfg.db .. " on " .. cfg.url .. " failed: " .. tostring(res and res.redis_error or serr)
    end
  end
  return c
end

--- `text` with the store's password replaced by `***` (a server may echo it).
-- @tparam string text
-- @tparam table cfg
-- @treturn string
function redis.mask_text(text, cfg)
  text = tostring(text)
  if cfg.password and #cfg.password > 0 then
    local i = 1
    while true do
      local a, b = text:find(cfg.password, i, true)
      if not a then break end
      text = text:sub(1, a - 1) .. "***" .. text:sub(b + 1)
      i = a + 3
    end
  end
  return text
end

--- Sends one command and reads its reply. On any failure the connection is
-- closed (a half-read reply would poison the next command).
-- @param ... the command and its arguments
-- @return the reply (an error reply as `{ redis_error = text }`), or nil
--   and what went wrong
function Conn:call(...)
  if not self.sock then return nil, "closed" end
  local ok, err = self.sock:send(redis.encode(...))
  if not ok then
    self:close()
    return nil, "send: " .. tostring(err)
  end
  local sock = self.sock
  local res, rerr = redis.read_reply(function(p) return sock:receive(p) end)
  if res == nil then
    self:close()
    return nil, redis.mask_text(rerr, self.cfg)
  end
  return res
end

--- Closes the connection (idempotent).
function Conn:close()
  if self.sock then
    pcall(self.sock.close, self.sock)
    self.sock = nil
  end
end

--- Gives a cosocket back to nginx's pool (after a clean exchange only);
-- a LuaSocket connection stays open for the next command.
-- @treturn boolean whether the connection may be used again by its holder
function Conn:keepalive()
  if not self.sock then return false end
  if self.cosocket then
    local ok = self.sock:setkeepalive(60000, 16)
    if not ok then pcall(self.sock.close, self.sock) end
    self.sock = nil
    return false
  end
  return true
end

return redis
