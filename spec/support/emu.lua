--- Test helper: start, control and stop an envclone emulator process.
--
--    local emu = require("spec.support.emu")
--    local e = emu.start{ kontent_clone_seconds = 1 }
--    -- e.port, e.url, e.base_urls.{versori,qovery,kontent,droplit}, e.credentials, e.seed
--    e:stats(); e:requests(); e:reset(); e:config{...}; e:faults(plan); e:clear_faults()
--    e:concurrency(); e:reset_concurrency()
--    e:stop()
--
-- Specs run from the repository root (package.path includes ./?.lua).
-- @module spec.support.emu

local socket = require("socket")
local http = require("socket.http")
local ltn12 = require("ltn12")
local cjson = require("cjson.safe")

local M = {}

--- Path of the emulator script, relative to the repository root.
M.bin = "bin/envclone-emulator"

local CONTROL_TIMEOUT = 10

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.quote = shell_quote

local function read_file(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local text = f:read("*a")
  f:close()
  return text
end
M.read_file = read_file

local unpack = table.unpack or rawget(_G, "unpack") -- 5.1 and LuaJIT have no table.unpack

--- Waits until process `pid` has written `port_file` in the form `pattern`
-- (or has died, or `seconds` have passed); returns the pattern's captures.
-- @tparam number pid
-- @tparam string port_file
-- @tparam string pattern
-- @tparam[opt=10] number seconds
function M.wait_for_port_file(pid, port_file, pattern, seconds)
  local deadline = socket.gettime() + (seconds or 10)
  repeat
    local found = { (read_file(port_file) or ""):match(pattern) }
    if found[1] or not M.alive(pid) then return unpack(found) end
    socket.sleep(0.02)
  until socket.gettime() >= deadline
end

--- Whether the process pid is alive (a zombie counts as dead).
-- @tparam number pid
-- @treturn boolean
function M.alive(pid)
  if not pid then return false end
  local stat = read_file("/proc/" .. pid .. "/stat")
  if stat then
    local state = stat:match("^%d+ %b() (%a)")
    return state ~= nil and state ~= "Z" and state ~= "X"
  end
  return os.execute("kill -0 " .. pid .. " 2>/dev/null") == true
end

local Emu = {}
Emu.__index = Emu

--- Sends one HTTP request to the emulator.
-- @tparam string method
-- @tparam string path e.g. "/_emulator/stats" or a vendor path
-- @tparam[opt] table opts `body` (string, or a table encoded as JSON), `headers`, `timeout`
-- @treturn[1] number status
-- @treturn[1] string body
-- @treturn[1] table response headers (lower-case names)
-- @treturn[2] nil
-- @treturn[2] string error
function Emu:request(method, path, opts)
  opts = opts or {}
  local body = opts.body
  if type(body) == "table" then body = cjson.encode(body) end
  local headers = {}
  for k, v in pairs(opts.headers or {}) do headers[k:lower()] = v end
  if body then
    headers["content-length"] = tostring(#body)
    headers["content-type"] = headers["content-type"] or "application/json"
  end
  local chunks = {}
  local saved = http.TIMEOUT
  http.TIMEOUT = opts.timeout or CONTROL_TIMEOUT
  local ok, code, resp_headers = http.request{
    url = self.url .. path,
    method = method,
    headers = headers,
    source = body and ltn12.source.string(body) or nil,
    sink = ltn12.sink.table(chunks),
  }
  http.TIMEOUT = saved
  if not ok then return nil, tostring(code) end
  return code, table.concat(chunks), resp_headers
end

-- A control call that must succeed; returns the decoded JSON answer.
function Emu:control(method, path, body)
  local status, text = self:request(method, "/_emulator/" .. path, { body = body })
  if status ~= 200 then
    error(string.format("emulator %s /_emulator/%s failed: %s %s", method, path,
      tostring(status), tostring(text)), 2)
  end
  return cjson.decode(text)
end

--- Counters: `requests`, `by_operation`, `applied.{creates,by_operation}`, `created_names`.
function Emu:stats() return self:control("GET", "stats") end

--- The last 200 vendor requests (method, path, query, headers, body, operation, fault, status).
function Emu:requests() return self:control("GET", "requests") end

--- The emulator's whole state (debugging aid).
function Emu:state() return self:control("GET", "state") end

--- Restores state, counters, request log, faults and config to their start values.
function Emu:reset() return self:control("POST", "reset") end

--- Sets `kontent_clone_seconds` and/or `kontent_clone_outcome`.
function Emu:config(cfg) return self:control("PUT", "config", cfg) end

--- Installs a fault plan (see the emulator's docs).
function Emu:faults(plan) return self:control("PUT", "faults", plan) end

--- Removes the fault plan.
function Emu:clear_faults() return self:control("DELETE", "faults") end

--- Concurrency seen since start, reset or `reset_concurrency`: `connections` (open now),
-- `max_connections`, `requests_in_flight`, `max_requests_in_flight` (vendor requests between
-- being read and their answer being written) and `max_in_flight_per_key.kontent[ENV_ID]`
-- (the same, per Kontent environment). The emulator answers at once unless told otherwise:
-- give the fault plan a `delay` (e.g. `e:faults{ delay = 0.05 }`) to make overlaps visible.
function Emu:concurrency() return self:control("GET", "concurrency") end

--- Restarts the concurrency maxima from the current values; returns them.
function Emu:reset_concurrency() return self:control("DELETE", "concurrency") end

--- Whether the emulator process is still running.
--- Marks an option to leave out in `Emu:client` (e.g. `{ token = emu.OMIT }`).
M.OMIT = setmetatable({}, { __name = "emu.OMIT" })

--- An envclone client for `vendor` aimed at this emulator, with its credentials
-- and `timeout = 5`, then `base` and `extra` laid over (a value of `emu.OMIT`
-- leaves that option out).
-- @tparam string vendor
-- @tparam[opt] table extra
-- @tparam[opt] table base
function Emu:client(vendor, extra, base)
  local opts = { base_url = self.base_urls[vendor], timeout = 5 }
  -- a vendor's further API roots (Versori's Connect API) by their option
  for option, url in pairs(self.extra_base_urls and self.extra_base_urls[vendor] or {}) do opts[option] = url end
  for k, v in pairs(self.credentials[vendor]) do opts[k] = v end
  for _, layer in ipairs{ base or {}, extra or {} } do
    for k, v in pairs(layer) do
      if v == M.OMIT then opts[k] = nil else opts[k] = v end
    end
  end
  return require("envclone")[vendor](opts)
end

function Emu:alive() return M.alive(self.pid) end

--- Stops the emulator: asks it to shut down, then kills it if it is still alive.
function Emu:stop()
  if self.stopped then return end
  self.stopped = true
  self:request("POST", "/_emulator/shutdown", { timeout = 2 })
  for _ = 1, 100 do
    if not M.alive(self.pid) then break end
    socket.sleep(0.02)
  end
  if M.alive(self.pid) then
    os.execute("kill -TERM " .. self.pid .. " 2>/dev/null")
    for _ = 1, 50 do
      if not M.alive(self.pid) then break end
      socket.sleep(0.02)
    end
    if M.alive(self.pid) then os.execute("kill -KILL " .. self.pid .. " 2>/dev/null") end
  end
  os.remove(self.port_file)
  os.remove(self.log_file)
end

Emu.__gc = Emu.stop
Emu.__close = Emu.stop

--- Starts an emulator process on a free port and waits until it listens.
-- @tparam[opt] table opts `kontent_clone_seconds`, `kontent_clone_outcome`,
--   `kontent_rate_limit` (default false here, although the emulator's own default is on:
--   true enforces Kontent's 10 requests/s and 400 requests/min per environment with 429s),
--   `faults` (a fault plan, table or JSON text, in force from the start and after each reset),
--   `max_lifetime` (seconds, default 1800: a safety net against leaked processes),
--   `quiet` (default true), `bin` (script path), `wait` (seconds, default 10)
-- @treturn table the emulator handle (raises if it does not come up)
function M.start(opts)
  opts = opts or {}
  local port_file = os.tmpname()
  local log_file = os.tmpname()
  os.remove(port_file)
  local args = { "--port", "0", "--port-file", shell_quote(port_file),
    "--max-lifetime", tostring(opts.max_lifetime or 1800) }
  if opts.quiet ~= false then args[#args + 1] = "--quiet" end
  if opts.kontent_clone_seconds then
    args[#args + 1] = "--kontent-clone-seconds " .. tostring(opts.kontent_clone_seconds)
  end
  if opts.kontent_clone_outcome then
    args[#args + 1] = "--kontent-clone-outcome " .. shell_quote(opts.kontent_clone_outcome)
  end
  -- Kontent's per-environment rate limit (10/s, 400/min) is off unless asked for: most
  -- suites fire Kontent calls back to back at one environment
  args[#args + 1] = "--kontent-rate-limit " .. (opts.kontent_rate_limit and "on" or "off")
  if opts.faults then
    local plan = type(opts.faults) == "table" and cjson.encode(opts.faults) or opts.faults
    args[#args + 1] = "--faults " .. shell_quote(plan)
  end
  local cmd = string.format("exec lua5.4 %s %s >%s 2>&1 </dev/null & echo $!",
    shell_quote(opts.bin or M.bin), table.concat(args, " "), shell_quote(log_file))
  local p = assert(io.popen(cmd, "r"))
  local pid = tonumber(p:read("*l"))
  p:close()
  if not pid then error("could not start the emulator: " .. cmd) end

  local self = setmetatable({ pid = pid, port_file = port_file, log_file = log_file }, Emu)
  local port = tonumber(M.wait_for_port_file(pid, port_file, "^(%d+)\n", opts.wait))
  if not port then
    local log = read_file(log_file) or ""
    self:stop()
    error("the emulator did not start: " .. log)
  end
  self.port = port
  self.url = "http://127.0.0.1:" .. port
  if not package.path:find("./lua/?.lua", 1, true) then
    package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
  end
  local ok, emulator = pcall(require, "envclone.emulator")
  if not ok then
    -- the emulator is Lua 5.4 code: under LuaJIT / 5.1 ask lua5.4 for its tables
    local dump = io.popen("lua5.4 -e " .. shell_quote("package.path='./lua/?.lua;./lua/?/init.lua;'..package.path "
      .. "local m = require('envclone.emulator') "
      .. "io.write(require('cjson').encode({ credentials = m.credentials, seed = m.seed, "
      .. "prefixes = m.prefixes }))"), "r")
    local tables = dump and cjson.decode(dump:read("*a") or "")
    if dump then dump:close() end
    ok, emulator = tables ~= nil, tables
  end
  if not ok then
    self:stop()
    error("cannot load the emulator's tables (credentials, seed, prefixes)")
  end
  self.credentials = emulator.credentials
  self.seed = emulator.seed
  -- one base URL per vendor API base: versori, versori_connect, qovery, kontent, droplit
  self.base_urls = {}
  for base, prefix in pairs(emulator.prefixes) do self.base_urls[base] = self.url .. prefix end
  -- a vendor's further API roots go to the client by their option (Versori's connect_base_url)
  self.extra_base_urls = { versori = { connect_base_url = self.base_urls.versori_connect } }
  return self
end

return M
