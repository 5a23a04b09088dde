--- envclone: clone and create environments on Versori, Qovery, Kontent.ai
-- and Droplit from Lua.
--
--     local envclone = require("envclone")
--     local kontent = envclone.kontent{ api_key = os.getenv("KONTENT_API_KEY") }
--     local env, err = kontent:clone_environment{ environment_id = id, name = "Develop" }
--
-- One constructor per vendor; one method per operation, named and
-- argued as on the vendor's page. Expected failures return `nil, err`
-- (see the README for the error object); programmer errors raise.
-- @module envclone
local core = require("envclone.core")
local runtime = require("envclone.runtime")

-- Modules a plain call does not run are loaded on first use, so a process
-- that makes one call parses only what that call needs (retries, waiters
-- and the rate limiter load when a call fails, waits or is limited).
local function lazy(name)
  return setmetatable({}, { __index = function(proxy, key)
    local m = require(name)
    setmetatable(proxy, { __index = m })
    return m[key]
  end })
end
local retry = lazy("envclone.retry")
local wait = lazy("envclone.wait")

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

-- pcall may span a yield (a batch task's sleeps and sends) everywhere but in
-- PUC Lua 5.1.
local pcall_yields = _VERSION ~= "Lua 5.1" or type(rawget(_G, "jit")) == "table"

-- Options the Lua layer owns; everything else goes to the C core, which
-- rejects what it does not know.
local layer_options = { retry = true, on_retry = "function", log = "function", transport = true,
  pool_size = "number", keepalive_timeout = "number", rate_limit = true, rate_limit_dict = true }
-- Per-call arguments the Lua layer owns.
local call_options = { retry = true, wait = true, wait_timeout = "number", wait_interval = "number",
  wait_grace = "number", on_progress = "function" }

-- Tables are read raw (next, rawget): a caller's __index or __pairs must not
-- run in the middle of a call. `level`: of a raise, as error's (default 4).
local function split(t, owned, what, level)
  local mine, rest = {}, {}
  for k, v in next, t do
    if owned[k] then
      if owned[k] ~= true and v ~= nil and type(v) ~= owned[k] then
        error(string.format("envclone: %s '%s' must be a %s, got %s", what, k, owned[k], type(v)), level or 4)
      end
      mine[k] = v
    else
      rest[k] = v
    end
  end
  return mine, rest
end

local function has_any(t, owned)
  for k in pairs(owned) do
    if rawget(t, k) ~= nil then return true end
  end
  return false
end

local Client = {}
local vendor_methods = {}   -- vendor -> method table

-- Operations that take `wait = true`, and the waiter that follows them
-- (the `waiter` column of the operation table).
local waiters = {}
for _, op in ipairs(core.operations) do
  if op.waiter then waiters[op.vendor .. "." .. op.name] = op.waiter.name end
end
--- The operations that take `wait = true`: `"vendor.operation"` -> the
-- waiter method that follows them (e.g. `"kontent.clone_environment"` ->
-- `"wait_for_cloning"`). Read it; do not change it.
envclone.waiters = waiters

-- The per-call options of operation `name` ("vendor.operation"), split
-- from its arguments: raises (at `level`, as error's) on one it cannot
-- honour, before anything is sent -- a create must never be made first and
-- refused after (the wait options are only read once the clone exists).
local wait_numbers = { "wait_timeout", "wait_interval", "wait_grace" }
local function check_call_options(opts, name, level)
  if opts.wait ~= nil and type(opts.wait) ~= "boolean" then
    error("envclone: argument 'wait' must be a boolean, got " .. type(opts.wait), level + 1)
  end
  if opts.wait and not waiters[name] then
    error("envclone: wait = true is not supported by " .. name, level + 1)
  end
  for _, k in ipairs(wait_numbers) do
    local v = opts[k]
    -- NaN fails every comparison
    if v ~= nil and not (v >= 0 and v < math.huge) then
      error("envclone: argument '" .. k .. "' must be a finite, non-negative number of seconds, got "
        .. tostring(v), level + 1)
    end
  end
end

-- b:add's check of a call's arguments (`args` a table): what the call itself
-- checks before sending (make_method), its retry policy included.
local function check_call_args(name, args, level)
  if has_any(args, call_options) then
    local opts = split(args, call_options, "argument", level + 1)
    check_call_options(opts, name, level + 1)
    if opts.retry ~= nil then
      local ok, perr = pcall(retry.policy, opts.retry)
      -- raised here, at the caller of b:add, not where retry.policy points
      if not ok then error((tostring(perr):gsub("^[^\n]-:%d+: (envclone:)", "%1")), level + 1) end
    end
  end
end

-- Does a call's first attempt skip the Lua layer (one C call over
-- libcurl, the retry loop only after a failure)? Not with a limiter, a log
-- hook or a transport other than libcurl, nor once closed: new_client puts
-- the clients that may in `fast_clients` (client -> its handle) and close()
-- takes them out. A table, because make_method reads it before any other
-- check on the path every call takes: a read cannot raise whatever `self`
-- is, and one read stands for getmetatable(self) and three fields (in Lua
-- 5.4 a call to a C function such as getmetatable costs about 500
-- instructions and a field read about 100, callgrind). Weak keys: a client
-- nobody holds is still collected.
local fast_clients = setmetatable({}, { __mode = "k" })

local function first_attempt_in_c(self)
  return fast_clients[self] ~= nil and (self._transport == "curl" or rawget(_G, "ngx") == nil)
end

local function make_method(op)
  local waiter = waiters[op.vendor .. "." .. op.name]
  local call = op.call
  return function(self, args)
    -- The plain sequential call over libcurl (no limiter, no log hook): the
    -- first attempt is one C call, and the retry loop takes over only when
    -- it failed. The C core hands the call back untouched (no value at all)
    -- when args hold a call option or it runs in a coroutine (a batch task).
    -- first_attempt_in_c's test, written out: a Lua call costs about 200
    -- instructions here.
    local handle = fast_clients[self]
    if handle ~= nil and (self._transport == "curl" or rawget(_G, "ngx") == nil) then
      local res, err, req = call(handle, args, call_options)
      if res ~= nil or err ~= nil then
        if req == nil then return res, err end
        return retry.call(self, op, args, self._retry, err, req)
      end
    end
    if getmetatable(self) == nil or self._handle == nil then
      error("envclone: call " .. op.name .. " with ':' (client:" .. op.name .. "{...})", 2)
    end
    if self._closed then
      error("envclone: the " .. op.vendor .. " client is closed", 2)
    end
    local policy = self._retry
    local opts
    if type(args) == "table" and has_any(args, call_options) then
      opts, args = split(args, call_options, "argument", 3)
      -- checked before anything is sent: never create first and complain after
      check_call_options(opts, op.vendor .. "." .. op.name, 2)
      if opts.retry ~= nil then policy = retry.policy(opts.retry, self._retry) end
    end
    local res, err = retry.call(self, op, args, policy)
    if res == nil or not (opts and opts.wait) then
      return res, err
    end
    local w = op.waiter
    local new_id = type(res) == "table" and res[w.id_result] or nil
    local wargs = { [w.id_arg] = new_id, timeout = opts.wait_timeout, interval = opts.wait_interval,
      grace = opts.wait_grace, on_progress = opts.on_progress }
    -- The clone exists: an error raised from here on (on_progress, or the
    -- log hook on a poll) must not lose it. Protected where pcall may span
    -- the waiter's yields (everywhere but a batch task under PUC Lua 5.1).
    local ok, state, werr
    if pcall_yields or runtime.scheduler() == nil then
      ok, state, werr = pcall(self[waiter], self, wargs)
      if not ok then error(retry.raised_after_create(state, op, res), 0) end
    else
      state, werr = self[waiter](self, wargs)
    end
    if not state then
      -- the clone exists; only the wait failed (just the id: the full answer
      -- holds Kontent's API key, and errors get logged)
      werr.created = { [w.id_result] = new_id }
      return nil, werr
    end
    return res, state
  end
end

for _, op in ipairs(core.operations) do
  vendor_methods[op.vendor] = vendor_methods[op.vendor] or {}
  vendor_methods[op.vendor][op.name] = make_method(op)
end

-- The one waiter, made from an operation's `waiter` column: poll `w.poll`
-- until the answer's `w.state_field` is `w.done` (a result) or `w.failed`
-- (an error of kind "state"); `w.pending` means "not yet". A new object may
-- not be visible for a moment after the create: `w.not_yet_status` during
-- the first `grace` seconds means "not visible yet" and the waiter keeps
-- polling. A state the vendor never documented (neither of the three: say
-- "canceled") may be a new final state or a new step on the way: the waiter
-- keeps polling while it lasts, for `unknown_timeout` seconds at most (60;
-- a documented state seen again starts the count afresh), then fails with
-- kind "state", reason "unknown_state" -- not the whole wait's timeout.
local function finite_seconds(v)
  return type(v) == "number" and v >= 0 and v < math.huge
end

local function make_waiter(vendor, w)
  local allowed = { [w.id_arg] = true, timeout = true, interval = true, max_interval = true, grace = true,
    unknown_timeout = true, on_progress = true }
  local not_yet = { [w.state_field] = "not_visible_yet" }
  local documented = table.concat({ w.pending, w.done, w.failed }, ", ")
  return function(self, args)
    if type(args) ~= "table" then
      error("envclone: " .. w.name .. " takes a table of arguments", 2)
    end
    for k in pairs(args) do
      if not allowed[k] then
        error("envclone: " .. w.name .. ": unknown argument '" .. tostring(k) .. "'", 2)
      end
    end
    local id = args[w.id_arg]
    local grace = args.grace or 30
    if not finite_seconds(grace) then
      error("envclone: " .. w.name .. ": grace must be a finite, non-negative number of seconds", 2)
    end
    local unknown_timeout = args.unknown_timeout or 60
    if not finite_seconds(unknown_timeout) then
      error("envclone: " .. w.name .. ": unknown_timeout must be a finite, non-negative number of seconds", 2)
    end
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
        return nil, err
      end
      local s = type(state) == "table" and state[w.state_field]
      if s == w.done then return true, state end
      if s == w.failed then
        return nil, core.error{ kind = "state", vendor = vendor, operation = w.name,
          message = w.failed_message, state = state }
      end
      if s == w.pending then
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
      on_progress = args.on_progress, what = w.name, vendor = vendor })
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
for _, op in ipairs(core.operations) do
  if op.waiter then vendor_methods[op.vendor][op.waiter.name] = make_waiter(op.vendor, op.waiter) end
end

local transports = { auto = true, curl = true, cosocket = true }

--- The transport of one call: nil for libcurl (the C core performs the
-- request itself), else a table with `perform(request)`. "auto" is decided
-- per call, so a client built in init_by_lua still works in a request
-- handler; inside nginx it never falls back to blocking libcurl (where
-- cosockets are not allowed the cosocket transport answers "unavailable").
function Client._transport_for(self)
  local t = self._transport
  if t == "curl" or (t == "auto" and type(rawget(_G, "ngx")) ~= "table") then
    return nil
  end
  if type(t) == "table" then return t end
  local c = self._cosocket
  if not c then
    c = require("envclone.cosocket").transport(self._pool)
    self._cosocket = c
  end
  return c
end

--- Closes the client: frees its connection and wipes its credentials (once
-- no call made before is in flight: their answers are masked with them).
function Client.close(self)
  self._closed = true
  fast_clients[self] = nil
  if self._handle then self._handle:close() end
end

local function client_tostring(self)
  return tostring(self._handle)
end

local metatables = {}
for vendor, methods in pairs(vendor_methods) do
  for k, v in pairs(Client) do methods[k] = v end
  metatables[vendor] = {
    __index = methods,
    __tostring = client_tostring,
    __close = Client.close,
    __name = "envclone." .. vendor,
  }
end

-- What the batch module needs of the client layer (made on first use).
local batch_env
local function get_batch_env()
  if not batch_env then
    batch_env = { callables = require("envclone.batch").callables(vendor_methods, metatables),
      call_options = call_options, first_attempt_in_c = first_attempt_in_c, check_call_args = check_call_args }
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

local function new_client(vendor, opts, level)
  if opts ~= nil and type(opts) ~= "table" then
    error("envclone." .. vendor .. ": options must be a table, got " .. type(opts), level)
  end
  local mine, rest = split(opts or {}, layer_options, "option")
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
    or (transport == "auto" and type(rawget(_G, "ngx")) == "table")) then
    error("envclone." .. vendor .. ": http_version = \"2\" needs transport = 'curl': the cosocket transport "
      .. "speaks HTTP/1.1 only", level)
  end
  local limit = false
  if mine.rate_limit_dict ~= nil or mine.rate_limit ~= false
    and (mine.rate_limit ~= nil or core.vendors[vendor].rate_limit ~= nil) then
    local settings = handle:settings()
    local okl
    okl, limit = pcall(require("envclone.limiter").new, vendor, settings.base_url, mine.rate_limit,
      mine.rate_limit_dict, settings.timeout)
    if not okl then error(limit, level) end
  end
  local client = setmetatable({
    _limit = limit,
    _handle = handle,
    _retry = mine.retry ~= nil and retry.policy(mine.retry) or nil, -- nil: retry.defaults
    _hooks = { on_retry = mine.on_retry, log = mine.log },
    _transport = transport,
    _pool = { size = mine.pool_size, idle = mine.keepalive_timeout },
    _closed = false,
  }, metatables[vendor])
  if not limit and mine.log == nil and (transport == "auto" or transport == "curl") then
    fast_clients[client] = handle -- the first attempt may skip the Lua layer (first_attempt_in_c)
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
-- OpenResty, a `lua_shared_dict` that shares the limits across workers.
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
