--- How the command line names things: the shell's kebab-case for the
-- library's names, and each vendor's environment variables (envclone.envvars).
-- @module envclone.cli.names

local envvars = require("envclone.envvars")

local names = {}

--- Client option -> environment variable, per vendor (`envclone.envvars.credentials`).
-- @table credential_env
names.credential_env = envvars.credentials

--- Client setting -> environment variable, per vendor (`envclone.envvars.settings`).
names.setting_env = envvars.settings

--- The environment variable holding a vendor's base URL (`ENVCLONE_KONTENT_URL`).
-- @function url_env
-- @tparam string vendor
-- @treturn string
names.url_env = envvars.url

--- An environment variable's value; nil when unset or empty (as a shell's
-- `VAR= command` means "not set").
-- @tparam string var
-- @treturn ?string
function names.getenv(var)
  local v = os.getenv(var)
  if v == "" then return nil end
  return v
end

--- The command-line name of an operation or field: `clone_environment` ->
-- `clone-environment`, `ecosystemId` -> `ecosystem-id`.
-- @tparam string name
-- @treturn string
function names.kebab(name)
  return (name:gsub("(%l)(%u)", "%1-%2"):gsub("_", "-"):lower())
end

return names
