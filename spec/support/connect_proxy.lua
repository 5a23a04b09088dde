-- Starts spec/support/connect_proxy_server.lua: a loopback CONNECT proxy
-- that records the request heads and the tunnelled bytes it saw.
local emu = require("spec.support.emu")

local M = {}

local Proxy = {}
Proxy.__index = Proxy

--- The request heads it saw (text), and every byte clients sent through tunnels.
function Proxy:seen()
  return emu.read_file(self.log) or "", emu.read_file(self.bytes) or ""
end

function Proxy:stop()
  if self.stopped then return end
  self.stopped = true
  os.execute("kill " .. self.pid .. " 2>/dev/null")
  for _, f in ipairs{ self.port_file, self.log, self.bytes } do os.remove(f) end
end
Proxy.__gc = Proxy.stop

function M.start()
  local port_file, log, bytes = os.tmpname(), os.tmpname(), os.tmpname()
  os.remove(port_file)
  local cmd = string.format("exec env -u LD_PRELOAD lua5.4 spec/support/connect_proxy_server.lua %s %s %s 300"
    .. " >/dev/null 2>&1 </dev/null & echo $!", emu.quote(port_file), emu.quote(log), emu.quote(bytes))
  local p = assert(io.popen(cmd, "r"))
  local pid = tonumber(p:read("*l"))
  p:close()
  local port = tonumber(emu.wait_for_port_file(pid, port_file, "^(%d+)\n"))
  local self = setmetatable({ pid = pid, port_file = port_file, log = log, bytes = bytes }, Proxy)
  if not port then
    self:stop()
    error("the CONNECT proxy did not start")
  end
  self.port = port
  self.url = "http://127.0.0.1:" .. port
  return self
end

return M
