--- Test helper: a German numeric locale that exists on any machine, and a
-- way to run Lua code under it.
--
-- `localedef` (Debian `locales`) builds de_DE.UTF-8 into a temporary
-- directory; glibc finds it through LOCPATH, which must be in a process's
-- environment, so the code under test runs in a child interpreter (the
-- one the suite runs under, with the same LUA_PATH, LUA_CPATH and, under
-- ASan, LD_PRELOAD).
--
--    local locale = require("spec.support.locale")
--    local out, ok = locale.run([[ ... Lua code ... ]], { URL = "http://..." })
--    locale.cleanup()
-- @module spec.support.locale
local emu = require("spec.support.emu")

local M = {}
local dir

local function sh(cmd)
  local a, b, c = os.execute(cmd)
  if type(a) == "number" then return a == 0 end -- Lua 5.1
  return a == true and b == "exit" and c == 0
end

--- The LOCPATH directory holding de_DE.UTF-8 (built once per process).
-- Raises when localedef or the locale sources are missing.
function M.locpath()
  if dir then return dir end
  local d = os.tmpname()
  os.remove(d)
  assert(sh("mkdir -p " .. emu.quote(d)), "cannot make " .. d)
  local target = d .. "/de_DE.UTF-8"
  -- localedef exits 1 on mere warnings: what counts is the compiled LC_NUMERIC
  sh("localedef -i de_DE -f UTF-8 " .. emu.quote(target) .. " >/dev/null 2>&1")
  if not emu.read_file(target .. "/LC_NUMERIC") then
    sh("rm -rf " .. emu.quote(d))
    error("localedef could not build de_DE.UTF-8 (install Debian's 'locales': scripts/deps.sh test)")
  end
  dir = d
  return d
end

--- Runs `code` in a child Lua with LOCPATH set and the variables in `env`;
-- returns its stdout and whether it exited 0 (stderr is appended on failure).
function M.run(code, env)
  local script, out = os.tmpname(), os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write(code)
  f:close()
  local parts = { "env", "LOCPATH=" .. emu.quote(M.locpath()) }
  for k, v in pairs(env or {}) do parts[#parts + 1] = k .. "=" .. emu.quote(v) end
  parts[#parts + 1] = os.getenv("ENVCLONE_LUA") or "lua5.4"
  parts[#parts + 1] = emu.quote(script)
  local ok = sh(table.concat(parts, " ") .. " >" .. emu.quote(out) .. " 2>&1")
  local text = emu.read_file(out) or ""
  os.remove(script)
  os.remove(out)
  return text, ok
end

--- Removes the locale directory.
function M.cleanup()
  if dir then sh("rm -rf " .. emu.quote(dir)) end
  dir = nil
end

return M
