--- Waiters: call a function until a condition holds, with a growing
-- interval, a deadline and a progress hook.
-- @module envclone.wait
local core = require("envclone.core")
local runtime = require("envclone.runtime")
local options = require("envclone.options")

local wait = {}

-- A misspelt option would silently mean "wait the default 600 s": refuse it.
local option_kinds = { timeout = "seconds", interval = "seconds", max_interval = "seconds",
  backoff = "finite", on_progress = "function", what = "string", vendor = "string", state_field = "string" }

--- Polls `fn` until it reports done.
-- `fn(poll)` returns `true, value` when done, `false, state` to keep
-- polling, or `nil, err` to stop with that error (an error whose
-- `retryable` is true is treated as "keep polling").
-- @tparam function fn
-- @tparam[opt] table opts `timeout` (600 s), `interval` (2 s, first delay),
--   `max_interval` (30 s), `backoff` (1.5, growth per poll),
--   `on_progress(state, elapsed, poll, err, next_delay)` after each poll, the
--   last one included (state: the done value on the last poll; err: a failure
--   of that poll; next_delay: seconds until the next poll, nil when no poll
--   follows), `what` (names the wait in errors), `state_field` (the field
--   of a table state the timeout's message shows; a waiter passes its row's)
-- @return value, or nil and an error (kind "timeout" when the deadline passed)
function wait.until_done(fn, opts)
  opts = opts or {}
  options.check(opts, option_kinds, "envclone.wait", "option", 2)
  local timeout = opts.timeout or 600
  local interval = opts.interval or 2
  local max_interval = math.max(opts.max_interval or 30, interval)
  local backoff = opts.backoff or 1.5
  local start = runtime.now()
  local poll, last_state, last_err = 0, nil, nil
  while true do
    poll = poll + 1
    local done, value = fn(poll)
    local elapsed = runtime.now() - start
    if done == true then
      -- every poll is reported, the last one too (no next poll: next_delay nil)
      if opts.on_progress then opts.on_progress(value, elapsed, poll, nil, nil) end
      return value
    elseif done == nil then
      if type(value) ~= "table" or not value.retryable then
        if opts.on_progress then opts.on_progress(last_state, elapsed, poll, value, nil) end
        return nil, value
      end
      last_err = value
    else
      last_state = value
    end
    local delay = interval
    -- a throttled poll waits as long as the server asked
    if last_err and type(last_err.retry_after) == "number" then
      delay = math.max(delay, last_err.retry_after)
    end
    local remaining = timeout - elapsed
    if delay > remaining then delay = math.max(remaining, 0) end
    if opts.on_progress then
      opts.on_progress(last_state, elapsed, poll, last_err, remaining > 0 and delay or nil)
    end
    if remaining <= 0 then
      return nil, core.error{
        kind = "timeout", vendor = opts.vendor, operation = opts.what or "wait",
        message = string.format("gave up after %.1f s and %d polls (last state: %s)",
          elapsed, poll, type(last_state) == "table"
            and (opts.state_field and last_state[opts.state_field] or "?")
            or tostring(last_state)),
        state = last_state, attempts = poll, retryable = true,
      }
    end
    runtime.sleep(delay)
    interval = math.min(interval * backoff, max_interval)
    last_err = nil
  end
end

return wait
