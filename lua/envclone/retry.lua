--- Retries with exponential backoff and full jitter, honouring Retry-After,
-- and never repeating a create that may have reached the server.
-- @module envclone.retry
local core = require("envclone.core")
local runtime = require("envclone.runtime")
local limiter = require("envclone.limiter")

local retry = {}

--- The default policy; a client's `retry` option and a call's `retry`
-- argument override it field by field.
retry.defaults = {
  max_attempts = 3,     -- attempts in all, the first included
  base_delay = 0.1,     -- seconds
  max_delay = 20,       -- cap on one backoff delay, seconds
  max_retry_after = 60, -- a longer Retry-After ends the retries instead
}

local policy_keys = { max_attempts = "number", base_delay = "number", max_delay = "number",
  max_retry_after = "number" }

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
  for k, v in pairs(user) do
    if not policy_keys[k] then
      error("envclone: unknown retry option '" .. tostring(k) .. "'", 3)
    end
    if type(v) ~= "number" or v ~= v or v < 0 then
      error("envclone: retry." .. k .. " must be a non-negative number", 3)
    end
    p[k] = v
  end
  if p.max_attempts < 1 then p.max_attempts = 1 end
  return p
end

local months = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8,
  Sep = 9, Oct = 10, Nov = 11, Dec = 12 }

--- Seconds until an HTTP-date ("Wed, 21 Oct 2015 07:28:00 GMT"), or nil.
-- @tparam string date
-- @treturn number|nil
function retry.seconds_until(date)
  local d, mon, y, h, m, s = tostring(date):match("(%d+) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d)")
  if not d or not months[mon] then return nil end
  local t = { year = tonumber(y), month = months[mon], day = tonumber(d),
    hour = tonumber(h), min = tonumber(m), sec = tonumber(s), isdst = false }
  -- a server's header must not make os.time raise ("field 'day' is out-of-bound")
  if t.day < 1 or t.day > 31 or t.hour > 23 or t.min > 59 or t.sec > 60 then return nil end
  -- os.time reads local time; correct by the local offset from UTC
  local now = os.time()
  local ok, when = pcall(os.time, t)
  if not ok or not when then return nil end
  local utc_offset = os.difftime(now, os.time(os.date("!*t", now)))
  local secs = os.difftime(when + utc_offset, now)
  return secs > 0 and secs or 0
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
    local ngx = rawget(_G, "ngx")
    local pid = type(ngx) == "table" and ngx.worker and ngx.worker.pid and ngx.worker.pid() or 0
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

-- One exchange: through the batch's loop (inside a batch task), the
-- client's libcurl handle (`transport` nil) or the transport table.
local function exchange(transport, req)
  local scheduler = runtime.scheduler()
  if scheduler then return scheduler:send(transport, req) end
  if transport == nil then return req:send() end
  return retry.perform(transport, req)
end

-- pcall may span a yield (a batch task's send) everywhere but in PUC Lua 5.1
local pcall_yields = _VERSION ~= "Lua 5.1" or type(rawget(_G, "jit")) == "table"

--- One attempt of `req`: waits for the client's rate limits, then sends it
-- through the batch's loop (inside a batch task), the client's libcurl
-- handle (`transport` nil) or the transport table.
-- @tparam table client the Lua client
-- @param transport nil (libcurl) or a table with `perform(request)`
-- @param req request userdata (`op.request`)
-- @tparam table args the call's arguments (the limiter's key is read from them)
-- @return result, or nil and an error object
function retry.attempt(client, transport, req, args)
  local ticket = client._limit and limiter.acquire(client._limit, args)
  if not ticket then return exchange(transport, req) end
  -- The limiter's slot is the attempt's: released when the exchange ends,
  -- also by an error raised in it (a host transport's perform), which then
  -- goes on as raised, leaving the client usable.
  local ok, res, err
  if pcall_yields or not runtime.scheduler() then
    ok, res, err = pcall(exchange, transport, req)
  else
    ok, res, err = true, exchange(transport, req)
  end
  if not ok then
    limiter.release(ticket, true)
    error(res, 0)
  end
  -- an attempt that surely never reached the server leaves the limiter's log
  limiter.release(ticket, res ~= nil or err.sent ~= false)
  return res, err
end

--- Calls op until it succeeds or must stop. The request is built once (the
-- C core validates it: nothing is sent on bad input) and sent again as is.
-- Every attempt, retries and waiter polls included, counts against the
-- client's rate limits.
-- @tparam table client the Lua client (fields _handle, _retry, _hooks, _limit)
-- @tparam table op operation descriptor
-- @tparam table args operation arguments
-- @tparam[opt] table policy for this call (default: the client's, else `retry.defaults`)
-- @param[opt] first_err the error of a first attempt the caller already
--   made over libcurl (`op.call`: the client's fast path)
-- @param[opt] first_req the request of that attempt
-- @return result, or nil and an error object with `attempts` set
function retry.call(client, op, args, policy, first_err, first_req)
  policy = policy or client._retry or retry.defaults
  local hooks = client._hooks
  local transport = client:_transport_for()
  local res, err, req
  if first_err then
    err, req = first_err, first_req
  elseif transport == nil and not client._limit and not runtime.scheduler() then
    -- libcurl, nothing to wait for: build, send and parse in one C call;
    -- the request comes back only when the exchange failed
    res, err, req = op.call(client._handle, args)
  else
    req, err = op.request(client._handle, args)
    if req then res, err = retry.attempt(client, transport, req, args) end
  end
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
    if err.retry_after == nil and err.retry_after_date then
      err.retry_after = retry.seconds_until(err.retry_after_date)
    end
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
    res, err = retry.attempt(client, transport, req, args)
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
