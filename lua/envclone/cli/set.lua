--- The set commands of the command line, `envclone plan`, `apply` and
-- `destroy` of a set file (`envclone.set`) and its set's name. A thin layer: the
-- library checks the set file, runs it and keeps the state file; this
-- module reads the flags and the credentials and prints the results.
-- @module envclone.cli.set

local envclone = require("envclone")
local core = require("envclone.core")
local setlib = require("envclone.set")
local args = require("envclone.cli.args")
local state_mod = require("envclone.set.state")
local credentials = require("envclone.cli.credentials")
local exit = require("envclone.cli.exit")
local json = require("envclone.cli.json")
local names = require("envclone.cli.names")
local output = require("envclone.cli.output")

local EXIT = exit.codes
local usage_error = exit.usage_error

local set = {}

local HELP = table.concat({
  "usage: envclone plan SET.json [--set NAME]... [--destroy] [options]",
  "       envclone apply SET.json [--set NAME]... [--recreate-unknown] [options]",
  "       envclone destroy SET.json [--set NAME]... [options]",
  "",
  "A set file declares objects across vendors (a pull request's preview",
  "environments): their operation, arguments with templates ({set}, {set_id},",
  "{object.field}) and dependencies. doc/sets.md is the manual;",
  "doc/set.schema.json its JSON Schema.",
  "",
  "  plan      reads only: per object create, exists, update, unchanged, or",
  "            unknown (with why); with --destroy: delete, already_gone, kept",
  "  apply     creates what is missing, adopts what exists by its key, waits",
  "            for readiness (Kontent cloning); re-running creates nothing",
  "  destroy   deletes what exists, in reverse dependency order; waits for",
  "            background deletions; already gone counts as done",
  "",
  "Options:",
  "  --set NAME            the set's name (over the file's \"name\"); repeat it to",
  "                        run several sets at once, in one batch",
  "  --state FILE          the state file (one set only; default",
  "                        SET.json.NAME.state.json beside the set file)",
  "  --lock-timeout S      seconds to wait for another run of the same set",
  "                        (default 600; 0: refuse at once)",
  "  --recreate-unknown    apply: make an object whose earlier create's outcome",
  "                        is unknown and cannot be looked up (it may then exist twice)",
  "  --destroy             plan: what destroy would do",
  "  --max-in-flight N     requests on the wire at once (default 16)",
  "  --timeout S           each request's timeout in seconds",
  "  --credentials FILE    NAME=value lines (mode 0600) instead of the environment",
  "  --output json|text    JSON on stdout (default when stdout is not a terminal)",
  "  --help                this text",
  "",
  "Credentials come from the environment (VERSORI_TOKEN, QOVERY_TOKEN,",
  "KONTENT_API_KEY, KONTENT_SUBSCRIPTION_API_KEY, DROPLIT_TOKEN, ...) or",
  "--credentials FILE, never from the set file. ENVCLONE_EMULATOR_URL points",
  "every vendor at the emulator.",
  "",
  "Exit status: 0 every object done; 2 bad command line; 3 the set file is",
  "invalid (nothing sent); 1 the state file is locked by another run or cannot",
  "be used; 8 some objects failed, were refused or are unknown (each says why);",
  "130/143 interrupted (every result so far printed).",
}, "\n") .. "\n"

local function parse(argv)
  local p = { command = argv[1], sets = {}, opts = {} }
  local i = 2
  local function value(flag)
    i = i + 1
    local v = argv[i]
    if v == nil then usage_error(flag .. " needs a value", "try 'envclone " .. p.command .. " --help'", flag) end
    return v
  end
  -- --lock-timeout may be 0 (refuse at once when another run holds the lock)
  local function seconds_or_zero(flag, v)
    local n = tonumber(v)
    if not n or n < 0 or n ~= n or n == math.huge then
      usage_error(flag .. " must be a number of seconds, got '" .. tostring(v) .. "'", nil, flag)
    end
    return n
  end
  while i <= #argv do
    local a = argv[i]
    local flag, inline = a:match("^(%-%-[%w-]+)=(.*)$")
    flag = flag or a
    local function val()
      if inline then return inline end
      return value(flag)
    end
    if flag == "--help" or flag == "-h" then p.opts.help = true
    elseif flag == "--set" then p.sets[#p.sets + 1] = val()
    elseif flag == "--state" then p.opts.state = val()
    elseif flag == "--lock-timeout" then p.opts.lock_timeout = seconds_or_zero(flag, val())
    elseif flag == "--max-in-flight" then
      -- the command line's one rule for whole numbers: "16.0", "1e3", "0x10" are refused
      p.opts.max_in_flight = args.integer_option(flag, val(), 1, args.max_in_flight_limit,
        "try 'envclone " .. p.command .. " --help'")
    elseif flag == "--timeout" then p.opts.timeout = args.number_option(flag, val())
    elseif flag == "--credentials" then p.opts.credentials = val()
    elseif flag == "--output" then
      p.opts.output = val()
      if p.opts.output ~= "json" and p.opts.output ~= "text" then
        usage_error("--output must be json or text", nil, "--output")
      end
    elseif flag == "--recreate-unknown" and p.command == "apply" then p.opts.recreate_unknown = true
    elseif flag == "--destroy" and p.command == "plan" then p.opts.destroy = true
    elseif a:sub(1, 1) == "-" and a ~= "-" then
      usage_error("unknown option " .. a .. " for " .. p.command, "try 'envclone " .. p.command .. " --help'", a)
    elseif p.file == nil then p.file = a
    else usage_error("one set file only (got '" .. p.file .. "' and '" .. a .. "')") end
    i = i + 1
  end
  if not p.opts.help then
    if not p.file then usage_error(p.command .. " needs a set file", "try 'envclone " .. p.command .. " --help'") end
    if p.opts.state and #p.sets > 1 then
      usage_error("--state names one state file: give one --set with it (each set has its own state file)", nil,
        "--state")
    end
  end
  return p
end

-- Client options per vendor named in the set: base URL, credentials.
local function client_options(spec, p, secrets)
  local out = {}
  local creds = p.opts.credentials and credentials.read(p.opts.credentials) or nil
  local seen = {}
  for _, o in pairs(type(spec.objects) == "table" and spec.objects or {}) do
    local vendor = type(o) == "table" and o.vendor
    if type(vendor) == "string" and names.credential_env[vendor] and not seen[vendor] then
      seen[vendor] = true
      local opts = { base_url = names.getenv(names.url_env(vendor)), timeout = p.opts.timeout }
      -- the lookups' own credentials too (KONTENT_SUBSCRIPTION_API_KEY, KONTENT_SUBSCRIPTION_ID)
      credentials.fill(vendor, creds, opts, secrets)
      credentials.emulator_defaults(vendor, opts, secrets)
      local demo = credentials.demo_refusal(vendor, opts)
      if demo then usage_error((demo:gsub("^envclone: ", ""))) end
      out[vendor] = opts
    end
  end
  return out
end

local OBJECT_KEYS = { "id", "vendor", "operation", "status", "object_id", "key", "why", "error" }
local SET_KEYS = { "set", "action", "ok", "state", "elapsed", "counts", "objects", "interrupted", "error" }

-- One set's result as printed: objects in dependency order, errors as
-- error documents, every credential masked.
local function set_doc(s, r, secrets)
  local objs = envclone.array()
  for _, id in ipairs(r.order or s.order) do
    local o, res = s.objects[id], (r.objects or {})[id]
    if res then
      local d = { id = id, vendor = o.vendor, operation = names.kebab(o.row.name), status = res.status,
        object_id = res.object_id, key = res.key, why = res.why }
      if res.error then d.error = output.error_doc(res.error, secrets) end
      objs[#objs + 1] = json.ordered(output.scrub(d, secrets), OBJECT_KEYS)
    end
  end
  local counts = {}
  for k, v in pairs(r.counts or {}) do counts[k] = v end
  local d = { set = s.name, action = r.action, ok = r.ok, state = r.state or s.state_path or nil,
    elapsed = r.elapsed and math.floor(r.elapsed * 1000 + 0.5) / 1000, counts = counts, objects = objs,
    interrupted = r.interrupted }
  if r.error then d.error = output.error_doc(r.error, secrets) end
  return json.ordered(d, SET_KEYS)
end

local function text_lines(out, doc)
  out:write(string.format("%s %s: %s\n", doc.action or "?", doc.set, doc.ok and "ok" or "not ok"))
  if doc.error then out:write("  error: ", json.utf8_repair(tostring(doc.error.message)), "\n") end
  for _, o in ipairs(doc.objects) do
    local tail = o.object_id and (" " .. tostring(o.object_id)) or ""
    if o.error then tail = tail .. " -- " .. tostring(o.error.message)
    elseif o.why then tail = tail .. " (" .. o.why .. ")" end
    out:write(string.format("  %-16s %-8s %-26s %-12s%s\n", o.id, o.vendor, o.operation, o.status,
      json.utf8_repair(tail)))
  end
end

--- Runs `envclone plan|apply|destroy` (argv[1] names the command).
-- @tparam table argv the arguments
-- @param out file for the results and help
-- @param errout file for errors
-- @tparam[opt] table tty `{ out = boolean, err = boolean }` (see `envclone.cli.main`)
-- @treturn integer exit status
function set.run(argv, out, errout, tty)
  tty = output.tty(out, errout, tty)
  local format
  for i, a in ipairs(argv) do
    if a == "--output" then format = argv[i + 1] else format = a:match("^%-%-output=(.*)$") or format end
  end
  format = format or (tty.out and "text" or "json")
  local json_out = format == "json" and out or nil
  local secrets = {}
  local ok, p = pcall(parse, argv)
  if not ok then return exit.report_usage(errout, p, json_out) end
  if p.opts.help then
    out:write(HELP)
    return EXIT.ok
  end
  local spec, lerr = setlib.load(p.file)
  local function invalid(err)
    errout:write("envclone: ", output.error_line(err):gsub("^envclone: ", ""), "\n")
    if json_out then output.write_error(out, err, secrets) end
    return EXIT.validation
  end
  if not spec then return invalid(lerr) end
  local cok, copts = pcall(client_options, spec, p, secrets)
  if not cok then return exit.report_usage(errout, copts, json_out) end
  local set_names = p.sets
  if #set_names == 0 then set_names = { false } end
  local sets = {}
  for i, name in ipairs(set_names) do
    local sname = name or (type(spec.name) == "string" and spec.name) or nil
    local state = p.opts.state or (sname and state_mod.default_path(p.file, sname)) or nil
    local s, err = envclone.set(spec, { name = name or nil, file = p.file, state = state, client_options = copts,
      lock_timeout = p.opts.lock_timeout, max_in_flight = p.opts.max_in_flight })
    if not s then return invalid(err) end
    sets[i] = s
  end
  local results
  local started = core.now()
  if p.command == "plan" then
    results = {}
    for i, s in ipairs(sets) do
      local r, err = s:plan{ destroy = p.opts.destroy }
      results[i] = r or { set = s.name, action = "plan", ok = false, error = err, objects = {}, counts = {} }
    end
  else
    -- asked for here, once nothing more can be refused: a cancelled CI job
    -- prints what was done, and the state file has it
    core.catch_signals{ "INT", "TERM" }
    local on_object
    if tty.err then
      -- progress on a terminal: one line per object as it ends (masked, on stderr)
      on_object = function(set_name, id, r)
        local line = string.format("%s %s: %s %s", p.command, set_name, id, r.status)
          .. (r.object_id and (" " .. tostring(r.object_id)) or "")
        errout:write(core.mask(json.utf8_repair(line), secrets), "\n")
        errout:flush()
      end
    end
    results = setlib.run_all(sets, p.command, { recreate_unknown = p.opts.recreate_unknown,
      max_in_flight = p.opts.max_in_flight, on_object = on_object })
  end
  local docs, status, signal = {}, EXIT.ok, nil
  for i, r in ipairs(results) do
    docs[i] = set_doc(sets[i], r, secrets)
    signal = signal or r.interrupted
    if r.error then
      if r.error.kind == "validation" and r.error.reason ~= "state_file" then
        status = math.max(status, EXIT.validation)
      else
        status = status == EXIT.ok and EXIT.failure or status
      end
      errout:write("envclone: ", output.error_line(r.error):gsub("^envclone: ", ""), "\n")
    elseif not r.ok and status == EXIT.ok then
      status = EXIT.partial
    end
  end
  if format == "json" then
    if #docs == 1 then
      out:write(json.encode(docs[1]), "\n")
    else
      out:write(json.encode(json.ordered({ sets = docs, elapsed = math.floor((core.now() - started) * 1000 + 0.5)
        / 1000 }, { "sets", "elapsed" })), "\n")
    end
  else
    for _, d in ipairs(docs) do text_lines(out, d) end
  end
  if tty.err and format == "json" then
    for _, d in ipairs(docs) do
      local parts = {}
      for k, v in pairs(d.counts or {}) do parts[#parts + 1] = k .. " " .. v end
      table.sort(parts)
      errout:write(string.format("%s %s: %s\n", d.action or p.command, d.set, table.concat(parts, ", ")))
    end
  end
  if signal then return exit.for_signal[signal] or EXIT.interrupted end
  return status
end

return set
