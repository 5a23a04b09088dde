--- Credentials, from the environment or a credentials file.
-- The file (`--credentials FILE`) must be mode 0600; never from argv, which
-- other users can read in the process list. Also: the client constructor's
-- errors reworded to name where an option came from.
-- @module envclone.cli.credentials

local exit = require("envclone.cli.exit")
local names = require("envclone.cli.names")

local usage_error = exit.usage_error

local credentials = {}

-- The value part of a NAME=value line as .env readers take it: spaces
-- around it dropped; "..." or '...' quotes dropped, with a # inside them kept;
-- an unquoted value ends at a # that follows a space or tab (a comment).
-- A quote with no closing quote is taken as written.
local function env_value(text)
  text = text:match("^%s*(.-)%s*$")
  local q = text:sub(1, 1)
  if q == '"' or q == "'" then
    local inner, rest = text:match("^" .. q .. "([^" .. q .. "]*)" .. q .. "(.*)$")
    if inner and (rest:match("^%s*$") or rest:match("^%s+#")) then return inner end
  end
  return (text:gsub("[ \t]+#.*$", ""))
end

--- Reads NAME=value lines from a file only its owner can read or write, as
-- .env readers do: blank lines, # comment lines and `export ` allowed; spaces
-- around `=` and the value dropped; one pair of surrounding quotes, "..." or
-- '...', dropped (a # inside them stays); `  # comment` after an unquoted
-- value dropped. Messages never include a value.
-- @tparam string path
-- @treturn table NAME -> value; raises a usage error
function credentials.read(path)
  local lfs = require("lfs")
  local attr = lfs.attributes(path)
  if not attr then usage_error("--credentials: cannot read " .. path) end
  if attr.mode ~= "file" then usage_error("--credentials: " .. path .. " is not a regular file") end
  if attr.permissions ~= "rw-------" then
    usage_error("--credentials: " .. path .. " has mode " .. attr.permissions
      .. "; it must be 0600 (chmod 600 " .. path .. ")")
  end
  local f = io.open(path, "r")
  if not f then usage_error("--credentials: cannot read " .. path) end
  local known = {}
  for _, vars in pairs(names.credential_env) do
    for _, var in pairs(vars) do known[var] = true end
  end
  local values, n = {}, 0
  for line in f:lines() do
    n = n + 1
    line = line:gsub("\r$", "")
    if not line:match("^%s*$") and not line:match("^%s*#") then
      -- `export NAME=value` too, so the same file can be sourced by a shell
      local name, value = line:gsub("^%s*export%s+", ""):match("^%s*([%w_]+)%s*=(.*)$")
      if not name then
        f:close()
        usage_error("--credentials: " .. path .. " line " .. n .. " is not NAME=value")
      end
      if not known[name] then
        f:close()
        usage_error("--credentials: " .. path .. " line " .. n .. ": unknown name " .. name)
      end
      values[name] = env_value(value)
    end
  end
  f:close()
  return values
end

--- Sets a vendor's credential options in `client_opts`, each from the file's
-- values or else the environment (an empty value counts as unset), and adds
-- every value set to `secrets` (masked in what is printed).
-- @tparam string vendor
-- @tparam ?table file_creds the `--credentials` file's values
-- @tparam table client_opts
-- @tparam table secrets
function credentials.fill(vendor, file_creds, client_opts, secrets)
  for option, var in pairs(names.credential_env[vendor]) do
    local v = (file_creds or {})[var] or os.getenv(var)
    if v == "" then v = nil end
    client_opts[option] = v
    if v then secrets[#secrets + 1] = v end
  end
end

--- Where each client option came from, for error messages: option -> the
-- name a user knows (an environment variable, "NAME in FILE", a flag).
-- @tparam string vendor
-- @tparam table opts the parsed options (`base_url` when given as a flag)
-- @tparam ?table file_creds the `--credentials` file's values
-- @tparam ?string credentials_path the file's path
-- @treturn table
function credentials.sources(vendor, opts, file_creds, credentials_path)
  local sources = { base_url = opts.base_url and "--base-url" or names.url_env(vendor),
    timeout = "--timeout" }
  for option, var in pairs(names.credential_env[vendor]) do
    sources[option] = (file_creds or {})[var] and (var .. " in " .. credentials_path) or var
  end
  return sources
end

--- The client constructor's error as one line naming the option's source:
-- "envclone: KONTENT_API_KEY: must be 8 to 8192 characters long". The
-- library's message carries the caller's source position, which means
-- nothing to a shell user, and the option's library name.
-- @param err what the constructor raised
-- @tparam table sources from `sources`
-- @treturn string
function credentials.option_error(err, sources)
  local msg = tostring(err):gsub("^[^\n]-:%d+: ", "")
  local option, rest = msg:match("^envclone[%.%w_]*: option '([%w_]+)' (.*)$")
  if not option then option, rest = msg:match("^envclone[%.%w_]*: ([%w_]+) (.*)$") end
  if option and sources[option] then return "envclone: " .. sources[option] .. ": " .. rest end
  return (msg:gsub("^envclone[%.%w_]*: ", "envclone: "))
end

return credentials
