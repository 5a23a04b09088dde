--- For the scripted servers in spec/support (run as `lua5.4 spec/support/x_server.lua`):
-- listen on loopback and tell the spec which ports, through a port file that
-- spec.support.emu.wait_for_port_file reads.
--
--    local listener = dofile((arg[0]:match("^(.*)/[^/]*$") or ".") .. "/listener.lua")
--    local server, port = listener.listen(0)
--    listener.publish(path, port)
-- @module spec.support.listener

local socket = require("socket")

local M = {}

--- Listens on 127.0.0.1, on an ephemeral port.
-- @tparam number timeout seconds `accept` waits (0: never)
-- @return the server socket
-- @treturn number its port
function M.listen(timeout)
  local server = assert(socket.bind("127.0.0.1", 0))
  server:settimeout(timeout)
  local _, port = server:getsockname()
  return server, tonumber(port)
end

--- Writes the ports, space-separated on one line, to `path`, whole: written
-- next to it, then renamed, so a reader never sees half of it.
-- @tparam string path
-- @param ... the ports
function M.publish(path, ...)
  local tmp = path .. ".tmp"
  local f = assert(io.open(tmp, "w"))
  f:write(table.concat({ ... }, " "), "\n")
  f:close()
  assert(os.rename(tmp, path))
end

return M
