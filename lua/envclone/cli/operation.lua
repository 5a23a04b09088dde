--- One operation from a parsed command line: credentials checked, the
-- client made, the call (and its `--wait`) run, the result printed.
-- @module envclone.cli.operation

local envclone = require("envclone")
local runtime = require("envclone.runtime")
local credentials = require("envclone.cli.credentials")
local exit = require("envclone.cli.exit")
local json = require("envclone.cli.json")
local names = require("envclone.cli.names")
local ops = require("envclone.cli.ops")
local output = require("envclone.cli.output")

local EXIT = exit.codes

local operation = {}

--- Runs the operation `p` names.
-- @tparam table p from `envclone.cli.args.parse`, with `p.op` set
-- @param out file for the result
-- @param errout file for errors and the progress line
-- @tparam[opt] table tty `{ out = boolean, err = boolean }` (see `envclone.cli.main`)
-- @treturn integer exit status
function operation.run(p, out, errout, tty)
  local op = p.op
  tty = output.tty(out, errout, tty)

  local file_creds = {}
  if p.opts.credentials then
    local cok, values = pcall(credentials.read, p.opts.credentials)
    if not cok then return exit.report_usage(errout, values) end
    file_creds = values
  end
  local client_opts = { base_url = p.opts.base_url or os.getenv(names.url_env(op.vendor)),
    timeout = p.opts.timeout }
  if p.opts.no_retry then client_opts.retry = false end
  local secrets = {}
  credentials.fill(op.vendor, file_creds, client_opts, secrets)
  local ways, has_one = ops.auth_ways(op), false
  for _, way in ipairs(ways) do has_one = has_one or client_opts[way.credential] ~= nil end
  if #ways > 0 and not has_one then
    errout:write("envclone: ", op.vendor, " ", names.kebab(op.name), " needs ", ops.credential_words(op),
      " in the environment or in --credentials FILE\n")
    return EXIT.usage
  end
  local cok, client = pcall(envclone[op.vendor], client_opts)
  if not cok then
    errout:write(credentials.option_error(client,
      credentials.sources(op.vendor, p.opts, file_creds, p.opts.credentials)), "\n")
    return EXIT.usage
  end

  local args = p.args
  local started = runtime.now()
  if p.opts.wait then
    args.wait = true
    args.wait_timeout = p.opts.wait_timeout
    args.wait_interval = p.opts.poll_interval
    if tty.err then args.on_progress = output.progress_writer(errout, op) end
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
    return type(extra) == "table" and exit.for_kind[extra.kind] or EXIT.failure
  end
  res = output.scrub(res, secrets)
  local state = p.opts.wait and output.scrub(extra, secrets) or nil
  local format = p.opts.output or (tty.out and "text" or "json")
  if format == "text" then
    output.summary(out, op, res, state, runtime.now() - started)
  else
    out:write(json.encode({ result = res, state = state }), "\n")
  end
  return EXIT.ok
end

return operation
