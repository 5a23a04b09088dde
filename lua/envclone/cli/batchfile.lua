--- `envclone batch FILE`: a JSON array of calls, checked before anything is
-- sent, run as one `envclone.batch`, printed as a JSON array of results.
-- @module envclone.cli.batchfile

local envclone = require("envclone")
local core = require("envclone.core")
local runtime = require("envclone.runtime")
local args = require("envclone.cli.args")
local credentials = require("envclone.cli.credentials")
local exit = require("envclone.cli.exit")
local help = require("envclone.cli.help")
local json = require("envclone.cli.json")
local names = require("envclone.cli.names")
local ops = require("envclone.cli.ops")
local output = require("envclone.cli.output")

local EXIT = exit.codes
local usage_error = exit.usage_error

local batchfile = {}

--- Reads and checks a batch file: every call's vendor and operation are
-- known and its args are an object, or a usage error names the first that is not.
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
    calls[i] = { op = op, args = call_args }
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

--- Runs `envclone batch` (argv[1] is "batch").
-- @tparam table argv the arguments
-- @param out file for the results and help
-- @param errout file for errors and the progress line
-- @tparam[opt] table tty `{ out = boolean, err = boolean }` (see `envclone.cli.main`)
-- @treturn integer exit status
function batchfile.run(argv, out, errout, tty)
  local ok, p = pcall(function()
    local parsed = args.parse_batch(argv)
    if parsed.opts.help then return parsed end
    parsed.calls = batchfile.load(parsed.file)
    if parsed.opts.credentials then parsed.creds = credentials.read(parsed.opts.credentials) end
    return parsed
  end)
  if not ok then return exit.report_usage(errout, p) end
  if p.opts.help then
    help.batch(out)
    return EXIT.ok
  end
  tty = output.tty(out, errout, tty)
  -- one client per vendor named in the file; every credential checked before anything is sent
  local clients, secrets = {}, {}
  for i, call in ipairs(p.calls) do
    local op = call.op
    local vendor = op.vendor
    if not clients[vendor] then
      local opts = { base_url = os.getenv(names.url_env(vendor)), timeout = p.opts.timeout }
      local sources = credentials.sources(vendor, {}, p.creds, p.opts.credentials)
      if p.opts.no_retry then opts.retry = false end
      credentials.fill(vendor, p.creds, opts, secrets)
      local cok, client = pcall(envclone[vendor], opts)
      if not cok then
        errout:write(credentials.option_error(client, sources), "\n")
        return EXIT.usage
      end
      clients[vendor] = client
    end
    if op.credential then
      local var = names.credential_env[vendor][op.credential]
      local v = (p.creds or {})[var] or os.getenv(var)
      if v == nil or v == "" then
        errout:write("envclone: batch: call ", i, ": ", vendor, " ", names.kebab(op.name), " needs ", var,
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
      printed[i] = { ok = true, result = output.scrub(r.value, secrets), extra = output.scrub(r.extra, secrets) }
    else
      printed[i] = { ok = false, error = output.scrub(plain_error(r.err), secrets) }
      if status == EXIT.ok then status = exit.for_kind[r.err.kind] or EXIT.failure end
    end
  end
  out:write(#printed == 0 and "[]" or json.encode(printed), "\n")
  if tty.err then
    errout:write(string.format("batch: %d calls, %d succeeded, %d failed in %.1fs\n", #printed,
      results.succeeded, results.failed, runtime.now() - started))
  end
  return status
end

return batchfile
