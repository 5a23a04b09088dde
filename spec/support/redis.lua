--- Test helper: a real redis-server on a free 127.0.0.1 port, persistence
-- off (`--save '' --appendonly no`), killed when the test is done.
--
--    local rs = require("spec.support.redis")
--    local r = rs.start{ password = "s3cret" }   -- r.port, r.url, r.pid
--    r:call("KEYS", "*")                           -- one command (raises on failure)
--    r:pause(); r:resume(); r:kill(); r:restart()  -- SIGSTOP, SIGCONT, SIGKILL, same port again
--    r:stop()
-- @module spec.support.redis
local socket = require("socket")
local emu = require("spec.support.emu")
local redis = require("envclone.redis")

local M = {}

M.BIN = os.getenv("ENVCLONE_REDIS_SERVER") or "/usr/bin/redis-server"

--- Whether redis-server is installed (scripts/deps.sh test installs it).
function M.available()
  local f = io.open(M.BIN, "r")
  if f then f:close() end
  return f ~= nil
end

--- A free TCP port on 127.0.0.1 (spec.support.nginx's: outside the kernel's ephemeral range).
M.free_port = require("spec.support.nginx").free_port

local R = {}
R.__index = R

local function spawn(self)
  local args = { M.BIN, "--port", tostring(self.port), "--bind", "127.0.0.1", "--save", "''", "--appendonly", "no",
    "--daemonize", "no", "--protected-mode", "no", "--dir", emu.quote(self.dir), "--loglevel", "warning" }
  if self.password then args[#args + 1] = "--requirepass " .. emu.quote(self.password) end
  -- exec: the pid is the server's own, for SIGSTOP and SIGKILL
  local cmd = "exec " .. table.concat(args, " ") .. " >>" .. emu.quote(self.dir .. "/log")
    .. " 2>&1 </dev/null & echo $!"
  local p = assert(io.popen(cmd, "r"))
  self.pid = tonumber(p:read("*l"))
  p:close()
  local deadline = socket.gettime() + 10
  repeat
    local c = redis.connect(self.cfg, 1)
    if c then
      local pong = c:call("PING")
      c:close()
      if pong == "PONG" then return end
    end
    socket.sleep(0.02)
  until socket.gettime() > deadline
  error("redis-server did not start: " .. (emu.read_file(self.dir .. "/log") or ""))
end

--- Starts a server.
-- @tparam[opt] table opts `password`
function M.start(opts)
  opts = opts or {}
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. emu.quote(dir)))
  local self = setmetatable({ port = M.free_port(), dir = dir, password = opts.password }, R)
  self.url = "redis://" .. (opts.password and (":" .. opts.password .. "@") or "") .. "127.0.0.1:" .. self.port .. "/0"
  self.cfg = assert(redis.parse_url(self.url))
  spawn(self)
  return self
end

--- One command on a fresh connection; returns the reply (raises on failure).
function R:call(...)
  local c = assert(redis.connect(self.cfg, 2))
  local res, err = c:call(...)
  c:close()
  assert(res ~= nil, err)
  return res
end

--- Every key with its TTL in milliseconds (SCAN, then PTTL).
function R:keys()
  local out, cursor = {}, "0"
  repeat
    local r = self:call("SCAN", cursor, "COUNT", 1000)
    cursor = r[1]
    for _, k in ipairs(r[2]) do out[k] = self:call("PTTL", k) end
  until cursor == "0"
  return out
end

function R:pause() os.execute("kill -STOP " .. self.pid) end
function R:resume() os.execute("kill -CONT " .. self.pid) end

--- Kills the server (SIGKILL, after SIGCONT) and waits until it has gone.
function R:kill()
  os.execute("kill -KILL " .. self.pid .. " 2>/dev/null; kill -CONT " .. self.pid .. " 2>/dev/null")
  for _ = 1, 200 do
    if not emu.alive(self.pid) then break end
    socket.sleep(0.01)
  end
end

--- Starts the server again on the same port (after `kill`).
function R:restart() spawn(self) end

function R:stop()
  if self.stopped then return end
  self.stopped = true
  self:kill()
  os.execute("rm -rf " .. emu.quote(self.dir))
end

-- a server nobody stopped goes with its handle (Lua 5.4; 5.1 and LuaJIT
-- call no __gc on tables: there teardown stops it)
R.__gc = R.stop

return M
