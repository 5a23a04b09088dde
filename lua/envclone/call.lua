--- The path of one call: the one place that decides how a call goes, and
-- the only reader of a client's private fields (`_handle`, `_transport`,
-- `_limit`, `_retry`, `_hooks`, `_pool`, `_closed`, `_cosocket`) outside
-- init.lua's constructor. A call takes one of three paths:
--
-- 1. **the C fast path**: a client with no limiter, no log hook and the
--    libcurl transport (`call.fast_handle`): one C call (`op.call`) builds,
--    sends and parses; the retry loop runs only after a failure. Inside a
--    batch the same calls go onto the batch's multi handle (`m:fill`).
-- 2. **request + transport** (`call.run`): `op.request` builds the request
--    once, `call.attempt` waits for the rate limiter and sends it through
--    the client's transport (libcurl, cosockets, or the caller's table),
--    `retry.loop` sends it again while the policy allows.
-- 3. **the batch scheduler**: inside a batch task, `call.exchange` hands
--    the request to the task's scheduler (`runtime.scheduler()`), which
--    puts it on the batch's multi handle (or, inside nginx, a cosocket).
--
-- Retries, waiters and the rate limiter are loaded on first use: a process
-- that makes one plain call parses only what that call needs.
-- @module envclone.call
local core = require("envclone.core")
local runtime = require("envclone.runtime")
local options = require("envclone.options")

local call = {}

--- A proxy that loads module `name` when a field of it is first read.
-- @tparam string name
-- @treturn table
function call.lazy(name)
  return setmetatable({}, { __index = function(proxy, key)
    local m = require(name)
    setmetatable(proxy, { __index = m })
    return m[key]
  end })
end
local retry = call.lazy("envclone.retry")
local limiter = call.lazy("envclone.limiter")
local reconcile = call.lazy("envclone.reconcile")

local pcall_yields = runtime.pcall_yields

--- Per-call arguments the Lua layer owns (name -> kind, see
-- `envclone.options`); everything else goes to the C core.
call.call_options = { retry = true, wait = "boolean", wait_timeout = "seconds", wait_interval = "seconds",
  wait_grace = "seconds", on_progress = "function", if_exists = "string", reconcile = true }
local call_options = call.call_options

--- The operations that take `wait = true`: `"vendor.operation"` -> the
-- waiter method that follows them (the `waiter` column of the operation table).
call.waiters = {}
local waiters = call.waiters
--- The operation rows by `"vendor.operation"`.
call.rows = {}
for _, op in ipairs(core.operations) do
  call.rows[op.vendor .. "." .. op.name] = op
  if op.waiter then waiters[op.vendor .. "." .. op.name] = op.waiter.name end
end

--- Does a call of `op` need the Lua layer from its first attempt (a create
-- looked up by key, a teardown)? Such calls never take the C fast path
-- (`op.call`, a batch's `op.start`).
-- @tparam table op
-- @treturn boolean
function call.needs_lua(op)
  return op.lookup ~= nil or op.deletes == true
end

-- The per-call options of operation `name` ("vendor.operation") that a
-- type check cannot tell: raises (at `level`, as error's) on one it cannot
-- honour, before anything is sent -- a create must never be made first and
-- refused after (the wait options are only read once the clone exists).
local function check_wait(opts, name, level)
  if opts.wait and not waiters[name] then
    error("envclone: wait = true is not supported by " .. name, level + 1)
  end
  if opts.if_exists ~= nil or opts.reconcile ~= nil then
    local row = call.rows[name]
    if not (row and row.lookup) then
      error("envclone: " .. (opts.if_exists ~= nil and "if_exists" or "reconcile") .. " is not supported by "
        .. name .. " (it has no lookup by key)", level + 1)
    end
    reconcile.check_if_exists(opts.if_exists, level + 1)
    reconcile.policy(opts.reconcile, nil, level + 1)
  end
end

-- The per-call options of `args` split from its arguments and checked.
-- @treturn table opts, table the operation's own arguments
local function split_call_options(args, name, level)
  local rest = {}
  local opts = options.check(args, call_options, "envclone", "argument", level + 1, rest)
  check_wait(opts, name, level + 1)
  return opts, rest
end

--- b:add's check of a call's arguments (`args` a table): what the call
-- itself checks before sending, its retry policy included. Raises at `level`.
-- @tparam string name "vendor.operation"
-- @tparam table args
-- @tparam integer level
function call.check_args(name, args, level)
  if options.has_any(args, call_options) then
    local opts = split_call_options(args, name, level + 1)
    if opts.retry ~= nil then
      local ok, perr = pcall(retry.policy, opts.retry)
      -- raised here, at the caller of b:add, not where retry.policy points
      if not ok then error((tostring(perr):gsub("^[^\n]-:%d+: (envclone:)", "%1")), level + 1) end
    end
  end
end

-- Clients whose first attempt may skip the Lua layer (one C call over
-- libcurl, the retry loop only after a failure): not with a limiter, a log
-- hook or a transport other than libcurl, nor once closed. The constructor
-- puts them here (client -> its handle, `call.allow_fast_path`) and close()
-- takes them out. A table, because the method reads it before any other
-- check on the path every call takes: a read cannot raise whatever `self`
-- is, and one read stands for getmetatable(self) and three fields (in Lua
-- 5.4 a call to a C function such as getmetatable costs about 500
-- instructions and a field read about 100, callgrind). Weak keys: a client
-- nobody holds is still collected.
local fast_clients = setmetatable({}, { __mode = "k" })

--- Lets `client`'s first attempts take the C fast path (the constructor
-- calls it for a client with no limiter, no log hook, transport "auto" or
-- "curl").
-- @tparam table client
-- @param handle its core handle
function call.allow_fast_path(client, handle)
  fast_clients[client] = handle
end

--- The core handle of `client` when its call's first attempt may be one C
-- call over libcurl (`op.call` or a batch's `m:fill`), else false.
-- @tparam table client
-- @return handle or false
function call.fast_handle(client)
  local handle = fast_clients[client]
  if handle ~= nil and (client._transport == "curl" or runtime.ngx() == nil) then return handle end
  return false
end

--- The core handle of `client` (the C client userdata).
-- @tparam table client
function call.handle(client)
  return client._handle
end

--- The transport of one call: nil for libcurl (the C core performs the
-- request itself), else a table with `perform(request)`. "auto" is decided
-- per call, so a client built in init_by_lua still works in a request
-- handler; inside nginx it never falls back to blocking libcurl (where
-- cosockets are not allowed the cosocket transport answers "unavailable").
-- @tparam table client
-- @return nil or a transport table
function call.transport(client)
  local t = client._transport
  if t == "curl" or (t == "auto" and runtime.ngx() == nil) then
    return nil
  end
  if type(t) == "table" then return t end
  local c = client._cosocket
  if not c then
    c = require("envclone.cosocket").transport(client._pool)
    client._cosocket = c
  end
  return c
end

--- One exchange of `req`: through the batch's loop (inside a batch task),
-- the client's libcurl handle (`transport` nil) or the transport table.
-- @param transport nil (libcurl) or a table with `perform(request)`
-- @param req request userdata
-- @return result, or nil and an error object
function call.exchange(transport, req)
  local scheduler = runtime.scheduler()
  if scheduler then return scheduler:send(transport, req) end
  if transport == nil then return req:send() end
  return retry.perform(transport, req)
end
local exchange = call.exchange

--- One attempt of `req`: waits for the client's rate limits (`limit`, the
-- client's limiter or false), then sends it (`call.exchange`).
-- @param limit the client's limiter, or false
-- @param transport nil (libcurl) or a table with `perform(request)`
-- @param req request userdata (`op.request`)
-- @tparam table args the call's arguments (the limiter's key is read from them)
-- @return result, or nil and an error object
function call.attempt(limit, transport, req, args)
  local ticket, lerr
  if limit then
    ticket, lerr = limiter.admit(limit, args)
    -- a Redis store down with rate_limit_store_failure = "closed": not sent
    if ticket == false then return nil, lerr end
  end
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

--- Calls op until it succeeds or must stop (`retry.loop`). The request is
-- built once (the C core validates it: nothing is sent on bad input) and
-- sent again as is. Every attempt, retries and waiter polls included,
-- counts against the client's rate limits.
-- @tparam table client the Lua client
-- @tparam table op operation descriptor
-- @tparam table args operation arguments
-- @tparam[opt] table policy for this call (default: the client's, else `retry.defaults`)
-- @param[opt] first_err the error of a first attempt the caller already
--   made over libcurl (`op.call`: the fast path)
-- @param[opt] first_req the request of that attempt
-- @return result, or nil and an error object with `attempts` set
function call.run(client, op, args, policy, first_err, first_req)
  policy = policy or client._retry or retry.defaults
  local transport = call.transport(client)
  local limit = client._limit
  local res, err, req
  if first_err then
    err, req = first_err, first_req
  elseif transport == nil and not limit and not runtime.scheduler() then
    -- libcurl, nothing to wait for: build, send and parse in one C call;
    -- the request comes back only when the exchange failed
    res, err, req = op.call(client._handle, args)
  else
    req, err = op.request(client._handle, args)
    if req then res, err = call.attempt(limit, transport, req, args) end
  end
  return retry.loop(op, args, policy, client._hooks, call.attempt, limit, transport, res, err, req)
end

-- The id a waiter follows: from the create's answer (`id_result`) or, for
-- a deletion, from the call's own arguments (`id_from_args`).
local function waited_id(w, res, args)
  if w.id_from_args then return rawget(args, w.id_from_args) end
  return type(res) == "table" and res[w.id_result] or nil
end

-- Waits after `op` succeeded with `res` (`wait = true`): the row's waiter,
-- with the call's wait options. Returns res and the last state, or nil and
-- the waiter's error with what was made in `created`.
local function wait_after(self, op, res, args, opts)
  local w = op.waiter
  local id = waited_id(w, res, args)
  local id_name = w.id_from_args or w.id_result
  local wargs = { [w.id_arg] = id, timeout = opts.wait_timeout, interval = opts.wait_interval,
    grace = opts.wait_grace, on_progress = opts.on_progress }
  -- The clone exists: an error raised from here on (on_progress, or the
  -- log hook on a poll) must not lose it. Protected where pcall may span
  -- the waiter's yields (everywhere but a batch task under PUC Lua 5.1).
  local ok, state, werr
  if pcall_yields or runtime.scheduler() == nil then
    ok, state, werr = pcall(self[w.name], self, wargs)
    -- (an interrupt in the wait raises kind "interrupted" with `created`)
    if not ok then error(runtime.interrupted_item(retry.raised_after_create(state, op, res)), 0) end
  else
    state, werr = self[w.name](self, wargs)
  end
  if not state then
    -- the object exists (or its deletion started); only the wait failed
    -- (just the id: the full answer holds Kontent's API key, and errors
    -- get logged)
    werr.created = { [id_name] = id }
    return nil, werr
  end
  if type(res) == "table" and op.deletes then res.state = state end
  return res, state
end

-- Why a client's creates cannot be looked up by key (a credential or a
-- setting it lacks, or reconcile = false), per client and operation:
-- false when they can. Asked once per client (weak keys).
local lookup_why_not = setmetatable({}, { __mode = "k" })
local function why_not(self, op)
  local per = lookup_why_not[self]
  if not per then
    per = {}
    lookup_why_not[self] = per
  end
  local why = per[op]
  if why == nil then
    why = self._reconcile == false and "reconcile = false" or reconcile.client_why_not(op, self._handle) or false
    per[op] = why
  end
  return why
end

-- A create that goes without its lookup: a lost answer says why.
local function unlooked(res, err, why)
  if res == nil and err and err.maybe_applied and err.not_reconciled == nil then err.not_reconciled = why end
  return res, err
end

--- The method of operation `op` (a client's `op.name`): the C fast path
-- first, else the checks, `call.run` (through `envclone.reconcile` for a
-- create with a lookup and a teardown), and the waiter when `wait = true`.
-- @tparam table op the operation's row
-- @treturn function method(self, args)
function call.method(op)
  local name = op.vendor .. "." .. op.name
  local op_call = op.call
  local lookup, deletes = op.lookup ~= nil, op.deletes == true
  local needs_lua = lookup or deletes
  return function(self, args)
    -- The plain sequential call over libcurl (no limiter, no log hook): the
    -- first attempt is one C call, and the retry loop takes over only when
    -- it failed. The C core hands the call back untouched (no value at all)
    -- when args hold a call option or it runs in a coroutine (a batch task).
    -- call.fast_handle's test written out, and runtime.ngx()'s as
    -- `rawget(_G, "ngx") == nil`: a Lua call costs about 200 instructions here.
    local handle = fast_clients[self]
    if handle ~= nil and (self._transport == "curl" or rawget(_G, "ngx") == nil) then
      -- a create whose client cannot look it up goes as any other call
      local why = lookup and why_not(self, op)
      if not needs_lua or why then
        local res, err, req = op_call(handle, args, call_options)
        if res ~= nil or err ~= nil then
          if req == nil then
            if why then return unlooked(res, err, why) end
            return res, err
          end
          if not why then return call.run(self, op, args, self._retry, err, req) end
          local r, e = call.run(self, op, args, self._retry, err, req)
          return unlooked(r, e, why)
        end
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
    if type(args) == "table" and options.has_any(args, call_options) then
      -- checked before anything is sent: never create first and complain after
      opts, args = split_call_options(args, name, 2)
      if opts.retry ~= nil then policy = retry.policy(opts.retry, self._retry) end
    end
    local res, err
    if lookup and type(args) == "table" then
      local rpolicy = self._reconcile
      if opts and opts.reconcile ~= nil then rpolicy = reconcile.policy(opts.reconcile, self._reconcile, 2) end
      if rpolicy == nil then rpolicy = reconcile.defaults end
      res, err = reconcile.create(self, self._handle, op, args, opts and opts.if_exists or "error", rpolicy,
        function(a) return call.run(self, op, a, policy) end)
    elseif deletes then
      res, err = reconcile.delete(function() return call.run(self, op, args, policy) end)
      if res and res.already_gone then return res end
    else
      res, err = call.run(self, op, args, policy)
    end
    if res == nil or not (opts and opts.wait) then
      return res, err
    end
    return wait_after(self, op, res, args, opts)
  end
end

--- Closes `client`: frees its connection and wipes its credentials (once
-- no call made before is in flight: their answers are masked with them).
-- @tparam table client
function call.close(client)
  client._closed = true
  fast_clients[client] = nil
  if client._handle then client._handle:close() end
end

--- The text of `client` (its handle's: the vendor and base URL, no secrets).
-- @tparam table client
-- @treturn string
function call.tostring(client)
  return tostring(client._handle)
end

return call
