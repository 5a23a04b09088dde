--- Shared by the examples: real credentials from the environment when they
-- are set, otherwise the local emulator at $ENVCLONE_EMULATOR_URL (which
-- scripts/demo.sh starts; or run bin/envclone-emulator yourself).
local emulator = require("envclone.emulator")

local support = {}

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
  if real then return opts, false end
  local url = os.getenv("ENVCLONE_EMULATOR_URL")
  if not url then
    io.stderr:write("Set ", next(real_env[vendor]) and real_env[vendor][next(real_env[vendor])],
      " for the real ", vendor, " API, or ENVCLONE_EMULATOR_URL for the emulator",
      " (bin/envclone-emulator --port 8790 &  then ENVCLONE_EMULATOR_URL=http://127.0.0.1:8790).\n")
    os.exit(2)
  end
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
    os.exit(1)
  end
  print(label .. ": ok")
  return ...
end

return support
