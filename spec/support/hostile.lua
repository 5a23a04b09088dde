--- Test helper: start, steer and stop spec/support/hostile_server.lua, a
-- misbehaving HTTP(S) server on 127.0.0.1 (one process, like the emulator).
--
--    local hostile = require("spec.support.hostile")
--    local h = hostile.start{ tls = { cert = "srv.pem", key = "srv.key" } } -- tls optional
--    h.url, h.other_url    -- "http(s)://127.0.0.1:PORT" of the two listeners
--    h:mode("redirect_host"); h:stats(); h:stop()
--
-- Also: hostile.run(cmd) runs a shell command (with LD_PRELOAD cleared, so a
-- sanitizer preload of the test process does not follow it) and returns
-- true when it exited 0, on Lua 5.1 (LuaJIT) and 5.4 alike.
-- @module spec.support.hostile
local socket = require("socket")
local http = require("socket.http")
local ltn12 = require("ltn12")
local cjson = require("cjson.safe")
local emu = require("spec.support.emu")

local M = {}
M.bin = "spec/support/hostile_server.lua"

local shell_quote = emu.quote
M.quote = shell_quote

function M.run(cmd)
  local a, b, c = os.execute("env -u LD_PRELOAD sh -c " .. shell_quote(cmd))
  if type(a) == "number" then return a == 0 end -- Lua 5.1
  return a == true and b == "exit" and c == 0
end

local read_file = emu.read_file

local Hostile = {}
Hostile.__index = Hostile

-- A control call over plain HTTP (or HTTPS without verification: it is our
-- own test server, and the control channel is not what is under test).
function Hostile:control(method, path, body)
  local chunks = {}
  local req = { url = self.control_url .. path, method = method, sink = ltn12.sink.table(chunks),
    headers = { ["content-length"] = tostring(body and #body or 0) }, source = body and ltn12.source.string(body) }
  local requester = http.request
  if self.tls then
    local https = require("ssl.https")
    req.verify = "none"
    req.protocol = "any"
    req.options = { "all" }
    requester = https.request
  end
  local saved = http.TIMEOUT
  http.TIMEOUT = 10
  local ok, code = requester(req)
  http.TIMEOUT = saved
  if not ok or code ~= 200 then
    error("hostile server " .. method .. " " .. path .. " failed: " .. tostring(code), 2)
  end
  return cjson.decode(table.concat(chunks))
end

--- Sets how the next vendor requests are answered.
function Hostile:mode(name) return self:control("PUT", "/_hostile/mode/" .. name) end

--- Answers the next vendor requests with `status`, the header lines in
-- `headers` (a list of "Name: value") and `body`, byte for byte (a
-- Content-Length is added).
function Hostile:script(status, headers, body)
  local lines = { "HTTP/1.1 " .. status .. " Scripted" }
  for _, h in ipairs(headers or {}) do lines[#lines + 1] = h end
  lines[#lines + 1] = "Content-Length: " .. #body
  lines[#lines + 1] = "Connection: close"
  return self:control("PUT", "/_hostile/script", table.concat(lines, "\r\n") .. "\r\n\r\n" .. body)
end

--- The next vendor requests are answered with the bytes of case `name` of
-- spec/support/http1_cases.lua.
function Hostile:case(name) return self:control("PUT", "/_hostile/case/" .. name) end

--- Counters: requests, other_requests, other_with_credential, bytes_sent (of
-- the last answer), last_path, last_body, last_had_credential, handshake_failures.
function Hostile:stats() return self:control("GET", "/_hostile/stats") end

function Hostile:stop()
  if self.stopped then return end
  self.stopped = true
  pcall(self.control, self, "POST", "/_hostile/shutdown")
  for _ = 1, 100 do
    if not emu.alive(self.pid) then break end
    socket.sleep(0.02)
  end
  if emu.alive(self.pid) then os.execute("kill -KILL " .. self.pid .. " 2>/dev/null") end
  os.remove(self.port_file)
  os.remove(self.log_file)
end

Hostile.__gc = Hostile.stop

--- Starts the server; `opts.tls = { cert = path, key = path }` for HTTPS.
function M.start(opts)
  opts = opts or {}
  local port_file, log_file = os.tmpname(), os.tmpname()
  os.remove(port_file)
  local args = { "--port-file", shell_quote(port_file), "--max-lifetime", tostring(opts.max_lifetime or 600) }
  if opts.tls then
    args[#args + 1] = "--tls-cert " .. shell_quote(opts.tls.cert) .. " --tls-key " .. shell_quote(opts.tls.key)
  end
  local cmd = string.format("exec env -u LD_PRELOAD lua5.4 %s %s >%s 2>&1 </dev/null & echo $!",
    shell_quote(M.bin), table.concat(args, " "), shell_quote(log_file))
  local p = assert(io.popen(cmd, "r"))
  local pid = tonumber(p:read("*l"))
  p:close()
  local self = setmetatable({ pid = pid, port_file = port_file, log_file = log_file, tls = opts.tls }, Hostile)
  local main, other = emu.wait_for_port_file(pid, port_file, "^(%d+) (%d+)\n")
  if not main then
    local log = read_file(log_file) or ""
    self:stop()
    error("the hostile server did not start: " .. log)
  end
  local scheme = opts.tls and "https" or "http"
  self.port, self.other_port = tonumber(main), tonumber(other)
  self.url = scheme .. "://127.0.0.1:" .. main
  self.control_url = self.url
  self.other_url = "http://127.0.0.1:" .. other
  return self
end

return M
