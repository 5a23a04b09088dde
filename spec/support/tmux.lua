--- Test helper: run a command in a real terminal (a tmux server on a socket of its own),
-- for the specs of what the command line shows on a terminal.
--
--    local tmux = require("spec.support.tmux")
--    if not tmux.available() then pending("tmux is not installed") end
--    local term = tmux.new()
--    term:run(cmd)                          -- in a 160x24 pane, in the working directory
--    local final = term:wait(20, 0.1, function(screen) ... end)
--    term:stop()
-- @module spec.support.tmux

local socket = require("socket")
local emu = require("spec.support.emu")

local M = {}

--- Whether tmux is installed.
-- @treturn boolean
function M.available()
  local ok = os.execute("command -v tmux >/dev/null 2>&1")
  return ok == true or ok == 0 -- Lua 5.1 and LuaJIT answer 0
end

local Term = {}
Term.__index = Term

--- A terminal on a fresh socket path (the server starts with `run`).
-- @treturn table
function M.new()
  local sock = os.tmpname()
  os.remove(sock)
  return setmetatable({ sock = sock }, Term)
end

--- Runs `tmux ARGS` against this terminal's server; returns its standard output.
-- @tparam string args
-- @treturn string
function Term:tmux(args)
  local p = assert(io.popen("tmux -S " .. emu.quote(self.sock) .. " " .. args .. " 2>/dev/null", "r"))
  local text = p:read("*a")
  p:close()
  return text
end

--- Runs the shell command `cmd` in a detached 160x24 pane in the working directory; the pane
-- stays open after it, showing `EXIT=<status>`.
-- @tparam string cmd
function Term:run(cmd)
  local here = assert(io.popen("pwd")):read("*l")
  self:tmux("new-session -d -x 160 -y 24 -c " .. emu.quote(here) .. " "
    .. emu.quote(cmd .. "; echo EXIT=$?; sleep 60"))
end

--- Captures the screen every `interval` seconds, handing each to `on_screen`, until the
-- command has exited (`EXIT=` is shown) or `seconds` have passed.
-- @tparam number seconds
-- @tparam number interval
-- @tparam[opt] function on_screen called with each screen (a string)
-- @treturn string|nil the last screen when the command exited, nil when time ran out
function Term:wait(seconds, interval, on_screen)
  local deadline = socket.gettime() + seconds
  repeat
    local screen = self:tmux("capture-pane -p")
    if on_screen then on_screen(screen) end
    if screen:find("EXIT=%d+") then return screen end
    socket.sleep(interval)
  until socket.gettime() > deadline
  return nil
end

--- Stops the tmux server and removes its socket.
function Term:stop()
  self:tmux("kill-server")
  os.remove(self.sock)
end

return M
