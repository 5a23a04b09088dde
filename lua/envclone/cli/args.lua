--- Argument parsing: argv into the vendor, the operation, its arguments and
-- the options; bad command lines raise usage errors (envclone.cli.exit).
-- @module envclone.cli.args

local envclone = require("envclone")
local exit = require("envclone.cli.exit")
local json = require("envclone.cli.json")
local names = require("envclone.cli.names")
local ops = require("envclone.cli.ops")

local usage_error = exit.usage_error

local args = {}

--- The options shared by every operation: `{ flag, metavar or nil, help, wait = true }`
-- (`wait`: shown only for operations with a waiter and for waiters;
-- `create_only`: not for waiters; `waiter`: for waiters only; `lookup`:
-- only for creates found by their natural key, see doc/exactly-once.md).
-- @table options
args.options = {
  { "--output", "FORMAT", "json or text (default: text on a terminal, json otherwise)" },
  { "--wait", nil, "wait until the operation is done (operations with a waiter only)", wait = true,
    create_only = true },
  { "--wait-timeout", "SECONDS", "give up waiting after this long (default 600)", wait = true },
  { "--poll-interval", "SECONDS", "first delay between polls while waiting (default 2)", wait = true },
  { "--wait-grace", "SECONDS", "while this young, a 'not found' means 'not visible yet' (default 30)", wait = true },
  { "--max-poll-interval", "SECONDS", "the longest delay between polls (default 30)", waiter = true },
  { "--if-exists", "WHAT", "error (default) or adopt: return the object that already has the key instead of "
    .. "making a second", lookup = true },
  { "--no-reconcile", nil, "no lookup by key: a lost answer stays maybe_applied (one request per create)",
    lookup = true },
  { "--progress", nil, "a line on stderr per poll and per retry (for logs without a terminal)" },
  { "--verbose", nil, "the client's log lines (info and above) on stderr; never a secret" },
  { "--debug", nil, "every log line of the client on stderr; never a secret" },
  { "--base-url", "URL", "API base URL (default: the vendor's, or $ENVCLONE_<VENDOR>_URL)" },
  { "--timeout", "SECONDS", "per attempt (default 30)" },
  { "--no-retry", nil, "one attempt only" },
  { "--rate-limit-store", "URL", "share the vendor's rate limits with other processes through Redis "
    .. "(redis://[user:pass@]host:port/db)" },
  { "--credentials", "FILE", "read credentials from FILE (NAME=value lines; must be mode 0600)" },
  { "--help", nil, "this help (also -h)" },
}
local option_by_flag = {}
for _, o in ipairs(args.options) do option_by_flag[o[1]] = o end

-- Turns the text `value` into the Lua value `field` wants.
local function convert(field, value, shown)
  if field.type == "boolean" then
    if value == "true" then return true elseif value == "false" then return false end
    usage_error(shown .. " must be true or false")
  elseif field.type == "array of strings" then
    if value:match("^%s*%[") then
      local t, err = json.decode(value)
      if type(t) ~= "table" then usage_error(shown .. ": not a JSON array: " .. tostring(err or "")) end
      return envclone.array(t)
    end
    local items = {}
    for item in value:gmatch("[^,]+") do items[#items + 1] = item end
    return envclone.array(items)
  elseif field.type == "table (object)" then
    local t, err = json.decode(value)
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
    flags[names.kebab(f.name)] = { field = f }
    for _, m in ipairs(f.members or {}) do
      flags[names.kebab(f.name) .. "." .. names.kebab(m.name)] = { field = m, parent = f }
    end
  end
  return flags
end

--- A positive number of seconds given to `flag` (raises a usage error otherwise).
-- @tparam string flag
-- @tparam string v
-- @treturn number
function args.number_option(flag, v)
  local n = tonumber(v)
  if not n or n <= 0 or n ~= n or n == math.huge then
    usage_error(flag .. " must be a positive number of seconds, got '" .. v .. "'", nil, flag)
  end
  return n
end
local number_option = args.number_option
local seconds_options = { wait_timeout = true, poll_interval = true, timeout = true, wait_grace = true,
  max_poll_interval = true }

-- Levenshtein distance, ASCII case folded (the library's rule for unknown fields).
local function distance(a, b)
  a, b = a:lower(), b:lower()
  if #a > 64 or #b > 64 then return 99 end
  local row = {}
  for j = 0, #b do row[j] = j end
  for i = 1, #a do
    local prev = row[0]
    row[0] = i
    for j = 1, #b do
      local cur = row[j]
      local sub = prev + (a:byte(i) == b:byte(j) and 0 or 1)
      row[j] = math.min(sub, row[j] + 1, row[j - 1] + 1)
      prev = cur
    end
  end
  return row[#b]
end

-- Raises the usage error for an unknown flag: with "did you mean" when one of
-- `candidates` (flags with "--") is close, else `what` and the hint.
local function unknown_flag(flag, candidates, what, hint)
  local best, best_d = nil, 3 -- suggest only close matches
  for _, c in ipairs(candidates) do
    local d = distance(flag, c)
    if d < best_d or (d == best_d and best and c < best) then best, best_d = c, d end
  end
  if best then usage_error("unknown option '" .. flag .. "'", "did you mean '" .. best .. "'?", flag) end
  usage_error("unknown option '" .. flag .. "'" .. (what or ""), hint, flag)
end

local option_flags = {}
for _, o in ipairs(args.options) do option_flags[#option_flags + 1] = o[1] end

--- A whole number written in decimal digits, from `min` to `max`: "16.0",
-- "1e3", "0x10" are refused (tonumber accepts them, the library does not).
-- Raises a usage error with `hint` otherwise.
-- @tparam string flag
-- @tparam string v
-- @tparam integer min
-- @tparam integer max
-- @tparam string hint
-- @treturn integer
function args.integer_option(flag, v, min, max, hint)
  local n = v:match("^%d+$") and tonumber(v)
  if not n or n < min or n > max then
    usage_error(flag .. " needs a whole number from " .. min .. " to " .. max .. ", got '" .. v .. "'", hint, flag)
  end
  return n
end

--- The bound of every --max-in-flight (a batch's, a set run's).
args.max_in_flight_limit = 100000

--- Parses the arguments of one operation (or of a help request).
-- @tparam table argv the arguments
-- @treturn table `{ vendor =, op = (the row), args = (for the library), opts = (the options), hint =,
--   typed = (field name, "parent.member" for a member -> the flag as typed) }`; raises a usage error
function args.parse(argv)
  local p = { args = {}, opts = {}, typed = {} }
  local flags
  local hint
  local i = 1
  local function value_of(flag, inline)
    if inline then return inline end
    local v = argv[i + 1]
    if v == nil then usage_error(flag .. " needs a value", hint, flag) end
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
        if inline then usage_error(flag .. " takes no value", hint, flag) end
        p.opts[key] = true
      elseif seconds_options[key] then
        p.opts[key] = number_option(flag, value_of(flag, inline))
      else
        p.opts[key] = value_of(flag, inline)
      end
    elseif a:sub(1, 2) == "--" then
      if not p.op then unknown_flag(flag, option_flags, nil, hint) end
      local name = flag:sub(3)
      local negated = name:match("^no%-(.+)$")
      local entry = flags[name] or (negated and flags[negated])
      if not entry then
        local candidates = {}
        for k in pairs(flags) do candidates[#candidates + 1] = "--" .. k end
        table.sort(candidates)
        for _, c in ipairs(option_flags) do candidates[#candidates + 1] = c end
        unknown_flag(flag, candidates, " for " .. p.vendor .. " " .. names.kebab(p.op.name), hint)
      end
      local f = entry.field
      local v
      if f.type == "boolean" then
        if flags[name] then v = convert(f, inline or "true", flag) else
          if inline then usage_error(flag .. " takes no value", hint) end
          v = false
        end
      elseif not flags[name] then
        usage_error("unknown option '" .. flag .. "'", hint)
      else
        v = convert(f, value_of(flag, inline), flag)
      end
      if entry.parent then
        local obj = p.args[entry.parent.name]
        if obj == nil then obj = {}; p.args[entry.parent.name] = obj end
        obj[f.name] = v
        p.typed[entry.parent.name .. "." .. f.name] = flag
      else
        p.args[f.name] = v
        p.typed[f.name] = flag
      end
    elseif not p.vendor then
      if not ops.by_vendor[a] then
        usage_error("unknown vendor '" .. a .. "' (one of " .. table.concat(ops.vendors, ", ") .. ")")
      end
      p.vendor = a
      hint = "try 'envclone " .. a .. " --help'"
    elseif not p.op then
      p.op = ops.find(p.vendor, a)
      if not p.op then usage_error("unknown operation '" .. p.vendor .. " " .. a .. "'", hint) end
      flags = flag_table(p.op)
      hint = "try 'envclone " .. p.vendor .. " " .. names.kebab(p.op.name) .. " --help'"
    else
      -- the library's form: field=value with the vendor's own field name
      local name, value = a:match("^([%w_]+)=(.*)$")
      if not name then usage_error("expected --FIELD VALUE, FIELD=VALUE or an option, got '" .. a .. "'", hint) end
      local f
      for _, x in ipairs(p.op.fields) do if x.name == name then f = x end end
      -- an unknown name is passed on: the library names it in its validation error
      p.args[name] = f and convert(f, value, "field '" .. name .. "'") or value
      p.typed[name] = false -- the library's name, as typed: no flag to name
    end
    i = i + 1
  end
  if p.opts.output and p.opts.output ~= "json" and p.opts.output ~= "text" then
    usage_error("--output must be json or text", hint, "--output")
  end
  local o = p.opts
  if o.if_exists and o.if_exists ~= "error" and o.if_exists ~= "adopt" then
    usage_error("--if-exists must be error or adopt", hint, "--if-exists")
  end
  if p.op and not o.help and (o.if_exists or o.no_reconcile) and not p.op.lookup then
    usage_error(p.vendor .. " " .. names.kebab(p.op.name) .. " has no lookup by key", hint,
      o.if_exists and "--if-exists" or "--no-reconcile")
  end
  if p.op and not o.help and p.op.is_waiter then
    if o.wait then usage_error(p.vendor .. " " .. names.kebab(p.op.name) .. " is a wait: no --wait needed", hint,
      "--wait") end
  elseif p.op and not o.help then
    if o.max_poll_interval then
      usage_error("--max-poll-interval goes with a waiter (e.g. envclone kontent wait-for-cloning)", hint,
        "--max-poll-interval")
    end
    if o.wait_timeout or o.poll_interval or o.wait or o.wait_grace then
      if not ops.supports_wait(p.op) then
        usage_error(p.vendor .. " " .. names.kebab(p.op.name) .. " has nothing to wait for", hint, "--wait")
      end
      if not o.wait then usage_error("--wait-timeout, --poll-interval and --wait-grace go with --wait", hint) end
    end
  end
  p.hint = hint
  return p
end

--- Parses the arguments of `envclone batch` (argv[1] is "batch").
-- @tparam table argv the arguments
-- @treturn table `{ file =, opts = { help, max_in_flight, timeout, credentials, no_retry, check, output,
--   progress, verbose, debug, rate_limit_store } }`;
--   raises a usage error
function args.parse_batch(argv)
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
      p.opts.max_in_flight = args.integer_option(flag, value(), 1, args.max_in_flight_limit,
        "try 'envclone batch --help'")
    elseif flag == "--timeout" then
      p.opts.timeout = number_option(flag, value())
    elseif flag == "--credentials" then
      p.opts.credentials = value()
    elseif flag == "--rate-limit-store" then
      p.opts.rate_limit_store = value()
    elseif flag == "--output" then
      p.opts.output = value()
      if p.opts.output ~= "json" and p.opts.output ~= "text" then
        usage_error("--output must be json or text", "try 'envclone batch --help'", flag)
      end
    elseif flag == "--no-retry" or flag == "--check" or flag == "--progress" or flag == "--verbose"
      or flag == "--debug" then
      if inline then usage_error(flag .. " takes no value", "try 'envclone batch --help'", flag) end
      p.opts[flag:sub(3):gsub("-", "_")] = true
    elseif a:sub(1, 2) == "--" then
      unknown_flag(flag, { "--help", "--max-in-flight", "--timeout", "--credentials", "--no-retry", "--check",
        "--output", "--progress", "--verbose", "--debug", "--rate-limit-store" }, " for batch",
        "try 'envclone batch --help'")
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

return args
