--- Shared by the examples: real credentials from the environment when they
-- are set, otherwise the local emulator at $ENVCLONE_EMULATOR_URL, or else
-- an emulator started for the length of the example (on a free loopback port).
-- $ENVCLONE_CA_FILE names a CA file to verify TLS against (e.g. the emulator
-- behind an HTTPS front end with a private CA).
local emulator = require("envclone.emulator")
local core = require("envclone.core")

local support = {}

local started -- { pid = ..., url = ... } of an emulator this process started

local function stop_emulator()
  if started then
    os.execute("kill " .. started.pid .. " 2>/dev/null")
    started = nil
  end
end

-- Runs bin/envclone-emulator on a free port and returns its URL.
local function start_emulator()
  local portfile = os.tmpname()
  os.remove(portfile)
  local pipe = io.popen("lua5.4 bin/envclone-emulator --port 0 --quiet --port-file " .. portfile
    .. " >/dev/null 2>&1 & echo $!")
  local pid = pipe and pipe:read("l")
  if pipe then pipe:close() end
  for _ = 1, 100 do
    local f = io.open(portfile)
    local port = f and f:read("l")
    if f then f:close() end
    if port and port ~= "" then
      os.remove(portfile)
      started = { pid = tonumber(pid), url = "http://127.0.0.1:" .. port }
      -- stopped when the example ends (the state is closed at a normal exit)
      support._guard = setmetatable({}, { __gc = stop_emulator })
      return started.url
    end
    core.sleep(0.05)
  end
  error("could not start bin/envclone-emulator (run the example from the repository root)")
end

local real_env = {
  versori = { token = "VERSORI_TOKEN", cookie = "VERSORI_COOKIE" },
  qovery = { token = "QOVERY_TOKEN" },
  kontent = { api_key = "KONTENT_API_KEY" },
  droplit = { token = "DROPLIT_TOKEN" },
}

--- Client options for `vendor`, and whether they point at the emulator.
-- @treturn table options
-- @treturn boolean emulated
function support.options(vendor)
  local opts, real = {}, false
  for option, var in pairs(real_env[vendor]) do
    opts[option] = os.getenv(var)
    real = real or opts[option] ~= nil
  end
  -- a private CA (a TLS front end of your own, or the suite's): ENVCLONE_CA_FILE
  opts.ca_file = os.getenv("ENVCLONE_CA_FILE")
  if real then return opts, false end
  local url = os.getenv("ENVCLONE_EMULATOR_URL") or (started and started.url) or start_emulator()
  for k, v in pairs(emulator.credentials[vendor]) do opts[k] = v end
  opts.base_url = url .. emulator.prefixes[vendor]
  return opts, true
end

--- An identifier: from the environment variable `var`, else the emulator's seed.
function support.id(var, seed_value)
  return os.getenv(var) or seed_value
end

support.seed = emulator.seed

--- Prints a result or an error and exits non-zero on error.
function support.check(label, ...)
  local res, err = ...
  if res == nil then
    io.stderr:write(label, " failed: ", tostring(err), "\n")
    stop_emulator()
    os.exit(1)
  end
  print(label .. ": ok")
  return ...
end

return support
