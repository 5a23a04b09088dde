--- Progress and diagnostics on stderr, one line each, for a log a CI job
-- keeps (no terminal needed): the progress option (a line per finished
-- call of a batch, per retry, per poll of a wait), the verbose and debug
-- options (the client's `log` hook). Every line goes through the C core's masking with
-- the credentials in use: no secret reaches stderr.
-- @module envclone.cli.progress

local core = require("envclone.core")
local json = require("envclone.cli.json")
local names = require("envclone.cli.names")
local runtime = require("envclone.runtime")

local progress = {}

local function writer(errout, secrets)
  return function(line)
    errout:write(json.utf8_repair(core.mask(line, secrets or {})), "\n")
    errout:flush()
  end
end

-- The log hook's levels, most verbose first.
local rank = { debug = 1, info = 2, warn = 3, warning = 3, error = 4 }

--- The client's `log` hook for the verbose option (info and above) or
-- the debug one (everything), or nil when neither was given (the client then keeps its
-- fast path: a log hook sends every call through the Lua layer).
-- @param errout file
-- @tparam table opts the parsed options (`verbose`, `debug`)
-- @tparam {string,...} secrets masked in every line
-- @treturn ?function log(level, message, fields)
function progress.log_hook(errout, opts, secrets)
  if not (opts.verbose or opts.debug) then return nil end
  local min = opts.debug and 1 or 2
  local write = writer(errout, secrets)
  return function(level, message, fields)
    if (rank[level] or 2) < min then return end
    local parts = {}
    if type(fields) == "table" then
      for k, v in pairs(fields) do
        if type(v) ~= "table" and type(v) ~= "function" then parts[#parts + 1] = tostring(k) .. "=" .. tostring(v) end
      end
      table.sort(parts)
    end
    write("envclone: [" .. tostring(level) .. "] " .. tostring(message)
      .. (#parts > 0 and (" (" .. table.concat(parts, " ") .. ")") or ""))
  end
end

--- The client's `on_retry` hook for the progress option: a line per retry.
-- @param errout file
-- @tparam {string,...} secrets
-- @treturn function on_retry(err, attempt, delay)
function progress.retry_lines(errout, secrets)
  local write = writer(errout, secrets)
  return function(err, attempt, delay)
    local what = type(err) == "table" and err.vendor and (err.vendor .. " " .. names.kebab(err.operation or "?"))
      or "call"
    write(string.format("retry: %s attempt %d failed (%s); next attempt in %.1fs", what, attempt,
      type(err) == "table" and (err.kind .. (err.status and (" " .. err.status) or "")) or tostring(err),
      delay or 0))
  end
end

--- A wait's `on_progress` for the progress option:
-- a line per poll.
-- @param errout file
-- @tparam table op the operation's row (its `waiter` names the state's field)
-- @tparam[opt] string prefix e.g. "call 3: "
-- @treturn function on_progress(state, elapsed, poll, err, next_delay)
function progress.wait_lines(errout, op, prefix)
  local field = (op.waiter or op).state_field
  local label = field and field:gsub("_state$", "") or "state"
  local write = writer(errout)
  return function(state, elapsed, poll, err, next_delay)
    local what = type(state) == "table" and field and state[field] or (err and ("poll failed: " .. tostring(err.kind)))
      or "starting"
    write(string.format("%swait: poll %d: %s %s, %.1fs elapsed%s", prefix or "", poll, label, tostring(what),
      elapsed, next_delay and string.format(", next poll in %.1fs", next_delay) or ""))
  end
end

--- A batch's `on_progress` for the progress option: a line per finished call.
-- @param errout file
-- @tparam table calls the batch's calls (`{ op = row }`), by index
-- @tparam {string,...} secrets
-- @treturn function on_progress(done, total, i, result)
function progress.batch_lines(errout, calls, secrets)
  local write = writer(errout, secrets)
  local started, failed = runtime.now(), 0
  return function(done, total, i, result)
    local op = calls[i] and calls[i].op
    local what = op and (op.vendor .. " " .. names.kebab(op.name)) or "task"
    local how = "ok"
    if not result.ok then
      failed = failed + 1
      local err = result.err
      how = "failed: " .. (type(err) == "table" and tostring(err.kind) .. (err.status and (" " .. err.status) or "")
        or tostring(err))
    end
    write(string.format("batch: %d/%d done (%d failed), %.1fs: call %d %s %s", done, total, failed,
      runtime.now() - started, i, what, how))
  end
end

return progress
