--- `envclone batch FILE`: a JSON array of calls, every call validated
-- before any is sent, run as one `envclone.batch`, printed as a JSON array
-- of results that say which call each belongs to. `--check` validates and
-- sends nothing. SIGINT and SIGTERM stop starting calls, let the calls on
-- the wire end, and print every result so far (exit 130 / 143).
-- @module envclone.cli.batchfile

local envclone = require("envclone")
local core = require("envclone.core")
local call = require("envclone.call")
local runtime = require("envclone.runtime")
local args = require("envclone.cli.args")
local credentials = require("envclone.cli.credentials")
local exit = require("envclone.cli.exit")
local help = require("envclone.cli.help")
local json = require("envclone.cli.json")
local names = require("envclone.cli.names")
local ops = require("envclone.cli.ops")
local output = require("envclone.cli.output")
local progress = require("envclone.cli.progress")

local EXIT = exit.codes
local usage_error = exit.usage_error

local batchfile = {}

-- A waiter's arguments besides the object's id (init.lua's make_waiter).
local waiter_options = { "timeout", "interval", "max_interval", "grace", "unknown_timeout" }

-- The library's name of each argument a call of `op` takes, by its
-- kebab-case name: fields, call options (`wait-timeout`), a waiter's options.
local function kebab_names(op)
  local by = {}
  for _, f in ipairs(op.fields) do by[names.kebab(f.name)] = f end
  if op.is_waiter then
    for _, o in ipairs(waiter_options) do by[names.kebab(o)] = { name = o } end
  else
    for o in pairs(call.call_options) do by[names.kebab(o)] = { name = o } end
  end
  return by
end

-- `t` with kebab-case keys renamed to the library's (a name that is
-- already the library's stays); members of object fields too.
local function canonical(t, fields_by_kebab, exact, where)
  local out = {}
  for k, v in pairs(t) do
    local f = type(k) == "string" and not exact[k] and fields_by_kebab[k] or nil
    local name = f and f.name or k
    if out[name] ~= nil then
      usage_error(where .. ": '" .. tostring(k) .. "' and '" .. tostring(name) .. "' name the same argument")
    end
    local field = f or exact[k]
    if type(field) == "table" and field.members and type(v) == "table" then
      local by, ex = {}, {}
      for _, m in ipairs(field.members) do by[names.kebab(m.name)] = m; ex[m.name] = m end
      v = canonical(v, by, ex, where)
    end
    out[name] = v
  end
  return out
end

local function canonical_args(op, call_args, where)
  local exact = {}
  for _, f in ipairs(op.fields) do exact[f.name] = f end
  return canonical(call_args, kebab_names(op), exact, where)
end

--- Reads and checks a batch file: every call's vendor and operation are
-- known and its args are an object (names in the library's form or the
-- command line's kebab-case), or a usage error names the first that is not.
-- @tparam string path the file, "-" for stdin
-- @treturn table `{ {op = row, args = table}, ... }`; raises a usage error
function batchfile.load(path)
  local text
  if path == "-" then
    text = io.stdin:read("*a")
  else
    local f = io.open(path, "rb")
    if not f then usage_error("batch: cannot read " .. path) end
    text = f:read("*a")
    f:close()
  end
  local items, err = json.decode(text or "")
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
    if type(item.vendor) ~= "string" or not ops.by_vendor[item.vendor] then
      usage_error(where .. ": unknown vendor '" .. tostring(item.vendor) .. "' (one of "
        .. table.concat(ops.vendors, ", ") .. ")")
    end
    local op = type(item.operation) == "string" and ops.find(item.vendor, item.operation)
    if not op then
      usage_error(where .. ": unknown operation '" .. item.vendor .. " " .. tostring(item.operation) .. "'")
    end
    local call_args = item.args
    if call_args == nil or call_args == envclone.null then call_args = {} end
    if type(call_args) ~= "table" or (next(call_args) ~= nil and call_args[1] ~= nil) then
      usage_error(where .. ": args must be a JSON object")
    end
    calls[i] = { op = op, args = canonical_args(op, call_args, where) }
  end
  return calls
end

-- The row of operation `name` of `vendor` in the table.
local function row(vendor, name)
  for _, op in ipairs(envclone.operations) do
    if op.vendor == vendor and op.name == name then return op end
  end
end

-- A validation error object for a call (as the library makes them).
local function invalid(op, message, field)
  local e = core.error{ kind = "validation", vendor = op.vendor, operation = op.name, message = message }
  e.field, e.sent, e.maybe_applied = field, false, false
  return e
end

--- Validates one call as the library would before sending it, and sends
-- nothing: the per-call options (`wait`, `retry`, ...) and the arguments,
-- through the C core's request builder.
-- @tparam table client the vendor's client
-- @tparam table c `{ op = row, args = table }`
-- @return nil when the call is valid, else its validation error
function batchfile.validate(client, c)
  local op, a = c.op, c.args
  local poll_op, poll_args
  if op.is_waiter then
    local w = op.waiter
    local allowed = { [w.id_arg] = true }
    for _, o in ipairs(waiter_options) do allowed[o] = true end
    for k, v in pairs(a) do
      if not allowed[k] then
        return invalid(op, "unknown argument '" .. tostring(k) .. "' (" .. w.id_arg .. ", "
          .. table.concat(waiter_options, ", ") .. ")", tostring(k))
      end
      if k ~= w.id_arg and (type(v) ~= "number" or v < 0 or v ~= v) then
        return invalid(op, "argument '" .. k .. "' must be a number of seconds", k)
      end
    end
    poll_op, poll_args = row(op.vendor, w.poll), { [w.id_arg] = a[w.id_arg] }
  else
    local ok, perr = pcall(call.check_args, op.vendor .. "." .. op.name, a, 1)
    if not ok then return invalid(op, (tostring(perr):gsub("^[^\n]-:%d+: ", ""):gsub("^envclone[%w.:_]*: ", ""))) end
    poll_op, poll_args = op, {}
    for k, v in pairs(a) do
      if call.call_options[k] == nil then poll_args[k] = v end
    end
  end
  local req, err = poll_op.request(call.handle(client), poll_args)
  if req then
    req:release()
    return nil
  end
  return err
end

-- The arguments a result echoes: the required fields, those in the path
-- and a create's natural key (its `lookup`: Droplit's alias), when they are
-- strings, numbers or booleans (never a credential: masked by the caller too).
local function key_args(op, a)
  local t = {}
  local key_arg = op.lookup and op.lookup.key_arg
  for _, f in ipairs(op.fields) do
    local v = a[f.name]
    local tv = type(v)
    if (f.required or f["in"] == "path" or f.name == key_arg) and (tv == "string" or tv == "number" or tv == "boolean")
    then
      t[f.name] = v
    end
  end
  return t
end

local ITEM_KEYS = { "index", "vendor", "operation", "args", "ok", "valid", "result", "extra", "error" }

-- The head of a printed item: which call it is.
local function item_head(i, c, secrets)
  return { index = i, vendor = c.op.vendor, operation = names.kebab(c.op.name),
    args = output.scrub(key_args(c.op, c.args), secrets) }
end

local function text_line(item, c)
  local what
  if item.valid ~= nil then
    what = item.valid and "valid" or ("invalid: " .. tostring(item.error.message))
  elseif item.ok then
    -- the new object's id, also where the answer holds it among others (Versori's project)
    local made = output.created_item(c.op, item.result, c.args) or item.result
    local id = type(made) == "table" and made.id
    what = "ok" .. (id and (" id=" .. tostring(id)) or "")
  else
    local e = item.error
    what = "failed: " .. tostring(e.kind) .. (e.status and (" " .. e.status) or "") .. ": " .. tostring(e.message)
    if type(e.created) == "table" then
      local _, id = next(e.created)
      if id ~= nil then what = what .. " (created " .. tostring(id) .. ")" end
    end
  end
  return string.format("%d %s %s %s", item.index, item.vendor, item.operation, json.utf8_repair(what))
end

-- Prints the items: a JSON array, or a line each (--output text).
local function print_items(out, items, format, calls)
  if format == "text" then
    for i, item in ipairs(items) do out:write(text_line(item, calls[i]), "\n") end
    return
  end
  for _, item in ipairs(items) do json.ordered(item, ITEM_KEYS) end
  out:write(#items == 0 and "[]" or json.encode(items), "\n")
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

--- Runs `envclone batch` (argv[1] is "batch").
-- @tparam table argv the arguments
-- @param out file for the results and help
-- @param errout file for errors and the progress line
-- @tparam[opt] table tty `{ out = boolean, err = boolean }` (see `envclone.cli.main`)
-- @treturn integer exit status
function batchfile.run(argv, out, errout, tty)
  local format
  for i, a in ipairs(argv) do
    if a == "--output" then format = argv[i + 1] else format = a:match("^%-%-output=(.*)$") or format end
  end
  local ok, p = pcall(function()
    local parsed = args.parse_batch(argv)
    if parsed.opts.help then return parsed end
    parsed.calls = batchfile.load(parsed.file)
    if parsed.opts.credentials then parsed.creds = credentials.read(parsed.opts.credentials) end
    return parsed
  end)
  if not ok then return exit.report_usage(errout, p, format ~= "text" and out or nil) end
  if p.opts.help then
    help.batch(out)
    return EXIT.ok
  end
  format = p.opts.output or "json"
  local json_out = format == "json" and out or nil
  local function usage(line)
    errout:write(line, "\n")
    if json_out then output.write_error(out, { kind = "usage", message = (line:gsub("^envclone: ", "")) }) end
    return EXIT.usage
  end
  tty = output.tty(out, errout, tty)
  -- one client per vendor named in the file; every credential checked before anything is sent
  local clients, secrets, client_opts = {}, {}, {}
  local log
  local function close_all() for _, c in pairs(clients) do c:close() end end
  for i, c in ipairs(p.calls) do
    local op = c.op
    local vendor = op.vendor
    if not clients[vendor] then
      local opts = { base_url = names.getenv(names.url_env(vendor)), timeout = p.opts.timeout }
      local sources = credentials.sources(vendor, {}, p.creds, p.opts.credentials)
      if p.opts.no_retry then opts.retry = false end
      if p.opts.rate_limit_store then
        opts.rate_limit_store = p.opts.rate_limit_store
        secrets[#secrets + 1] = p.opts.rate_limit_store -- it may hold Redis's password
      end
      credentials.fill(vendor, p.creds, opts, secrets)
      credentials.emulator_defaults(vendor, opts, secrets)
      log = log or progress.log_hook(errout, p.opts, secrets)
      opts.log = log
      if p.opts.progress then opts.on_retry = progress.retry_lines(errout, secrets) end
      local cok, client = pcall(envclone[vendor], opts)
      if not cok then
        close_all()
        return usage(credentials.option_error(client, sources))
      end
      clients[vendor], client_opts[vendor] = client, opts
      local demo = credentials.demo_refusal(vendor, opts)
      if demo then close_all(); return usage(demo) end
    end
    local ways, has_one = ops.auth_ways(op), false
    for _, way in ipairs(ways) do has_one = has_one or client_opts[vendor][way.credential] ~= nil end
    if #ways > 0 and not has_one then
      close_all()
      return usage("envclone: batch: call " .. i .. ": " .. vendor .. " " .. names.kebab(op.name) .. " needs "
        .. ops.credential_words(op) .. " in the environment or in --credentials FILE")
    end
  end

  -- every call validated before any is sent
  local checked, n_invalid = {}, 0
  for i, c in ipairs(p.calls) do
    local err = batchfile.validate(clients[c.op.vendor], c)
    local item = item_head(i, c, secrets)
    item.valid = err == nil
    if err then
      n_invalid = n_invalid + 1
      item.error = output.error_doc(err, secrets)
      errout:write("envclone: batch: call ", i, ": ", (output.error_line(err):gsub("^envclone: ", "")), "\n")
    end
    checked[i] = item
  end
  if p.opts.check or n_invalid > 0 then
    close_all()
    print_items(out, checked, format, p.calls)
    if n_invalid > 0 then
      errout:write(string.format("envclone: batch: %d of %d calls invalid; nothing was sent\n", n_invalid,
        #p.calls))
      return EXIT.validation
    end
    return EXIT.ok
  end

  local started = runtime.now()
  local on_progress
  if p.opts.progress then
    on_progress = progress.batch_lines(errout, p.calls, secrets)
  elseif tty.err then
    on_progress = batch_progress(errout, started)
  end
  local b = envclone.batch{ max_in_flight = p.opts.max_in_flight, on_progress = on_progress }
  for i, c in ipairs(p.calls) do
    local a = c.args
    if p.opts.progress and (a.wait or c.op.is_waiter) and a.on_progress == nil then
      a = {}
      for k, v in pairs(c.args) do a[k] = v end
      a.on_progress = progress.wait_lines(errout, c.op, "call " .. i .. ": ")
    end
    b:add(clients[c.op.vendor], c.op.name, a)
  end
  -- asked for here, once nothing more can be refused
  core.catch_signals{ "INT", "TERM" }
  local rok, results = pcall(b.run, b)
  close_all()
  local signal
  if not rok then
    if type(results) ~= "table" or results.kind ~= "interrupted" or type(results.results) ~= "table" then
      error(results, 0)
    end
    signal, results = results.signal, results.results
  end
  if tty.err and not p.opts.progress then errout:write("\r\27[K") end
  local printed, status = {}, EXIT.ok
  for i, r in ipairs(results) do
    local item = item_head(i, p.calls[i], secrets)
    item.ok = r.ok
    if r.ok then
      item.result, item.extra = output.scrub(r.value, secrets), output.scrub(r.extra, secrets)
    else
      item.error = output.error_doc(r.err, secrets)
      status = EXIT.partial
    end
    printed[i] = item
  end
  print_items(out, printed, format, p.calls)
  if tty.err or signal or p.opts.progress then
    errout:write(string.format("batch: %d calls, %d succeeded, %d failed in %.1fs%s\n", #printed,
      results.succeeded, results.failed, runtime.now() - started, signal and (", interrupted by " .. signal) or ""))
  end
  if signal then return exit.for_signal[signal] or EXIT.interrupted end
  return status
end

return batchfile
