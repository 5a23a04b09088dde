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
  for option, var in pairs(names.setting_env[vendor] or {}) do
    local v = (file_creds or {})[var] or os.getenv(var)
    if v ~= nil and v ~= "" then client_opts[option] = v end
  end
end

-- The emulator's URL prefixes and demo credentials: its module under Lua
-- 5.4; under LuaJIT (the emulator is Lua 5.4 code) a lua5.4 process prints
-- them. nil when neither works.
local emulator_tables
local function load_emulator_tables()
  local ok, emu = pcall(require, "envclone.emulator")
  if ok and type(emu.prefixes) == "table" then return emu end
  local script = "package.path = " .. string.format("%q", package.path) .. "\n"
    .. "local m = require('envclone.emulator')\n"
    .. "for k, v in pairs(m.prefixes) do print('prefix\\t' .. k .. '\\t' .. v) end\n"
    .. "for n, t in pairs(m.credentials) do for o, v in pairs(t) do\n"
    .. "  print('cred\\t' .. n .. '\\t' .. o .. '\\t' .. v) end end"
  local p = io.popen("lua5.4 -e '" .. script:gsub("'", "'\\''") .. "' 2>/dev/null")
  if not p then return nil end
  local t = { prefixes = {}, credentials = {} }
  for line in p:lines() do
    local a, b, c, d = line:match("^(%a+)\t([^\t]+)\t([^\t]+)\t?([^\t]*)$")
    if a == "prefix" then t.prefixes[b] = c
    elseif a == "cred" then
      t.credentials[b] = t.credentials[b] or {}
      t.credentials[b][c] = d
    end
  end
  p:close()
  return next(t.prefixes) and t or nil
end

--- The client's base URLs from `ENVCLONE_EMULATOR_URL` (the emulator's
-- root, as `envclone emulator` prints it), when it is set and neither
-- `--base-url` nor `ENVCLONE_<VENDOR>_URL` gave one; and then the
-- emulator's demo credentials for those the user did not set. Nothing
-- when the variable is unset or the emulator is not installed.
-- @tparam string vendor
-- @tparam table client_opts (`base_url` already set from the flag or the vendor's variable, if any)
-- @tparam table secrets masked in what is printed
-- @treturn boolean whether the emulator's URL was used
function credentials.emulator_defaults(vendor, client_opts, secrets)
  local url = names.getenv("ENVCLONE_EMULATOR_URL")
  if url == nil or client_opts.base_url ~= nil then return false end
  if emulator_tables == nil then emulator_tables = load_emulator_tables() or false end
  local emu = emulator_tables
  if not emu or not emu.prefixes[vendor] then return false end
  url = url:gsub("/+$", "")
  client_opts.base_url = url .. emu.prefixes[vendor]
  local connect = emu.prefixes[vendor .. "_connect"]
  if connect then client_opts.connect_base_url = url .. connect end
  -- the emulator's own settings (its Kontent subscription) unless given
  for option in pairs(names.setting_env[vendor] or {}) do
    local seed = emu.seed and emu.seed[vendor]
    if client_opts[option] == nil and seed and seed[option] then client_opts[option] = seed[option] end
  end
  local any = false
  for option in pairs(names.credential_env[vendor]) do any = any or client_opts[option] ~= nil end
  if not any then
    for option, v in pairs(emu.credentials[vendor] or {}) do
      if names.credential_env[vendor][option] then
        client_opts[option] = v
        secrets[#secrets + 1] = v
      end
    end
  end
  return true
end

-- Whether `url` names this machine: localhost, 127.0.0.0/8 or [::1].
local function loopback(url)
  local host = type(url) == "string" and url:match("^%a[%w+.-]*://([^/?#]+)")
  if not host then return false end
  host = host:gsub("^.*@", "")
  if host:match("^%[::1%]") then return true end
  host = host:gsub(":%d*$", ""):lower()
  return host == "localhost" or host:match("^127%.%d+%.%d+%.%d+$") ~= nil
end

--- Refuses to send the emulator's demo credentials (`emu-...` values) to a
-- host that is not this machine: a tour's exported key must never reach a
-- real vendor. Returns the line to print, or nil when all is well.
-- @tparam string vendor
-- @tparam table client_opts
-- @treturn ?string
function credentials.demo_refusal(vendor, client_opts)
  for option, var in pairs(names.credential_env[vendor]) do
    local v = client_opts[option]
    if type(v) == "string" and (v:match("^emu%-") or v:match("=emu%-")) then
      for _, key in ipairs{ "base_url", "connect_base_url" } do
        if key == "base_url" or client_opts[key] ~= nil then
          local url = client_opts[key]
          if not loopback(url) then
            return "envclone: " .. var .. " holds the emulator's demo credential; refusing to send it to "
              .. (url or ("the real " .. vendor .. " API")) .. " (set ENVCLONE_EMULATOR_URL or --base-url to the "
              .. "emulator, or a real credential)"
          end
        end
      end
    end
  end
  return nil
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
    timeout = "--timeout", rate_limit_store = "--rate-limit-store" }
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
  if not option then option, rest = msg:match("^envclone[%.%w_]*: ([%w_]+):? (.*)$") end
  if option and sources[option] then return "envclone: " .. sources[option] .. ": " .. rest end
  return (msg:gsub("^envclone[%.%w_]*: ", "envclone: "))
end

return credentials
