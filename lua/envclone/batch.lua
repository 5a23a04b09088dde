--- Batches: many calls and tasks at once, on one thread.
--
--     local b = envclone.batch{ max_in_flight = 16, on_progress = function(done, total, i, result) end }
--     local i = b:add(kontent, "clone_environment", { environment_id = E, name = "pr-101" })
--     local j = b:add(function()
--       local env = assert(kontent:clone_environment{ environment_id = E, name = "pr-102", wait = true })
--       return assert(kontent:rename_environment{ environment_id = env.id, name = "PR 102" })
--     end)
--     local results = b:run()   -- results[i] = { ok = true, value =, extra = } or { ok = false, err = }
--
-- Every item runs as a coroutine (a task). Every envclone call inside a
-- task, with its retries' back-off, its waiter's sleeps and its rate-limit
-- waits, yields to the batch's loop instead of blocking, so the tasks
-- progress together. In plain Lua the loop drives one libcurl multi handle
-- (`core.multi`) and sleeps in `curl_multi_poll`; inside nginx each task is
-- an `ngx.thread` and requests go over cosockets, with the same results.
-- `max_in_flight` bounds the requests on the wire at any moment; a task
-- waiting for a slot, a timer or a rate limit holds none.
--
-- The yields happen in Lua (`envclone.runtime.sleep`, `scheduler:send`),
-- never inside a C function, so tasks also run under LuaJIT. A task may call
-- envclone inside `pcall` under Lua 5.2+ and LuaJIT (both yield across it),
-- not under PUC Lua 5.1. Coroutines a task creates itself are not tasks:
-- envclone calls inside them block as outside a batch. A task's own bare
-- `coroutine.yield()` yields to the scheduler: the loop polls the wire (and
-- fires due timers) once, then resumes it with no values.
--
-- The files: this entry (options, `b:add`, results, the choice of loop);
-- `envclone.batch.plain` (the loop over one libcurl multi handle),
-- `envclone.batch.nginx` (one ngx.thread per item), `envclone.heap`
-- (the plain loop's timers).
-- @module envclone.batch
local core = require("envclone.core")
local runtime = require("envclone.runtime")
local call = require("envclone.call")
local options = require("envclone.options")

local batch = {}

local Batch = {}
Batch.__index = Batch

local DEFAULT_MAX_IN_FLIGHT = 16

-- The key of a vendor's name in a table of env.callables.
local VENDOR = setmetatable({}, { __name = "envclone.batch.vendor" })

-- The rows of `core.operations`, by "vendor.name".
local row_of_name = {}
for _, op in ipairs(core.operations) do
  row_of_name[op.vendor .. "." .. op.name] = op
end

--- What `b:add` accepts of the clients of a client layer (init.lua): for
-- each client metatable, the operations and waiters by name, as
-- `{ method, start, is_operation }` (start: the operation's `start`
-- function, so that the call may start without a task (see run_plain);
-- false for a waiter and for a call that needs the Lua layer first),
-- and the vendor's name under a private key.
-- @tparam table vendor_methods vendor -> { name -> method }
-- @tparam table metatables vendor -> the metatable of its clients
-- @treturn table client metatable -> callables
function batch.callables(vendor_methods, metatables)
  local by_mt = {}
  for vendor, methods in pairs(vendor_methods) do
    local t = { [VENDOR] = vendor }
    for name, fn in pairs(methods) do
      if type(fn) == "function" and name:sub(1, 1) ~= "_" and name ~= "close" then
        local op = row_of_name[vendor .. "." .. name]
        -- a create looked up by key and a teardown start in a task: their
        -- first attempt is not one C call
        t[name] = { fn, op and not call.needs_lua(op) and op.start or false, op ~= nil }
      end
    end
    by_mt[metatables[vendor]] = t
  end
  return by_mt
end

local option_kinds = { max_in_flight = "number", on_progress = "function" }

--- A new batch (`envclone.batch`).
-- @tparam[opt] table opts `max_in_flight` (16: requests on the wire at once,
--   a positive integer), `on_progress(done, total, i, result)` (after each
--   item finishes)
-- @tparam table env the client layer: `callables` (see batch.callables)
-- @treturn table the batch
function batch.new(opts, env)
  if opts ~= nil and type(opts) ~= "table" then
    error("envclone.batch: options must be a table, got " .. type(opts), 3)
  end
  opts = opts or {}
  options.check(opts, option_kinds, "envclone.batch", "option", 3)
  local n = opts.max_in_flight or DEFAULT_MAX_IN_FLIGHT
  if n < 1 or n ~= math.floor(n) or n == math.huge then
    error("envclone.batch: max_in_flight must be a positive integer", 3)
  end
  -- items, 4 values each (m:fill reads them): a call is (method, client,
  -- args, its operation's start function or false), a task (fn, nil, nil,
  -- false)
  return setmetatable({ _items = {}, _n = 0, _max = n, _on_progress = opts.on_progress,
    _state = "new", _env = env }, Batch)
end

--- Adds a call or a task; returns its index in the results.
-- `b:add(client, "operation", args)`: a call (an operation or waiter the
-- client has; its arguments are validated when the batch runs, and a call
-- that fails validation gets its own `kind = "validation"` result and sends
-- nothing). `b:add(function() ... end)`: a task; its envclone calls yield
-- to the batch. Raises (a programmer error) on anything else, on an
-- operation the client does not have, on a per-call option the call would
-- refuse (`wait = true` where no waiter follows, a negative or NaN
-- `wait_timeout`, a malformed `retry`, ...), and once `run` has started.
-- @treturn integer index
function Batch:add(what, operation, args)
  if getmetatable(self) ~= Batch then
    error("envclone.batch: call add with ':' (b:add(...))", 2)
  end
  if self._state ~= "new" then
    error("envclone.batch: add after run() has started", 2)
  end
  local n = self._n + 1
  -- a client's metatable leads to what `operation` names (see
  -- env.callables); a table that is not a client, a string, ... to nothing
  local callable = self._env.callables[getmetatable(what)]
  if callable then
    local c = callable[operation]
    if not c then
      error("envclone.batch: the " .. callable[VENDOR] .. " client has no operation '"
        .. tostring(operation) .. "'", 2)
    end
    -- an operation's per-call options (wait, wait_timeout, retry, ...) are
    -- checked now, as the call checks them before sending: a programmer error
    if c[3] and type(args) == "table" then
      call.check_args(callable[VENDOR] .. "." .. operation, args, 2)
    end
    local items, k = self._items, 4 * n
    items[k - 3], items[k - 2], items[k - 1], items[k] = c[1], what, args, c[2]
  elseif type(what) == "function" then
    local items, k = self._items, 4 * n
    items[k - 3], items[k] = what, false
  else
    error("envclone.batch: add takes a client and an operation name, or a function; got " .. type(what), 2)
  end
  self._n = n
  return n
end

-- The result record of an item that ended with `ok` (it did not raise) and
-- values a, b.
local function result_of(ok, a, b)
  if not ok then
    if getmetatable(a) == core.error_mt then return { ok = false, err = a } end
    return { ok = false, err = core.error{ kind = "task", message = tostring(a) } }
  end
  -- a call (or a task) that returned nil, err failed: a task's err that is
  -- not an error object (`return nil, "message"`) becomes one of kind "task"
  if a == nil and b ~= nil then
    if getmetatable(b) == core.error_mt then return { ok = false, err = b } end
    return { ok = false, err = core.error{ kind = "task", message = tostring(b) } }
  end
  return { ok = true, value = a, extra = b }
end

local function record(self, results, i, ok, a, b)
  local r = result_of(ok, a, b)
  results[i] = r
  if r.ok then results.succeeded = results.succeeded + 1 else results.failed = results.failed + 1 end
  self._done = self._done + 1
  if self._on_progress then self._on_progress(self._done, self._n, i, r) end
end

--- Runs every item; returns the results in the order added: `results[i] =
-- { ok = true, value = <first result>, extra = <second result> }` or
-- `{ ok = false, err = <error object> }` (a task that raised something other
-- than an envclone error gets one with `kind = "task"`), and
-- `results.succeeded`, `results.failed`. One failure never stops the others.
--
-- Interrupts, when the program asked for them (`core.catch_signals{ "INT",
-- "TERM" }`; the library installs no handler of its own): once a caught
-- signal is pending (`core.interrupted()`, also one that came before
-- `run`), no more items start; items asleep (a waiter, a back-off, a
-- rate-limit wait) or waiting for a slot end with kind "interrupted"; the
-- requests on the wire run to their answer or their timeout. A second
-- signal abandons those (kind "interrupted", `sent` and `maybe_applied`
-- true). Then `run` raises an error object: kind "interrupted", `signal`
-- ("SIGINT"), `results` (the table above, every item filled in: an item
-- never started is `{ ok = false, err = { kind = "interrupted", sent =
-- false, maybe_applied = false } }`; one cut off after sending has
-- `maybe_applied = true`; a wait cut off after its create succeeded has
-- `created`, the new object's id as a waiter error has it). The signal
-- stays pending until `core.clear_interrupted()`.
-- @treturn table results
-- @raise kind "interrupted" (see above)
function Batch:run()
  if getmetatable(self) ~= Batch then
    error("envclone.batch: call run with ':' (b:run())", 2)
  end
  if self._state ~= "new" then
    error("envclone.batch: run() has already started", 2)
  end
  self._state = "running"
  self._done = 0
  local results = { succeeded = 0, failed = 0 }
  local signal
  if runtime.in_openresty() then
    signal = require("envclone.batch.nginx").run(self, results, record)
  else
    signal = require("envclone.batch.plain").run(self, results, record)
  end
  self._state = "done"
  self._items = {}
  if signal then
    for i = 1, self._n do
      if results[i] == nil then
        results[i] = { ok = false, err = runtime.interrupted_error(signal, { sent = false, maybe_applied = false },
          "not started: the batch was interrupted by " .. signal) }
        results.failed = results.failed + 1
      end
    end
    local e = runtime.interrupted_error(signal, nil, string.format(
      "the batch was interrupted by %s: %d succeeded, %d failed (err.results holds every item)", signal,
      results.succeeded, results.failed))
    e.results = results
    error(e, 2)
  end
  return results
end

return batch
