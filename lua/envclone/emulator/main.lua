--- The emulator's command line: `bin/envclone-emulator` and `envclone emulator`.
-- Parses the options, listens, writes the port file, serves until shutdown.
-- @module envclone.emulator.main

local emulator = require("envclone.emulator")
local util = require("envclone.emulator.util")
local envvars = require("envclone.envvars")

local M = {}

local SETTING_LIST = emulator.settings()
local SETTINGS = {}   -- config key -> setting
for _, s in ipairs(SETTING_LIST) do SETTINGS[s.key] = s end

local function flag_of(key) return (key:gsub("_", "-")) end

-- A boolean setting's default as its flag takes it (on/off).
local function shown_default(s)
  if type(s.default) == "boolean" then return s.default and "on" or "off" end
  return tostring(s.default)
end

--- What the `envclone` command line needs to talk to an emulator at `url`:
-- a list of `NAME=value` lines, each vendor's base URL variable and the demo
-- credentials under the names the CLI reads (`envclone.envvars`).
-- @tparam string url the emulator's root, `http://HOST:PORT`
-- @treturn {string,...}
function M.cli_env(url)
  local lines = {}
  for _, name in ipairs(emulator.vendor_names) do
    lines[#lines + 1] = envvars.url(name) .. "=" .. url .. emulator.prefixes[name]
    local options = {}
    for option in pairs(emulator.credentials[name]) do options[#options + 1] = option end
    table.sort(options)
    for _, option in ipairs(options) do
      lines[#lines + 1] = (envvars.credentials[name][option] or option) .. "=" .. emulator.credentials[name][option]
    end
    for option, var in pairs(envvars.settings[name] or {}) do
      local seed = emulator.seed and emulator.seed[name]
      if seed and seed[option] then lines[#lines + 1] = var .. "=" .. seed[option] end
    end
  end
  return lines
end

local function usage(prog)
  local lines = {
    "usage: " .. prog .. " [--host 127.0.0.1|::1] [--port N|0] [--port-file PATH]",
    "       [--faults PLAN] [--max-lifetime S] [--quiet]",
  }
  lines[#lines + 1] = ""
  lines[#lines + 1] = "Vendor settings (also PUT /_emulator/config):"
  for _, s in ipairs(SETTING_LIST) do
    lines[#lines + 1] = string.format("  --%-28s %s (default %s)", flag_of(s.key) .. " " .. (s.arg or "V"),
      s.help or s.kind, shown_default(s))
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "Serves the endpoints of " .. table.concat(emulator.vendor_names, ", ") .. " that envclone uses:"
  for _, name in ipairs(emulator.vendor_names) do
    local bases = {}
    for base in pairs(emulator.vendors[name].bases) do bases[#bases + 1] = base end
    table.sort(bases)
    for _, base in ipairs(bases) do
      lines[#lines + 1] = string.format("  %-16s http://HOST:PORT%s", base, emulator.prefixes[base])
    end
  end
  lines[#lines + 1] = "The envclone command line reaches each vendor's main base through"
  lines[#lines + 1] = "ENVCLONE_<VENDOR>_URL (the client derives the others), with the demo credentials:"
  for _, line in ipairs(M.cli_env("http://HOST:PORT")) do lines[#lines + 1] = "  export " .. line end
  lines[#lines + 1] = "PLAN: a fault plan as JSON text, or @FILE holding one."
  lines[#lines + 1] = "Control: /_emulator/{stats,requests,state,objects,reset,config,faults,concurrency,shutdown}."
  return table.concat(lines, "\n") .. "\n"
end

--- Parses command-line arguments.
-- @tparam table args the script's `arg` table
-- @treturn[1] table options
-- @treturn[2] nil
-- @treturn[2] string error (or "help")
function M.parse_args(args)
  local opts = { host = "127.0.0.1", port = 0 }
  local takes = {
    host = "host", port = "port", ["port-file"] = "port_file",
    ["max-lifetime"] = "max_lifetime", faults = "faults",
  }
  for _, s in ipairs(SETTING_LIST) do takes[flag_of(s.key)] = s.key end
  local i, n = 1, #args
  while i <= n do
    local a = args[i]
    local name, inline = a:match("^%-%-([%w%-]+)=(.*)$")
    name = name or a:match("^%-%-([%w%-]+)$")
    if a == "-h" or name == "help" then return nil, "help" end
    if name == "quiet" then
      opts.quiet = true
    elseif name and name:match("^no%-") and SETTINGS[name:sub(4):gsub("%-", "_")]
        and SETTINGS[name:sub(4):gsub("%-", "_")].kind == "boolean" then
      opts[(name:sub(4):gsub("%-", "_"))] = false
    elseif name and takes[name] then
      local v = inline
      if v == nil then
        i = i + 1
        v = args[i]
      end
      if v == nil then return nil, "--" .. name .. " needs a value" end
      opts[takes[name]] = v
    else
      return nil, "unknown argument: " .. tostring(a)
    end
    i = i + 1
  end
  for _, k in ipairs{ "port", "max_lifetime" } do
    local v = tonumber(opts[k])
    if opts[k] ~= nil and not v then return nil, "--" .. flag_of(k) .. " must be a number" end
    opts[k] = v
  end
  for _, s in ipairs(SETTING_LIST) do
    local v = opts[s.key]
    if type(v) == "string" then
      if s.kind == "number" then
        v = tonumber(v)
        if not v then return nil, "--" .. flag_of(s.key) .. " must be a number" end
      elseif s.kind == "boolean" then
        local b = ({ on = true, ["true"] = true, ["1"] = true, off = false, ["false"] = false, ["0"] = false })[v]
        if b == nil then return nil, "--" .. flag_of(s.key) .. " must be on or off" end
        v = b
      end
      local checked, err = s.check(v)
      if checked == nil then return nil, "--" .. flag_of(s.key) .. ": " .. err end
      opts[s.key] = checked
    end
  end
  if opts.faults and opts.faults:sub(1, 1) == "@" then
    local f, err = io.open(opts.faults:sub(2), "r")
    if not f then return nil, "--faults: cannot read " .. tostring(err) end
    opts.faults = f:read("a")
    f:close()
  end
  if opts.faults then
    local plan, err = emulator.parse_fault_plan(opts.faults)
    if not plan then return nil, "--faults: invalid fault plan: " .. err end
  end
  return opts
end

local function write_port_file(path, port)
  local tmp = path .. ".tmp" .. util.new_hex(8)
  local f, err = io.open(tmp, "w")
  if not f then return nil, err end
  f:write(tostring(port), "\n")
  f:close()
  local ok, rerr = os.rename(tmp, path)
  if not ok then
    os.remove(tmp)
    return nil, rerr
  end
  return true
end

--- Entry point of `bin/envclone-emulator` (and of `envclone emulator`): parses
-- the arguments, listens, writes the port file, serves until shutdown.
-- @tparam table args the arguments (`arg` of the script, or a list)
-- @tparam[opt] table io_opts `prog` (name in messages, default "envclone-emulator"),
--   `stdout`, `stderr` (files, default io.stdout / io.stderr)
-- @treturn number exit status: 0 done, 1 cannot listen or write the port file, 2 usage
function M.main(args, io_opts)
  io_opts = io_opts or {}
  local prog = io_opts.prog or "envclone-emulator"
  local stdout, stderr = io_opts.stdout or io.stdout, io_opts.stderr or io.stderr
  local opts, err = M.parse_args(args or {})
  if not opts then
    if err == "help" then
      stdout:write(usage(prog))
      return 0
    end
    stderr:write(prog, ": ", err, "\n", usage(prog))
    return 2
  end
  opts.clock = nil
  local emu, nerr = emulator.new(opts)
  if not emu then
    stderr:write(prog, ": ", nerr, "\n")
    return 2
  end
  local port, lerr = emu:listen(opts.host, opts.port)
  if not port then
    stderr:write(prog, ": ", lerr, "\n")
    return 1
  end
  if opts.port_file then
    local ok, werr = write_port_file(opts.port_file, port)
    if not ok then
      stderr:write(prog, ": cannot write port file: ", tostring(werr), "\n")
      emu:close()
      return 1
    end
  end
  stdout:write("envclone emulator listening on ", emu:url(), "\n")
  if not opts.quiet then
    stdout:write("For the envclone command line:\n")
    for _, line in ipairs(M.cli_env(emu:url())) do stdout:write("  export ", line, "\n") end
  end
  stdout:flush()
  emu:serve(opts.max_lifetime)
  return 0
end

return M
