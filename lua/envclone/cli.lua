--- The `envclone` command line.
--
-- One operation per invocation, named in kebab-case after the library's
-- method, with one flag per field of the operation table (so the command
-- line cannot drift from the library):
--
--     KONTENT_API_KEY=... envclone kontent clone-environment \
--         --environment-id 8d20758c-d74c-4f59-ae04-ee928c0816b7 --name Develop --wait
--
-- The older `field=value` arguments and snake_case operation names keep
-- working. Credentials come from the environment or from `--credentials FILE`
-- (mode 0600), never from argv, which other users can read in the process
-- list. Output is JSON when stdout is not a terminal (or with `--output json`),
-- a short summary on a terminal. Exit statuses: see `cli.exit_codes`.
-- @module envclone.cli

-- The library (and its C core) is loaded by `load_library`, not here:
-- `envclone emulator` needs neither, and runs under lua5.4 whichever Lua the
-- core was built for.
local envclone, runtime, core

local cli = {}

--- Exit statuses, one per kind of failure (also printed by `envclone --help`).
-- @table exit_codes
-- @field ok 0: success
-- @field failure 1: anything else (e.g. the emulator could not start)
-- @field usage 2: bad command line, missing credentials or credentials file; nothing was sent
-- @field validation 3: envclone refused the arguments; nothing was sent
-- @field http 4: the vendor answered with an error status
-- @field transport 5: no usable answer (connection, TLS, DNS, malformed answer)
-- @field timeout 6: the call or the `--wait` ran out of time
-- @field state 7: the wait ended in a failed state (Kontent cloning failed)
cli.exit_codes = { ok = 0, failure = 1, usage = 2, validation = 3, http = 4, transport = 5, timeout = 6, state = 7 }
local EXIT = cli.exit_codes

-- error kind -> exit status ("decode": the answer was not the JSON promised)
local exit_for_kind = { validation = EXIT.validation, http = EXIT.http, transport = EXIT.transport,
  decode = EXIT.transport, timeout = EXIT.timeout, state = EXIT.state }

--- Where each vendor's credentials come from: client option -> environment
-- variable (the same names are the keys of a `--credentials` file).
cli.credential_env = {
  versori = { token = "VERSORI_TOKEN", cookie = "VERSORI_COOKIE" },
  qovery = { token = "QOVERY_TOKEN" },
  kontent = { api_key = "KONTENT_API_KEY" },
  droplit = { token = "DROPLIT_TOKEN" },
}

--- The environment variable holding a vendor's base URL (`ENVCLONE_KONTENT_URL`).
-- @tparam string vendor
-- @treturn string
function cli.url_env(vendor)
  return "ENVCLONE_" .. vendor:upper() .. "_URL"
end

-- ---- JSON: every byte of JSON the command line reads or writes goes through
-- these two functions, the C core's exact, locale-free pair: integers as
-- written (no 14-digit rounding), [] stays [] and {} stays {} (decoded arrays
-- carry envclone.array_mt), floats in the shortest form that reads back.

--- Decodes JSON text from the command line; nil, message when it is not JSON.
local function json_decode(text)
  local value, err = core.json_decode(text)
  if value == nil then return nil, tostring(err) end
  return value
end

--- Encodes a result for stdout.
local function json_encode(value)
  return (assert(core.json_encode(value)))
end

-- ---- names: the library's snake_case and camelCase become the shell's kebab-case

--- The command-line name of an operation or field: `clone_environment` ->
-- `clone-environment`, `ecosystemId` -> `ecosystem-id`.
-- @tparam string name
-- @treturn string
function cli.kebab(name)
  return (name:gsub("(%l)(%u)", "%1-%2"):gsub("_", "-"):lower())
end

local vendors, vendor_ops = {}, {}

local function load_library()
  if envclone then return end
  envclone, runtime, core = require("envclone"), require("envclone.runtime"), require("envclone.core")
  for _, op in ipairs(envclone.operations) do
    if not vendor_ops[op.vendor] then
      vendors[#vendors + 1] = op.vendor
      vendor_ops[op.vendor] = {}
    end
    table.insert(vendor_ops[op.vendor], op)
  end
end

local function find_op(vendor, name)
  for _, op in ipairs(vendor_ops[vendor] or {}) do
    if op.name == name or cli.kebab(op.name) == name then return op end
  end
end

-- The vendor page's one-line description of an operation, when the core
-- exposes it (`summary`; `description` in older tables).
local function summary_of(op)
  return op.summary or op.description
end

-- The ways an operation authenticates: { {credential = option, scheme = text}, ... }
-- (`auth` in the table; a single `credential` in older tables).
local function auth_ways(op)
  if type(op.auth) == "table" and op.auth[1] then return op.auth end
  return op.credential and { { credential = op.credential } } or {}
end

-- "KONTENT_API_KEY" or "VERSORI_TOKEN or VERSORI_COOKIE", with the schemes when `schemes`.
local function credential_words(op, schemes)
  local words = {}
  for _, way in ipairs(auth_ways(op)) do
    local var = cli.credential_env[op.vendor][way.credential] or way.credential
    words[#words + 1] = var .. (schemes and way.scheme and " (" .. way.scheme .. ")" or "")
  end
  return table.concat(words, " or ")
end

local function supports_wait(op)
  return envclone.waiters[op.vendor .. "." .. op.name] ~= nil
end

-- ---- options shared by every operation

local OPTIONS = {
  { "--output", "FORMAT", "json or text (default: text on a terminal, json otherwise)" },
  { "--wait", nil, "wait until the operation is done (operations with a waiter only)", wait = true },
  { "--wait-timeout", "SECONDS", "give up waiting after this long (default 600)", wait = true },
  { "--poll-interval", "SECONDS", "first delay between polls while waiting (default 2)", wait = true },
  { "--base-url", "URL", "API base URL (default: the vendor's, or $ENVCLONE_<VENDOR>_URL)" },
  { "--timeout", "SECONDS", "per attempt (default 30)" },
  { "--no-retry", nil, "one attempt only" },
  { "--credentials", "FILE", "read credentials from FILE (NAME=value lines; must be mode 0600)" },
  { "--help", nil, "this help (also -h)" },
}
local option_by_flag = {}
for _, o in ipairs(OPTIONS) do option_by_flag[o[1]] = o end

local EXIT_HELP = [[
Exit status: 0 success, 1 other failure, 2 usage (bad command line or
credentials; nothing sent), 3 validation (nothing sent), 4 the vendor
answered with an HTTP error, 5 transport (no usable answer), 6 timeout,
7 the wait ended in a failed state.
]]

local function credential_names()
  local names = {}
  for _, vendor in ipairs(vendors) do
    for _, option in ipairs({ "token", "cookie", "api_key" }) do
      local var = cli.credential_env[vendor][option]
      if var then names[#names + 1] = var end
    end
  end
  return table.concat(names, ", ")
end

local function write_options(out, op)
  out:write("Options:\n")
  for _, o in ipairs(OPTIONS) do
    if not o.wait or not op or supports_wait(op) then
      out:write(string.format("  %-26s %s\n", o[1] .. (o[2] and " " .. o[2] or ""), o[3]))
    end
  end
end

-- ---- help

-- Wraps `text` at `width` columns; lines start with `indent`, the first with
-- `first` when given (a hanging indent).
local function wrap(text, indent, width, first)
  local lines, line = {}, first or indent
  indent = first and (" "):rep(#first) or indent
  for word in text:gmatch("%S+") do
    if #line > #indent and #line + 1 + #word > width then
      lines[#lines + 1] = line
      line = indent .. word
    else
      line = (#line > #indent) and (line .. " " .. word) or (line .. word)
    end
  end
  if #line > #indent then lines[#lines + 1] = line end
  return table.concat(lines, "\n") .. "\n"
end

local function usage_top(out)
  out:write("usage: envclone VENDOR OPERATION [--FIELD VALUE ...] [options]\n",
    "       envclone VENDOR --help           the vendor's operations\n",
    "       envclone VENDOR OPERATION --help the operation's fields\n",
    "       envclone list                    every operation on one line\n",
    "       envclone batch FILE [--max-in-flight N]  a JSON array of calls run together (see --help)\n",
    "       envclone emulator [--port N] [--faults PLAN]  the local emulator (see --help)\n\n",
    "Vendors and operations:\n")
  for _, vendor in ipairs(vendors) do
    local names = {}
    for _, op in ipairs(vendor_ops[vendor]) do names[#names + 1] = cli.kebab(op.name) end
    out:write(wrap(table.concat(names, ", "), "", 78, string.format("  %-8s ", vendor)))
  end
  out:write("\n")
  write_options(out, nil)
  out:write("\n", wrap("Credentials come from the environment (" .. credential_names()
    .. ") or from --credentials FILE; never from the command line.", "", 78), "\n", EXIT_HELP)
end

local function usage_vendor(out, vendor)
  out:write("usage: envclone ", vendor, " OPERATION [--FIELD VALUE ...] [options]\n\n", "Operations:\n")
  for _, op in ipairs(vendor_ops[vendor]) do
    out:write(string.format("  %-31s %-6s %s\n", cli.kebab(op.name), op.method, op.path))
    if summary_of(op) then out:write(wrap(summary_of(op), "      ", 78)) end
  end
  local vars = {}
  for option, var in pairs(cli.credential_env[vendor]) do vars[#vars + 1] = var .. " (" .. option .. ")" end
  table.sort(vars)
  out:write("\nCredentials: ", table.concat(vars, ", "), ".\n",
    "`envclone ", vendor, " OPERATION --help` lists an operation's fields.\n")
end

local metavars = { ["array of strings"] = "LIST", ["table (object)"] = "JSON" }

local function metavar(f)
  if f.type == "boolean" then return nil end
  if metavars[f.type] then return metavars[f.type] end
  local fmt = f.format or ""
  if fmt:find("UUID") then return "UUID" end
  if fmt:find("ULID") then return "ULID" end
  return "TEXT"
end

-- The facts the validator applies to a field, in words.
local function field_facts(f)
  local facts = { f.members and "JSON object with the members below" or f.type == "table (object)"
    and "JSON object" or f.type }
  if f["in"] == "path" then facts[#facts + 1] = "in the path"
  elseif f["in"] == "header" then facts[#facts + 1] = "sent as the " .. (f.wire or f.name) .. " header" end
  if f.format then
    facts[#facts + 1] = (f.type == "array of strings" and "each " or "") .. f.format
  end
  if f.min_len and f.max_len and not f.format then
    facts[#facts + 1] = string.format("%d-%d characters", f.min_len, f.max_len)
  end
  if f.charset then facts[#facts + 1] = "only " .. f.charset end
  if f.max_items then facts[#facts + 1] = "at most " .. f.max_items .. " items, comma-separated or a JSON array" end
  if f.max_depth then facts[#facts + 1] = "nested at most " .. f.max_depth .. " deep" end
  if f.reserved then facts[#facts + 1] = "not " .. table.concat(f.reserved, " or ") end
  return table.concat(facts, "; ")
end

local function write_field(out, f, prefix, required_mark)
  local flag = "--" .. prefix .. cli.kebab(f.name)
  local mv = metavar(f)
  local head = "  " .. flag .. (mv and " " .. mv or "") .. (f.required and required_mark or "")
  out:write(head, "\n", wrap(field_facts(f), "      ", 78))
  if f.description then out:write(wrap(f.description, "      ", 78)) end
  for _, m in ipairs(f.members or {}) do
    write_field(out, m, prefix .. cli.kebab(f.name) .. ".", "")
  end
end

local function usage_op(out, op)
  local line = { "usage: envclone", op.vendor, cli.kebab(op.name) }
  for _, f in ipairs(op.fields) do
    if f.required then
      -- a required boolean is a flag pair: --enable-webhooks | --no-enable-webhooks
      local mv = metavar(f)
      line[#line + 1] = mv and ("--" .. cli.kebab(f.name) .. " " .. mv)
        or ("--[no-]" .. cli.kebab(f.name))
    end
  end
  line[#line + 1] = "[options]"
  out:write(table.concat(line, " "), "\n\n")
  if summary_of(op) then out:write(wrap(summary_of(op), "", 78), "\n") end
  out:write(op.method, " ", op.path, "\n")
  if op.page then out:write("Vendor page: ", op.page, "\n") end
  out:write("\n")
  out:write("Fields (the vendor's names; * required):\n")
  for _, f in ipairs(op.fields) do write_field(out, f, "", " *") end
  out:write("  Booleans: --FLAG, --no-FLAG or --FLAG=true|false. The library's FIELD=VALUE form also works.\n\n")
  write_options(out, op)
  out:write("\n", wrap("Credential: " .. credential_words(op, true) .. ", from the environment or --credentials FILE.",
    "", 78), "\n", EXIT_HELP)
end

local function list(out)
  local short_type = { ["array of strings"] = "string[]", ["table (object)"] = "object" }
  for _, op in ipairs(envclone.operations) do
    local fields = {}
    for _, f in ipairs(op.fields) do
      fields[#fields + 1] = f.name .. (f.required and "*" or "") .. ":" .. (short_type[f.type] or f.type)
    end
    out:write(string.format("%-8s %-31s %-6s %s\n", op.vendor, cli.kebab(op.name), op.method,
      table.concat(fields, " ")))
  end
  out:write("(* required)\n")
end

-- ---- arguments

-- A usage error: raised inside the parser, caught by main.
local function usage_error(msg, hint)
  error({ usage = msg, hint = hint }, 0)
end

-- Turns the text `value` into the Lua value `field` wants.
local function convert(field, value, shown)
  if field.type == "boolean" then
    if value == "true" then return true elseif value == "false" then return false end
    usage_error(shown .. " must be true or false")
  elseif field.type == "array of strings" then
    if value:match("^%s*%[") then
      local t, err = json_decode(value)
      if type(t) ~= "table" then usage_error(shown .. ": not a JSON array: " .. tostring(err or "")) end
      return envclone.array(t)
    end
    local items = {}
    for item in value:gmatch("[^,]+") do items[#items + 1] = item end
    return envclone.array(items)
  elseif field.type == "table (object)" then
    local t, err = json_decode(value)
    if type(t) ~= "table" then
      usage_error(shown .. " must be a JSON object: " .. tostring(err or "not an object"))
    end
    return t
  end
  return value
end

-- flag name (without "--") -> { field = f, parent = object field or nil }
local function flag_table(op)
  local flags = {}
  for _, f in ipairs(op.fields) do
    flags[cli.kebab(f.name)] = { field = f }
    for _, m in ipairs(f.members or {}) do
      flags[cli.kebab(f.name) .. "." .. cli.kebab(m.name)] = { field = m, parent = f }
    end
  end
  return flags
end

local function number_option(flag, v)
  local n = tonumber(v)
  if not n or n <= 0 or n ~= n or n == math.huge then
    usage_error(flag .. " must be a positive number of seconds, got '" .. v .. "'")
  end
  return n
end

-- Parses argv into { vendor, op, args, opts }; raises usage errors.
local function parse(argv)
  local p = { args = {}, opts = {} }
  local flags
  local hint
  local i = 1
  local function value_of(flag, inline)
    if inline then return inline end
    local v = argv[i + 1]
    if v == nil then usage_error(flag .. " needs a value", hint) end
    i = i + 1
    return v
  end
  while i <= #argv do
    local a = argv[i]
    local flag, inline = a:match("^(%-%-[^=]+)=(.*)$")
    flag = flag or a
    local o = option_by_flag[flag]
    if a == "-h" or flag == "--help" then
      p.opts.help = true
    elseif o then
      local key = flag:sub(3):gsub("-", "_")
      if o[2] == nil then
        if inline then usage_error(flag .. " takes no value", hint) end
        p.opts[key] = true
      elseif key == "wait_timeout" or key == "poll_interval" or key == "timeout" then
        p.opts[key] = number_option(flag, value_of(flag, inline))
      else
        p.opts[key] = value_of(flag, inline)
      end
    elseif a:sub(1, 2) == "--" then
      if not p.op then usage_error("unknown option " .. flag, hint) end
      local name = flag:sub(3)
      local negated = name:match("^no%-(.+)$")
      local entry = flags[name] or (negated and flags[negated])
      if not entry then
        usage_error("unknown option " .. flag .. " for " .. p.vendor .. " " .. cli.kebab(p.op.name), hint)
      end
      local f = entry.field
      local v
      if f.type == "boolean" then
        if flags[name] then v = convert(f, inline or "true", flag) else
          if inline then usage_error(flag .. " takes no value", hint) end
          v = false
        end
      elseif not flags[name] then
        usage_error("unknown option " .. flag, hint)
      else
        v = convert(f, value_of(flag, inline), flag)
      end
      if entry.parent then
        local obj = p.args[entry.parent.name]
        if obj == nil then obj = {}; p.args[entry.parent.name] = obj end
        obj[f.name] = v
      else
        p.args[f.name] = v
      end
    elseif not p.vendor then
      if not vendor_ops[a] then
        usage_error("unknown vendor '" .. a .. "' (one of " .. table.concat(vendors, ", ") .. ")")
      end
      p.vendor = a
      hint = "try 'envclone " .. a .. " --help'"
    elseif not p.op then
      p.op = find_op(p.vendor, a)
      if not p.op then usage_error("unknown operation '" .. p.vendor .. " " .. a .. "'", hint) end
      flags = flag_table(p.op)
      hint = "try 'envclone " .. p.vendor .. " " .. cli.kebab(p.op.name) .. " --help'"
    else
      -- the library's form: field=value with the vendor's own field name
      local name, value = a:match("^([%w_]+)=(.*)$")
      if not name then usage_error("expected --FIELD VALUE, FIELD=VALUE or an option, got '" .. a .. "'", hint) end
      local f
      for _, x in ipairs(p.op.fields) do if x.name == name then f = x end end
      -- an unknown name is passed on: the library names it in its validation error
      p.args[name] = f and convert(f, value, "field '" .. name .. "'") or value
    end
    i = i + 1
  end
  if p.opts.output and p.opts.output ~= "json" and p.opts.output ~= "text" then
    usage_error("--output must be json or text", hint)
  end
  if p.op and not p.opts.help and (p.opts.wait_timeout or p.opts.poll_interval or p.opts.wait) then
    if not supports_wait(p.op) then
      usage_error(p.vendor .. " " .. cli.kebab(p.op.name) .. " has nothing to wait for", hint)
    end
    if not p.opts.wait then usage_error("--wait-timeout and --poll-interval go with --wait", hint) end
  end
  p.hint = hint
  return p
end

-- ---- credentials

-- Reads NAME=value lines (blank lines and # comments allowed; one pair of
-- matching surrounding quotes, "..." or '...', is dropped as in a .env file
-- or a shell) from a file only its owner can read or write. Messages never
-- include a value.
local function read_credentials(path)
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
  for _, vars in pairs(cli.credential_env) do
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
      values[name] = value:match('^"(.*)"$') or value:match("^'(.*)'$") or value
    end
  end
  f:close()
  return values
end

-- Where each client option came from, for error messages: option -> the
-- name a user knows (an environment variable, "NAME in FILE", a flag).
local function option_sources(vendor, opts, file_creds, credentials_path)
  local sources = { base_url = opts.base_url and "--base-url" or cli.url_env(vendor),
    timeout = "--timeout" }
  for option, var in pairs(cli.credential_env[vendor]) do
    sources[option] = (file_creds or {})[var] and (var .. " in " .. credentials_path) or var
  end
  return sources
end

-- The client constructor's error as one line naming the option's source:
-- "envclone: KONTENT_API_KEY: must be 8 to 8192 characters long". The
-- library's message carries the caller's source position, which means
-- nothing to a shell user, and the option's library name.
local function option_error(err, sources)
  local msg = tostring(err):gsub("^[^\n]-:%d+: ", "")
  local option, rest = msg:match("^envclone[%.%w_]*: option '([%w_]+)' (.*)$")
  if not option then option, rest = msg:match("^envclone[%.%w_]*: ([%w_]+) (.*)$") end
  if option and sources[option] then return "envclone: " .. sources[option] .. ": " .. rest end
  return (msg:gsub("^envclone[%.%w_]*: ", "envclone: "))
end

-- ---- output

local function isatty(fd)
  -- the shell inherits our descriptors, so `test -t` answers for this process
  local ok = os.execute("test -t " .. fd)
  return ok == true or ok == 0
end

-- A credential we sent, echoed back in a result (Kontent's clone answer
-- holds the API key), prints as *** in any form: the C core's one masking
-- routine (src/ec_mask.c) does the matching, for keys and values.
local function scrub(value, secrets, depth)
  depth = depth or 0
  if type(value) == "string" then
    return core.mask(value, secrets)
  elseif type(value) == "table" and depth < 64 then
    local copy = {}
    for k, v in pairs(value) do copy[scrub(k, secrets, depth + 1)] = scrub(v, secrets, depth + 1) end
    return setmetatable(copy, getmetatable(value))
  end
  return value
end

-- Result fields a terminal shows as *** (new environments' keys and tokens);
-- --output json prints them.
local function secret_name(k)
  local l = tostring(k):lower()
  return l:find("key$") or l:find("token") or l:find("secret") or l:find("cookie") or l:find("password")
end

local function summary(out, op, res, state, waited)
  local head = op.vendor .. " " .. cli.kebab(op.name) .. ": ok"
  if state and type(state) == "table" and state.cloning_state then
    head = head .. string.format(", cloning %s after %.0f s", tostring(state.cloning_state), waited or 0)
  end
  out:write(head, "\n")
  if type(res) ~= "table" then return end
  local rows = {}
  for k, v in pairs(res) do rows[#rows + 1] = { tostring(k), v } end
  table.sort(rows, function(a, b) return a[1] < b[1] end)
  local hidden = false
  for _, row in ipairs(rows) do
    local k, v = row[1], row[2]
    local shown
    if v == envclone.null then shown = "-"
    elseif secret_name(k) and v ~= "***" then shown = "***"; hidden = true
    elseif type(v) == "table" then shown = json_encode(v)
    else shown = tostring(v) end
    out:write(string.format("  %-24s %s\n", k, shown))
  end
  if hidden then out:write("  (keys hidden on a terminal: --output json prints them)\n") end
end

-- The live line while waiting: state, elapsed time, next poll.
local function progress_writer(errout)
  return function(state, elapsed, poll, err, next_delay)
    local what = type(state) == "table" and state.cloning_state or (err and "poll failed" or "starting")
    local line = string.format("waiting: cloning %s, %.1fs elapsed, poll %d", tostring(what), elapsed, poll)
    if next_delay then line = line .. string.format(", next poll in %.1fs", next_delay) end
    errout:write("\r\27[K", line)
    errout:flush()
  end
end


-- ---- envclone batch FILE: a JSON array of calls run as one batch

local BATCH_USAGE = [[
usage: envclone batch FILE [--max-in-flight N] [--timeout SECONDS] [--no-retry] [--credentials FILE]

Runs the calls in FILE (a JSON array; "-" reads stdin) together, as one batch
(envclone.batch): at most N requests on the wire at once (default 16), inside
each vendor's rate limits. Each element is
  { "vendor": "kontent", "operation": "clone-environment", "args": { ... } }
(operation in kebab-case or the library's snake_case; args as the library takes
them, e.g. "wait": true after a Kontent clone). Prints a JSON array of results
in the same order on stdout: {"ok": true, "result": ..., "extra": ...} or
{"ok": false, "error": {"kind": ..., "message": ..., ...}}; a progress line on
a terminal. A file that is not a JSON array of such calls, or names an unknown
vendor or operation, is refused before anything is sent. Base URLs come from
$ENVCLONE_<VENDOR>_URL, credentials as for a single call.

Exit status: 0 when every call succeeded; otherwise the status of the first
failed call's kind (as for a single call); 2 usage (nothing sent).
]]

local function parse_batch(argv)
  local p = { opts = {} }
  local i = 2
  while i <= #argv do
    local a = argv[i]
    local flag, inline = a:match("^(%-%-[^=]+)=(.*)$")
    flag = flag or a
    local function value()
      if inline then return inline end
      i = i + 1
      if argv[i] == nil then usage_error(flag .. " needs a value", "try 'envclone batch --help'") end
      return argv[i]
    end
    if flag == "--help" or a == "-h" then
      p.opts.help = true
    elseif flag == "--max-in-flight" then
      local n = tonumber(value())
      if not n or n < 1 or n ~= math.floor(n) or n > 100000 then
        usage_error("--max-in-flight needs a whole number from 1 to 100000")
      end
      p.opts.max_in_flight = n
    elseif flag == "--timeout" then
      p.opts.timeout = number_option(flag, value())
    elseif flag == "--credentials" then
      p.opts.credentials = value()
    elseif flag == "--no-retry" then
      p.opts.no_retry = true
    elseif a:sub(1, 2) == "--" then
      usage_error("unknown option " .. flag .. " for batch", "try 'envclone batch --help'")
    elseif p.file then
      usage_error("batch takes one FILE", "try 'envclone batch --help'")
    else
      p.file = a
    end
    i = i + 1
  end
  if not p.file and not p.opts.help then usage_error("batch needs a FILE", "try 'envclone batch --help'") end
  return p
end

-- Reads and checks the batch file: every call's vendor and operation are
-- known and its args are an object, or a usage error names the first that is not.
local function load_batch(path)
  local text
  if path == "-" then
    text = io.stdin:read("*a")
  else
    local f = io.open(path, "rb")
    if not f then usage_error("batch: cannot read " .. path) end
    text = f:read("*a")
    f:close()
  end
  local items, err = json_decode(text or "")
  if items == nil then usage_error("batch: " .. path .. " is not valid JSON: " .. tostring(err)) end
  -- the decoder marks every array it reads, so `{}` is told apart from `[]`
  if getmetatable(items) ~= core.array_mt then
    usage_error("batch: " .. path .. " must hold a JSON array of calls")
  end
  local calls = {}
  for i, item in ipairs(items) do
    local where = "batch: call " .. i
    if type(item) ~= "table" then usage_error(where .. " is not an object") end
    for k in pairs(item) do
      if k ~= "vendor" and k ~= "operation" and k ~= "args" then
        usage_error(where .. ": unknown member '" .. tostring(k) .. "' (vendor, operation, args)")
      end
    end
    if type(item.vendor) ~= "string" or not vendor_ops[item.vendor] then
      usage_error(where .. ": unknown vendor '" .. tostring(item.vendor) .. "' (one of "
        .. table.concat(vendors, ", ") .. ")")
    end
    local op = type(item.operation) == "string" and find_op(item.vendor, item.operation)
    if not op then
      usage_error(where .. ": unknown operation '" .. item.vendor .. " " .. tostring(item.operation) .. "'")
    end
    local args = item.args
    if args == nil or args == envclone.null then args = {} end
    if type(args) ~= "table" or (next(args) ~= nil and args[1] ~= nil) then
      usage_error(where .. ": args must be a JSON object")
    end
    calls[i] = { op = op, args = args }
  end
  return calls
end

-- An error object as plain JSON-able fields (secrets scrubbed by the caller).
local function plain_error(err)
  if type(err) ~= "table" then return { kind = "task", message = tostring(err) } end
  local t = {}
  for k, v in pairs(err) do
    if type(v) ~= "function" and type(v) ~= "userdata" or v == envclone.null then t[k] = v end
  end
  t.message = t.message or tostring(err)
  return t
end

local function batch_progress(errout, started)
  local failed = 0
  return function(done, total, _, result)
    if not result.ok then failed = failed + 1 end
    errout:write("\r\27[K", string.format("batch: %d/%d done, %d failed, %.1fs elapsed",
      done, total, failed, runtime.now() - started))
    errout:flush()
  end
end

local function run_batch(argv, out, errout, tty)
  local ok, p = pcall(function()
    local parsed = parse_batch(argv)
    if parsed.opts.help then return parsed end
    parsed.calls = load_batch(parsed.file)
    if parsed.opts.credentials then parsed.creds = read_credentials(parsed.opts.credentials) end
    return parsed
  end)
  if not ok then
    if type(p) ~= "table" or not p.usage then error(p, 0) end
    errout:write("envclone: ", p.usage, p.hint and (" (" .. p.hint .. ")") or "", "\n")
    return EXIT.usage
  end
  if p.opts.help then
    out:write(BATCH_USAGE)
    return EXIT.ok
  end
  tty = tty or { out = out == io.stdout and isatty(1), err = errout == io.stderr and isatty(2) }
  -- one client per vendor named in the file; every credential checked before anything is sent
  local clients, secrets = {}, {}
  for i, call in ipairs(p.calls) do
    local op = call.op
    local vendor = op.vendor
    if not clients[vendor] then
      local opts = { base_url = os.getenv(cli.url_env(vendor)), timeout = p.opts.timeout }
      local sources = option_sources(vendor, {}, p.creds, p.opts.credentials)
      if p.opts.no_retry then opts.retry = false end
      for option, var in pairs(cli.credential_env[vendor]) do
        local v = (p.creds or {})[var] or os.getenv(var)
        if v == "" then v = nil end
        opts[option] = v
        if v then secrets[#secrets + 1] = v end
      end
      local cok, client = pcall(envclone[vendor], opts)
      if not cok then
        errout:write(option_error(client, sources), "\n")
        return EXIT.usage
      end
      clients[vendor] = client
    end
    if op.credential then
      local var = cli.credential_env[vendor][op.credential]
      local v = (p.creds or {})[var] or os.getenv(var)
      if v == nil or v == "" then
        errout:write("envclone: batch: call ", i, ": ", vendor, " ", cli.kebab(op.name), " needs ", var,
          " in the environment or in --credentials FILE\n")
        return EXIT.usage
      end
    end
  end
  local started = runtime.now()
  local b = envclone.batch{ max_in_flight = p.opts.max_in_flight,
    on_progress = tty.err and batch_progress(errout, started) or nil }
  for _, call in ipairs(p.calls) do b:add(clients[call.op.vendor], call.op.name, call.args) end
  local results = b:run()
  for _, c in pairs(clients) do c:close() end
  if tty.err then errout:write("\r\27[K") end
  local printed, status = {}, EXIT.ok
  for i, r in ipairs(results) do
    if r.ok then
      printed[i] = { ok = true, result = scrub(r.value, secrets), extra = scrub(r.extra, secrets) }
    else
      printed[i] = { ok = false, error = scrub(plain_error(r.err), secrets) }
      if status == EXIT.ok then status = exit_for_kind[r.err.kind] or EXIT.failure end
    end
  end
  out:write(#printed == 0 and "[]" or json_encode(printed), "\n")
  if tty.err then
    errout:write(string.format("batch: %d calls, %d succeeded, %d failed in %.1fs\n", #printed,
      results.succeeded, results.failed, runtime.now() - started))
  end
  return status
end

-- ---- main

local function run_emulator(argv, errout)
  local rest = {}
  for i = 2, #argv do rest[#rest + 1] = argv[i] end
  local ok, emulator = pcall(require, "envclone.emulator")
  if not ok then
    errout:write("envclone: the emulator is not installed: ", tostring(emulator), "\n")
    return EXIT.failure
  end
  return emulator.main(rest, { prog = "envclone emulator", stderr = errout })
end

--- Runs the command line.
-- @tparam table argv the arguments (`arg`)
-- @param[opt=io.stdout] out file for results and help
-- @param[opt=io.stderr] errout file for errors and the progress line
-- @tparam[opt] table tty `{ out = boolean, err = boolean }`: whether `out`
--   and `errout` are terminals (default: asks the system about stdout and stderr)
-- @treturn integer exit status (see `exit_codes`)
function cli.main(argv, out, errout, tty)
  out, errout = out or io.stdout, errout or io.stderr
  if argv[1] == "emulator" then return run_emulator(argv, errout) end
  load_library()
  if argv[1] == "batch" then return run_batch(argv, out, errout, tty) end
  if argv[1] == "list" then
    list(out)
    return EXIT.ok
  end
  if argv[1] == "help" then argv = { "--help" } end
  local ok, p = pcall(parse, argv)
  if not ok then
    if type(p) ~= "table" or not p.usage then error(p, 0) end
    errout:write("envclone: ", p.usage, p.hint and (" (" .. p.hint .. ")") or "", "\n")
    return EXIT.usage
  end
  if p.opts.help or not p.vendor then
    local to = p.opts.help and out or errout
    if p.op then usage_op(to, p.op) elseif p.vendor then usage_vendor(to, p.vendor) else usage_top(to) end
    return p.opts.help and EXIT.ok or EXIT.usage
  end
  if not p.op then
    usage_vendor(errout, p.vendor)
    return EXIT.usage
  end
  local op = p.op
  tty = tty or { out = out == io.stdout and isatty(1), err = errout == io.stderr and isatty(2) }

  local file_creds = {}
  if p.opts.credentials then
    local cok, values = pcall(read_credentials, p.opts.credentials)
    if not cok then
      if type(values) ~= "table" then error(values, 0) end
      errout:write("envclone: ", values.usage, "\n")
      return EXIT.usage
    end
    file_creds = values
  end
  local client_opts = { base_url = p.opts.base_url or os.getenv(cli.url_env(op.vendor)),
    timeout = p.opts.timeout }
  if p.opts.no_retry then client_opts.retry = false end
  local secrets = {}
  for option, var in pairs(cli.credential_env[op.vendor]) do
    local v = file_creds[var] or os.getenv(var)
    if v == "" then v = nil end
    client_opts[option] = v
    if v then secrets[#secrets + 1] = v end
  end
  local ways, has_one = auth_ways(op), false
  for _, way in ipairs(ways) do has_one = has_one or client_opts[way.credential] ~= nil end
  if #ways > 0 and not has_one then
    errout:write("envclone: ", op.vendor, " ", cli.kebab(op.name), " needs ", credential_words(op),
      " in the environment or in --credentials FILE\n")
    return EXIT.usage
  end
  local cok, client = pcall(envclone[op.vendor], client_opts)
  if not cok then
    errout:write(option_error(client, option_sources(op.vendor, p.opts, file_creds, p.opts.credentials)), "\n")
    return EXIT.usage
  end

  local args = p.args
  local started = runtime.now()
  if p.opts.wait then
    args.wait = true
    args.wait_timeout = p.opts.wait_timeout
    args.wait_interval = p.opts.poll_interval
    if tty.err then args.on_progress = progress_writer(errout) end
  end
  local res, extra = client[op.name](client, args)
  client:close()
  if args.on_progress then errout:write("\r\27[K") end
  if res == nil then
    local line = tostring(extra)
    if type(extra) == "table" and type(extra.created) == "table" and extra.created.id then
      line = line .. " (created " .. tostring(extra.created.id) .. ")"
    end
    errout:write(line, "\n")
    return type(extra) == "table" and exit_for_kind[extra.kind] or EXIT.failure
  end
  res = scrub(res, secrets)
  local state = p.opts.wait and scrub(extra, secrets) or nil
  local format = p.opts.output or (tty.out and "text" or "json")
  if format == "text" then
    summary(out, op, res, state, runtime.now() - started)
  else
    out:write(json_encode({ result = res, state = state }), "\n")
  end
  return EXIT.ok
end

return cli
