--- Retries with exponential backoff and full jitter, honouring Retry-After,
-- and never repeating a create that may have reached the server.
-- @module envclone.retry
local core = require("envclone.core")
local runtime = require("envclone.runtime")
local options = require("envclone.options")

local retry = {}

--- The default policy; a client's `retry` option and a call's `retry`
-- argument override it field by field.
retry.defaults = {
  max_attempts = 3,     -- attempts in all, the first included
  base_delay = 0.1,     -- seconds
  max_delay = 20,       -- cap on one backoff delay, seconds
  max_retry_after = 60, -- a longer Retry-After ends the retries instead
}

local policy_keys = { max_attempts = "non-negative", base_delay = "non-negative", max_delay = "non-negative",
  max_retry_after = "non-negative" }

--- Builds a policy from a user table (raises on a malformed one: that is a
-- programmer error). `false` turns retries off.
-- @param user table, false or nil
-- @tparam[opt] table base the policy to start from
-- @treturn table policy
function retry.policy(user, base)
  base = base or retry.defaults
  if user == nil then return base end
  if user == false then
    return { max_attempts = 1, base_delay = 0, max_delay = 0, max_retry_after = 0 }
  end
  if type(user) ~= "table" then
    error("envclone: retry must be a table or false, got " .. type(user), 3)
  end
  local p = {}
  for k, v in pairs(base) do p[k] = v end
  for k, v in pairs(options.check(user, policy_keys, "envclone", "retry option", 3)) do p[k] = v end
  if p.max_attempts < 1 then p.max_attempts = 1 end
  return p
end

--- Seconds until an HTTP-date ("Wed, 21 Oct 2015 07:28:00 GMT"; 0 when
-- past), or nil: the C core's one reading of Retry-After
-- (`core.retry_after_seconds`, src/ec_policy.c), which also fills
-- `err.retry_after` for dates.
-- @tparam string date
-- @treturn integer|nil
function retry.seconds_until(date)
  return core.retry_after_seconds(tostring(date))
end

--- The server's requested delay in seconds, or nil.
-- @tparam table err
function retry.retry_after(err)
  if type(err.retry_after) == "number" then return err.retry_after end
  if err.retry_after_date then return retry.seconds_until(err.retry_after_date) end
  return nil
end

--- May this failed attempt be tried again?
-- The C core decides it when it makes the error, from the request's policy
-- (ec_request.c, ec_marshal.c): a create is retried only when it surely
-- did not reach the server (connection refused, DNS, TLS handshake) or the
-- server said it did not act (429, or 503 with Retry-After); everything
-- else that may have created something is left to the caller, told by
-- `err.maybe_applied`.
-- @tparam table _ operation descriptor (unused: kept for callers)
-- @tparam table err error object
-- @treturn boolean
function retry.retryable(_, err)
  return err.retryable == true
end

--- Delay before attempt `attempt + 1`: full jitter over an exponential
-- ceiling, or the server's Retry-After.
-- @treturn number|nil seconds, or nil to stop (Retry-After past the cap)
function retry.delay(policy, attempt, err)
  local ra = retry.retry_after(err)
  if ra then
    if ra > policy.max_retry_after then return nil end
    return ra
  end
  local ceiling = math.min(policy.max_delay, policy.base_delay * 2 ^ (attempt - 1))
  return retry.random() * ceiling
end

-- Jitter needs every process (every nginx worker, forked from one master)
-- to draw differently, and must not reseed the caller's math.random:
-- a private Park-Miller generator, seeded on first use in each process.
local state

--- A uniform number in [0, 1) for jitter.
-- @treturn number
function retry.random()
  if not state then
    local pid = runtime.worker_pid() or 0
    local addr = tonumber(tostring({}):match("0x(%x+)") or "0", 16) or 0
    state = math.floor((core.now() % 1) * 1e9 + os.time() + pid * 7919 + addr) % 2147483646 + 1
  end
  state = (state * 16807) % 2147483647
  return (state - 1) / 2147483646
end

--- One exchange through a transport table: perform, then parse in the C core.
-- @tparam table transport with `perform(request)`
-- @param req request userdata
-- @return result, or nil and an error object
function retry.perform(transport, req)
  local resp, err = transport.perform(req)
  if resp == nil then
    if getmetatable(err) ~= core.error_mt then
      -- a host transport that did not use req:fail: nothing is known about
      -- what reached the server, so assume it may have
      return req:fail("transport", tostring(err or "the transport returned no response"), true)
    end
    return nil, err
  end
  if type(resp) ~= "table" then
    error("envclone: transport.perform must return a response table, or nil and an error", 0)
  end
  return req:parse(resp)
end

--- The retry loop of one call, from its first attempt's outcome (`res`, or
-- `err` and `req`): sends `req` again while `policy` allows and the error
-- is retryable, after the back-off. `envclone.call` decides the path and
-- makes the first attempt (`call.run`); every later one is
-- `attempt_fn(limit, transport, req, args)` (`call.attempt`).
-- @tparam table op operation descriptor
-- @tparam table args operation arguments
-- @tparam table policy the call's retry policy
-- @tparam table hooks the client's `on_retry` and `log` hooks
-- @tparam function attempt_fn one more attempt: `attempt_fn(limit, transport, req, args)`
-- @param limit the client's limiter, or false
-- @param transport nil (libcurl) or a table with `perform(request)`
-- @param res the first attempt's result, or nil
-- @param err its error
-- @param req its request (nil when it was not built: a validation error)
-- @return result, or nil and an error object with `attempts` set
function retry.loop(op, args, policy, hooks, attempt_fn, limit, transport, res, err, req)
  local attempt, maybe_applied = 1, false
  while true do
    if res ~= nil then
      if req then req:release() end
      if hooks.log then
        if op.creates then
          -- the create is made: a raise from the hook must not lose it
          local ok, herr = pcall(hooks.log, "debug", op.vendor .. "." .. op.name .. " ok", { attempt = attempt })
          if not ok then error(retry.raised_after_create(herr, op, res), 0) end
        else
          hooks.log("debug", op.vendor .. "." .. op.name .. " ok", { attempt = attempt })
        end
      end
      return res
    end
    err.attempts = attempt
    -- A retry that meets exactly the answer an earlier, unknown attempt
    -- would cause (a DELETE's not_found, mark-as-production's
    -- already_production: op.applied_reason from the table) means that
    -- attempt applied: the call succeeded.
    if maybe_applied and op.applied_reason and err.reason == op.applied_reason then
      if hooks.log then
        hooks.log("info", op.vendor .. "." .. op.name .. ": attempt " .. attempt .. " found " .. err.reason
          .. ", so an earlier attempt whose answer was lost applied; reporting success",
          { attempt = attempt, reason = err.reason })
      end
      req:release()
      return true
    end
    -- once any attempt may have acted, the call may have: a later 404 or
    -- "already production" must not hide that
    maybe_applied = maybe_applied or err.maybe_applied == true
    err.maybe_applied = maybe_applied
    if hooks.log then
      hooks.log("debug", tostring(err), { attempt = attempt, kind = err.kind, status = err.status })
    end
    local delay = req ~= nil and attempt < policy.max_attempts and err.retryable == true
      and retry.delay(policy, attempt, err)
    if not delay then
      if req then req:release() end
      return nil, err
    end
    if hooks.on_retry then hooks.on_retry(err, attempt, delay) end
    runtime.sleep(delay)
    attempt = attempt + 1
    res, err = attempt_fn(limit, transport, req, args)
  end
end

--- The error to raise when user code (a hook: `log`, `on_progress`)
-- raised after the create `op` succeeded with `res`: kind "hook", the
-- hook's own error value in `cause` (and its text in the message), and what
-- the call made in `created` -- the create's answer, or for a create
-- followed by a waiter just `{ [id_result] = id }` (Kontent's clone answer
-- holds the API key, and errors get logged).
-- @param cause what the hook raised
-- @tparam table op the create's operation row
-- @param res the create's result
-- @treturn table the error
function retry.raised_after_create(cause, op, res)
  local created = res
  local w = op.waiter
  if w then created = { [w.id_result] = type(res) == "table" and res[w.id_result] or nil } end
  local id = type(res) == "table" and res[w and w.id_result or "id"] or nil
  local shown, text = pcall(tostring, cause) -- a __tostring may raise too
  local e = core.error{ kind = "hook", vendor = op.vendor, operation = op.name,
    message = "raised after the create succeeded" .. (id ~= nil and " (created " .. tostring(id) .. ")" or "")
      .. ": " .. (shown and tostring(text) or "?") .. "; err.created holds what was made, err.cause what was raised" }
  e.cause, e.created = cause, created
  return e
end

--- Makes an error object (the same function as `envclone.core.error`).
-- @function error
-- @tparam table fields error fields (`kind`, `message`, ...)
-- @treturn table the error
retry.error = core.error
return retry
