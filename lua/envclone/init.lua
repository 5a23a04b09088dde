--- envclone: clone and create environments on Versori, Qovery, Kontent.ai
-- and Droplit from Lua.
--
--     local envclone = require("envclone")
--     local kontent = envclone.kontent{ api_key = os.getenv("KONTENT_API_KEY") }
--     local env, err = kontent:clone_environment{ environment_id = id, name = "Develop" }
--
-- One constructor per vendor; one method per operation, named and
-- argued as on the vendor's page. Expected failures return `nil, err`
-- (doc/errors.md describes the error object); programmer errors raise.
-- @module envclone
local core = require("envclone.core")
local runtime = require("envclone.runtime")
local options = require("envclone.options")
-- the path of a call (the C fast path, request + transport, the batch
-- scheduler), and the only reader of a client's private fields but the
-- constructor below
local call = require("envclone.call")

-- Modules a plain call does not run are loaded on first use, so a process
-- that makes one call parses only what that call needs (retries, waiters
-- and the rate limiter load when a call fails, waits or is limited).
local retry = call.lazy("envclone.retry")
local wait = call.lazy("envclone.wait")

local envclone = {
  _VERSION = "envclone " .. core.version,
  --- JSON null in results (the same value as cjson.null).
  null = core.null,
  --- Metatable that makes a table encode as a JSON array, even when empty;
  -- every array decoded from JSON carries it, so `[]` is sent back as `[]`.
  array_mt = core.array_mt,
  --- The operation table, as data: vendor, name, method, path, fields.
  operations = core.operations,
}
--- The default retry policy (`envclone.retry.defaults`), read on first use.
-- @field retry_defaults
setmetatable(envclone, { __index = function(_, key)
  if key == "retry_defaults" then return retry.defaults end
end })

--- Marks a table as a JSON array (so `{}` is sent as `[]`).
-- @tparam[opt] table t
-- @treturn table t
function envclone.array(t)
  return setmetatable(t or {}, core.array_mt)
end

--- Is `v` an envclone error object?
function envclone.is_error(v)
  return type(v) == "table" and getmetatable(v) == core.error_mt
end

--- The generic poller: see `envclone.wait.until_done`.
-- @function wait
function envclone.wait(fn, opts)
  return wait.until_done(fn, opts) -- a tail call: its errors point at the caller
end

-- Options the Lua layer owns (name -> kind, see envclone.options); everything
-- else goes to the C core, which rejects what it does not know.
local layer_options = { retry = true, on_retry = "function", log = "function", transport = true,
  pool_size = "number", keepalive_timeout = "number", rate_limit = true, rate_limit_dict = true, reconcile = true,
  rate_limit_store = true, rate_limit_store_failure = true }

local Client = {}
local vendor_methods = {}   -- vendor -> method table

local waiters = call.waiters
--- The operations that take `wait = true`: `"vendor.operation"` -> the
-- waiter method that follows them (e.g. `"kontent.clone_environment"` ->
-- `"wait_for_cloning"`). Read it; do not change it.
envclone.waiters = waiters

-- One method per operation: envclone.call decides each call's path.
for _, op in ipairs(core.operations) do
  vendor_methods[op.vendor] = vendor_methods[op.vendor] or {}
  vendor_methods[op.vendor][op.name] = call.method(op)
end

-- The one waiter, made from an operation's `waiter` column: poll `w.poll`
-- until the answer's `w.state_field` is `w.done` (a result) or `w.failed`
-- (an error of kind "state"); a state in `w.pending` means "not yet". A new object may
-- not be visible for a moment after the create: `w.not_yet_status` during
-- the first `grace` seconds means "not visible yet" and the waiter keeps
-- polling. A state the vendor never documented (neither of the three: say
-- "canceled") may be a new final state or a new step on the way: the waiter
-- keeps polling while it lasts, for `unknown_timeout` seconds at most (60;
-- a documented state seen again starts the count afresh), then fails with
-- kind "state", reason "unknown_state" -- not the whole wait's timeout.
local function make_waiter(vendor, w)
  -- timeout, interval, max_interval and on_progress: checked by wait.until_done
  local allowed = { [w.id_arg] = true, timeout = true, interval = true, max_interval = true, grace = "seconds",
    unknown_timeout = "seconds", on_progress = true }
  local where = "envclone: " .. w.name
  local not_yet = { [w.state_field] = "not_visible_yet" }
  local pending = {}
  for _, s in ipairs(w.pending) do pending[s] = true end
  local documented = table.concat(w.pending, ", ") .. ", " .. w.done .. ", " .. w.failed
  local gone = { [w.state_field] = w.done }
  return function(self, args)
    if type(args) ~= "table" then
      error("envclone: " .. w.name .. " takes a table of arguments", 2)
    end
    options.check(args, allowed, where, "argument", 2)
    local id = args[w.id_arg]
    local grace = args.grace or 30
    local unknown_timeout = args.unknown_timeout or 60
    local poll = self[w.poll]
    local start = runtime.now()
    local unknown_since -- when the current run of undocumented states began
    return wait.until_done(function()
      -- one attempt per poll: the waiter itself keeps polling past retryable
      -- errors and honours Retry-After, and its timeout must bound the wait
      local state, err = poll(self, { [w.id_arg] = id, retry = false })
      if not state then
        if w.not_yet_status and err.status == w.not_yet_status and runtime.now() - start < grace then
          return false, not_yet
        end
        -- a deletion is done when the object is gone (Qovery: DELETED, then 404)
        if w.done_status and err.status == w.done_status then return true, gone end
        return nil, err
      end
      local s = type(state) == "table" and state[w.state_field]
      if s == w.done then return true, state end
      if s == w.failed then
        return nil, core.error{ kind = "state", vendor = vendor, operation = w.name,
          message = w.failed_message, state = state }
      end
      if pending[s] then
        unknown_since = nil
      else
        local now = runtime.now()
        unknown_since = unknown_since or now
        if now - unknown_since >= unknown_timeout then
          return nil, core.error{ kind = "state", reason = "unknown_state", vendor = vendor, operation = w.name,
            state = state, message = string.format("%s '%s' is not a state %s documents (%s); seen for %.1f s",
              w.state_field, tostring(s or "(none)"), vendor, documented, now - unknown_since) }
        end
      end
      return false, state
    end, { timeout = args.timeout, interval = args.interval, max_interval = args.max_interval,
      on_progress = args.on_progress, what = w.name, vendor = vendor, state_field = w.state_field })
  end
end

--- Kontent: poll the cloning state of `environment_id` until it is `done`
-- (Kontent Management API v2, "Get environment cloning state"; the
-- `waiter` column of kontent.clone_environment).
-- A new environment may not be visible for a moment after the clone call:
-- a 404 during the first `grace` seconds means "not visible yet" and the
-- waiter keeps polling. Kontent documents `in_progress`, `done` and
-- `failed`; any other state is polled for `unknown_timeout` seconds at
-- most, then ends the wait with an error.
-- @function kontent:wait_for_cloning
-- @tparam table args `environment_id`, and `timeout` (600 s), `interval`
--   (2 s, the first delay), `max_interval` (30 s), `grace` (30 s),
--   `unknown_timeout` (60 s),
--   `on_progress(state, elapsed, poll, err, next_delay)` (see `envclone.wait.until_done`)
-- @return the last state table (`{cloning_state = "done"}`), or nil, err
--   (kind "timeout", or kind "state" with `state` when cloning failed, and
--   with reason "unknown_state" too when the state was one Kontent does not
--   document for `unknown_timeout` seconds)
-- @raise on an unknown argument

--- Qovery: after `delete_application`, poll `get_application_status` until
-- the state is `DELETED` or the application answers 404 (Qovery's OpenAPI
-- spec: DELETE answers 204 and the deletion runs in the background; its
-- Terraform provider waits the same way, client/application.go). The
-- states on the way are DELETE_QUEUED, DELETING and WAITING_DELETING;
-- DELETE_ERROR ends the wait with an error. `delete_application{ ...,
-- wait = true }` calls it.
-- @function qovery:wait_for_deletion
-- @tparam table args `applicationId`, and `timeout` (600 s), `interval`
--   (2 s), `max_interval` (30 s), `unknown_timeout` (60 s), `on_progress`
--   (as for `kontent:wait_for_cloning`)
-- @return the last state table (`{state = "DELETED"}`), or nil, err (kind
--   "timeout", or kind "state" when the deletion failed)
-- @raise on an unknown argument
for _, op in ipairs(core.operations) do
  if op.waiter then vendor_methods[op.vendor][op.waiter.name] = make_waiter(op.vendor, op.waiter) end
end

local transports = { auto = true, curl = true, cosocket = true }

--- Closes the client: frees its connection and wipes its credentials (once
-- no call made before is in flight: their answers are masked with them).
function Client.close(self)
  return call.close(self)
end

local metatables = {}
for vendor, methods in pairs(vendor_methods) do
  for k, v in pairs(Client) do methods[k] = v end
  metatables[vendor] = {
    __index = methods,
    __tostring = call.tostring,
    __close = Client.close,
    __name = "envclone." .. vendor,
  }
end

-- What the batch module needs of the client layer (made on first use).
local batch_env
local function get_batch_env()
  if not batch_env then
    batch_env = { callables = require("envclone.batch").callables(vendor_methods, metatables) }
  end
  return batch_env
end

--- A batch of calls and tasks run together on one thread, within each
-- vendor's limits: see `envclone.batch`.
-- @tparam[opt] table opts `max_in_flight` (16), `on_progress(done, total, i, result)`
-- @treturn table the batch: `b:add(client, "operation", args)`, `b:add(function() ... end)`, `b:run()`
function envclone.batch(opts)
  return require("envclone.batch").new(opts, get_batch_env())
end

--- A set: objects across vendors planned, applied and destroyed as one
-- (preview environments of a pull request): see `envclone.set` (the module)
-- and doc/sets.md.
-- @tparam table spec `{ name =, objects = { [id] = { vendor =, operation =, args =, after =, client = } } }`
-- @tparam[opt] table opts `name`, `file`, `state`, `client_options`, `clients`, `lock_timeout`, `max_in_flight`
-- @return the set (`s:plan()`, `s:apply()`, `s:destroy()`), or nil and a validation error
function envclone.set(spec, opts)
  return require("envclone.set").new(spec, opts, envclone)
end

local function new_client(vendor, opts, level)
  if opts ~= nil and type(opts) ~= "table" then
    error("envclone." .. vendor .. ": options must be a table, got " .. type(opts), level)
  end
  local rest = {}
  local mine = options.check(opts or {}, layer_options, "envclone", "option", level, rest)
  local ok, handle = pcall(core.client, vendor, rest)
  if not ok then error(handle, level) end
  local transport = mine.transport or "auto"
  if not (transports[transport] or (type(transport) == "table" and type(transport.perform) == "function")) then
    error("envclone." .. vendor .. ": transport must be 'auto', 'curl', 'cosocket' or a table with a perform "
      .. "function", level)
  end
  -- cosockets speak HTTP/1.1 (envclone.http1): a client that would use them
  -- cannot honour http_version = "2"
  if rest.http_version == "2" and (transport == "cosocket"
    or (transport == "auto" and runtime.ngx() ~= nil)) then
    error("envclone." .. vendor .. ": http_version = \"2\" needs transport = 'curl': the cosocket transport "
      .. "speaks HTTP/1.1 only", level)
  end
  local limit = false
  if mine.rate_limit_dict ~= nil or mine.rate_limit_store or mine.rate_limit_store_failure ~= nil
    or mine.rate_limit ~= false and (mine.rate_limit ~= nil or core.vendors[vendor].rate_limit ~= nil) then
    local settings = handle:settings()
    local okl
    okl, limit = pcall(require("envclone.limiter").new, vendor, settings.base_url, mine.rate_limit,
      mine.rate_limit_dict, settings.timeout, mine.rate_limit_store, mine.rate_limit_store_failure)
    if not okl then error(limit, level) end
  end
  local reconcile_policy -- nil: reconcile.defaults
  if mine.reconcile ~= nil then
    reconcile_policy = require("envclone.reconcile").policy(mine.reconcile, nil, level)
  end
  local client = setmetatable({
    _reconcile = reconcile_policy,
    _limit = limit,
    _handle = handle,
    _retry = mine.retry ~= nil and retry.policy(mine.retry) or nil, -- nil: retry.defaults
    _hooks = { on_retry = mine.on_retry, log = mine.log },
    _transport = transport,
    _pool = { size = mine.pool_size, idle = mine.keepalive_timeout },
    _closed = false,
  }, metatables[vendor])
  if not limit and mine.log == nil and (transport == "auto" or transport == "curl") then
    call.allow_fast_path(client, handle) -- the first attempt may skip the Lua layer
  end
  return client
end

--- Versori client. Options: `token` (Bearer: both operations),
-- `cookie` (the whole Cookie header value; create_connection_version uses
-- it when the client has no `token`, as the Connect API allows),
-- `connect_base_url` (the Connect API root, default
-- https://platform.versori.com/api/connect/v1alpha1; when only `base_url`
-- is given, its sibling `../connect/v1alpha1`), `base_url`, `timeout`,
-- `connect_timeout`, `user_agent`, `retry`, `on_retry`, `log`,
-- `ca_file`, `insecure`, `max_response_size`, `proxy` ("http://host:port"
-- or "env": a CONNECT tunnel to https roots only), `http_version` ("auto":
-- HTTP/2 by ALPN over https, HTTP/1.1 over http; "1.1"; "2": as auto over
-- https, HTTP/2 with prior knowledge over http; libcurl only); and for OpenResty
-- `transport` ("auto": cosockets where nginx allows them, else libcurl;
-- "curl"; "cosocket"), `pool_size` (idle connections kept per pool, 30) and
-- `keepalive_timeout` (seconds an idle connection is kept, 60): see
-- `envclone.cosocket`. `rate_limit`: `false`, or a table
-- `{ per_second =, per_minute =, concurrency_per_key = }` whose fields
-- replace the vendor's documented limits (see `envclone.limiter`; Kontent.ai:
-- 10/s, 400/min, one at a time per environment); `rate_limit_dict`: inside
-- OpenResty, a `lua_shared_dict` that shares the limits across workers;
-- `rate_limit_store`: `"redis://[user:pass@]host:port/db"` shares them with
-- every process naming that Redis (default: `ENVCLONE_RATE_LIMIT_STORE`;
-- doc/limits.md), `rate_limit_store_failure`: "local" (default) or "closed".
-- @tparam table opts
function envclone.versori(opts) return new_client("versori", opts, 3) end

--- Qovery client. `token`: an API token goes as `Authorization: Token <t>`,
-- a JWT (three base64url segments) as `Authorization: Bearer <jwt>`
-- (Qovery's OpenAPI securitySchemes); `token_type = "Token" | "Bearer"`
-- overrides the guess. Other options as for `versori`.
function envclone.qovery(opts) return new_client("qovery", opts, 3) end

--- Kontent.ai Management API client (`api_key`: Bearer). Options as for `versori`.
function envclone.kontent(opts) return new_client("kontent", opts, 3) end

--- Droplit client (`token`: sent raw in `authorization`). Options as for `versori`.
function envclone.droplit(opts) return new_client("droplit", opts, 3) end

return envclone
