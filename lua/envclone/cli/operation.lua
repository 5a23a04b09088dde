--- One operation from a parsed command line: credentials checked, the
-- client made, the call (and its `--wait`) run, the result printed.
-- Interrupts (SIGINT, SIGTERM) are caught while the call runs: a call on
-- the wire runs to its answer, a wait ends at once, and what is known
-- (the created id above all) is printed before the exit status 130 / 143.
-- @module envclone.cli.operation

local envclone = require("envclone")
local core = require("envclone.core")
local runtime = require("envclone.runtime")
local credentials = require("envclone.cli.credentials")
local exit = require("envclone.cli.exit")
local json = require("envclone.cli.json")
local names = require("envclone.cli.names")
local ops = require("envclone.cli.ops")
local output = require("envclone.cli.output")
local progress = require("envclone.cli.progress")

local EXIT = exit.codes

local operation = {}

--- The flag the user typed for `field` (a field's or a member's library
-- name, "parent.member" for a member): as recorded by the parser, else
-- the kebab-case flag.
-- @tparam table p from `envclone.cli.args.parse`
-- @treturn function field -> flag
function operation.flag_of(p)
  return function(field)
    if type(field) ~= "string" then return nil end
    if p.typed and p.typed[field] ~= nil then return p.typed[field] or nil end
    local parts = {}
    for part in field:gmatch("[^.]+") do parts[#parts + 1] = names.kebab(part) end
    return "--" .. table.concat(parts, ".")
  end
end

-- Whether `err` (raised by a call) is an interrupt's: its own error, or a
-- hook error that a wait's interrupt caused after the create.
local function is_interrupt(err)
  if type(err) ~= "table" then return false end
  if err.kind == "interrupted" then return true end
  return err.kind == "hook" and type(err.cause) == "table" and err.cause.kind == "interrupted"
end

--- Runs the operation `p` names.
-- @tparam table p from `envclone.cli.args.parse`, with `p.op` set
-- @param out file for the result
-- @param errout file for errors and the progress line
-- @tparam[opt] table tty `{ out = boolean, err = boolean }` (see `envclone.cli.main`)
-- @treturn integer exit status
function operation.run(p, out, errout, tty)
  local op = p.op
  tty = output.tty(out, errout, tty)
  local format = p.opts.output or (tty.out and "text" or "json")
  local json_out = format == "json" and out or nil
  local flag_of = operation.flag_of(p)
  local function usage(line, flag)
    errout:write(line, "\n")
    if json_out then
      output.write_error(out, { kind = "usage", message = (line:gsub("^envclone: ", "")), flag = flag })
    end
    return EXIT.usage
  end

  local file_creds = {}
  if p.opts.credentials then
    local cok, values = pcall(credentials.read, p.opts.credentials)
    if not cok then return exit.report_usage(errout, values, json_out) end
    file_creds = values
  end
  local client_opts = { base_url = p.opts.base_url or names.getenv(names.url_env(op.vendor)),
    timeout = p.opts.timeout }
  if p.opts.no_retry then client_opts.retry = false end
  local secrets = {}
  if p.opts.rate_limit_store then
    client_opts.rate_limit_store = p.opts.rate_limit_store
    secrets[#secrets + 1] = p.opts.rate_limit_store -- it may hold Redis's password
  end
  credentials.fill(op.vendor, file_creds, client_opts, secrets)
  credentials.emulator_defaults(op.vendor, client_opts, secrets)
  local ways, has_one = ops.auth_ways(op), false
  for _, way in ipairs(ways) do has_one = has_one or client_opts[way.credential] ~= nil end
  if #ways > 0 and not has_one then
    return usage("envclone: " .. op.vendor .. " " .. names.kebab(op.name) .. " needs " .. ops.credential_words(op)
      .. " in the environment or in --credentials FILE")
  end
  local log = progress.log_hook(errout, p.opts, secrets)
  client_opts.log = log
  if p.opts.progress then client_opts.on_retry = progress.retry_lines(errout, secrets) end
  local cok, client = pcall(envclone[op.vendor], client_opts)
  if not cok then
    return usage(credentials.option_error(client,
      credentials.sources(op.vendor, p.opts, file_creds, p.opts.credentials)))
  end
  local demo = credentials.demo_refusal(op.vendor, client_opts)
  if demo then
    client:close()
    return usage(demo)
  end

  local args = p.args
  local started = runtime.now()
  local live = false -- the terminal's live line is on stderr
  if op.is_waiter then
    -- a waiter's arguments: the object's id and the wait's options
    local w = op.waiter
    for k in pairs(args) do
      if k ~= w.id_arg then
        client:close()
        return usage("envclone: " .. op.vendor .. " " .. names.kebab(op.name) .. " takes --" .. names.kebab(w.id_arg)
          .. " and the wait's options, not '" .. tostring(k) .. "'")
      end
    end
    args = { [w.id_arg] = args[w.id_arg], timeout = p.opts.wait_timeout, interval = p.opts.poll_interval,
      max_interval = p.opts.max_poll_interval, grace = p.opts.wait_grace }
  end
  if p.opts.if_exists then args.if_exists = p.opts.if_exists end
  if p.opts.no_reconcile then args.reconcile = false end
  if p.opts.wait or op.is_waiter then
    if p.opts.wait then
      args.wait = true
      args.wait_timeout = p.opts.wait_timeout
      args.wait_interval = p.opts.poll_interval
      args.wait_grace = p.opts.wait_grace
    end
    if p.opts.progress then
      args.on_progress = progress.wait_lines(errout, op)
    elseif tty.err then
      args.on_progress = output.progress_writer(errout, op)
      live = true
    end
  end
  -- asked for here, once nothing more can be refused: a signal now stops
  -- the wait, not the process, and what is known is printed
  core.catch_signals{ "INT", "TERM" }
  local ok, res, extra = pcall(client[op.name], client, args)
  client:close()
  local sig = core.interrupted()
  if not ok then
    if is_interrupt(res) then
      sig = sig or res.signal or (res.cause and res.cause.signal)
      res, extra = nil, runtime.interrupted_item(res, sig, op.method ~= "GET" and op.method ~= "HEAD")
    elseif envclone.is_error(res) then
      -- raised after the create (a hook: the progress line could not be
      -- written, say): printed like any failure, what was created with it
      res, extra = nil, res
    else
      error(res, 0)
    end
  end
  if live then errout:write("\r\27[K") end
  local status
  if res == nil then
    errout:write(output.error_line(extra, flag_of), "\n")
    if json_out then output.write_error(out, extra, secrets, flag_of) end
    status = type(extra) == "table" and exit.for_kind[extra.kind] or EXIT.failure
  else
    res = output.scrub(res, secrets)
    local state = p.opts.wait and output.scrub(extra, secrets) or nil
    if op.is_waiter then state = res end
    if format == "text" then
      output.summary(out, op, res, state, runtime.now() - started, p.args)
    else
      -- a waiter's result is its state: printed once
      out:write(json.encode(json.ordered({ result = res, state = not op.is_waiter and state or nil },
        { "result", "state" })), "\n")
    end
    status = EXIT.ok
  end
  if sig then
    if res ~= nil then errout:write("envclone: interrupted by ", sig, " after the call succeeded\n") end
    status = exit.for_signal[sig] or EXIT.interrupted
  end
  return status
end

return operation
