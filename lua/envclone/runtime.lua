--- The few things that differ between plain Lua and OpenResty: how to
-- sleep and how to read a monotonic clock. Everything else in envclone
-- is the same code in both.
-- @module envclone.runtime
local core = require("envclone.core")

local runtime = {}

-- The phases where nginx allows cosockets and ngx.sleep (lua-nginx-module's
-- "yieldable" contexts; "preread" is the stream module's). Everywhere else --
-- init, init_worker, set, balancer, header_filter, body_filter, log,
-- ssl_session_store, exit_worker, and any phase a later module adds --
-- they raise "API disabled in the context of ...": a list of the phases
-- that allow them, so a phase nobody listed is one where they do not.
local yieldable = { rewrite = true, server_rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true, preread = true }

--- The `ngx` table when the code runs inside nginx (OpenResty), else nil.
-- This is envclone's one test of the host: every other "are we in nginx"
-- goes through it or the functions below. (call.lua's fast path writes the
-- same test out, `rawget(_G, "ngx") == nil`: a Lua call there would cost
-- about 200 instructions on every call.)
-- @treturn table|nil
function runtime.ngx()
  local ngx = rawget(_G, "ngx")
  if type(ngx) == "table" then return ngx end
  return nil
end

--- Is the OpenResty API usable here (ngx present, in a phase that allows
-- cosockets and ngx.sleep)?
-- @treturn boolean
function runtime.in_openresty()
  local ngx = runtime.ngx()
  if not ngx or type(ngx.sleep) ~= "function" or not ngx.get_phase then
    return false
  end
  return yieldable[ngx.get_phase()] == true
end

--- The `ngx` table when cosockets may be used right now (inside nginx, in a
-- phase that allows them, `ngx.socket.tcp` present), else nil.
-- @treturn table|nil
function runtime.cosockets_available()
  local ngx = runtime.ngx()
  if runtime.in_openresty() and type(ngx.socket) == "table" and type(ngx.socket.tcp) == "function" then
    return ngx
  end
  return nil
end

--- The nginx worker's process id, or nil outside nginx (or where nginx
-- has no `ngx.worker.pid`).
-- @treturn number|nil
function runtime.worker_pid()
  local ngx = runtime.ngx()
  if ngx and ngx.worker and ngx.worker.pid then return ngx.worker.pid() end
  return nil
end

--- May `pcall` span a yield (a batch task's sleeps and sends)? Everywhere
-- but in PUC Lua 5.1 (LuaJIT and Lua 5.2+ yield across it).
runtime.pcall_yields = _VERSION ~= "Lua 5.1" or type(rawget(_G, "jit")) == "table"

-- Coroutines run by a batch (envclone.batch), and the batch that runs
-- each: weak keys, so a dropped batch's tasks are collected.
local schedulers = setmetatable({}, { __mode = "k" })

--- Marks coroutine `co` as a task of `scheduler` (an object with
-- `sleep(self, seconds)` and `perform(self, ...)`): envclone calls made
-- inside it yield to the scheduler instead of blocking.
-- @tparam thread co
-- @tparam table scheduler
function runtime.attach(co, scheduler)
  schedulers[co] = scheduler
end

--- The scheduler of the running coroutine, or nil outside a batch task.
-- @treturn table|nil
function runtime.scheduler()
  local co = coroutine.running()
  return co and schedulers[co] or nil
end

--- The error of an interrupt: kind "interrupted", `signal` ("SIGINT"),
-- and `fields` copied in (`sent`, `maybe_applied`, `created`, ...).
-- @tparam string signal
-- @tparam[opt] table fields
-- @tparam[opt] string message
-- @treturn table an error object
function runtime.interrupted_error(signal, fields, message)
  local e = core.error{ kind = "interrupted", message = message or ("interrupted by " .. tostring(signal)) }
  e.signal = signal
  for k, v in pairs(fields or {}) do e[k] = v end
  return e
end

--- Raises the interrupt's error (`interrupted_error`, `sent = false`)
-- when a signal caught by `core.catch_signals` is pending (see
-- `core.interrupted`); nothing otherwise. Nothing is ever pending in a
-- program that did not ask for signals.
function runtime.check_interrupt()
  local sig = core.interrupted()
  if sig then error(runtime.interrupted_error(sig, { sent = false }), 0) end
end

--- What a call or a batch item that an interrupt cut off reports: `err`
-- itself unless it is the interrupt's; then with `sent` and
-- `maybe_applied` true when anything of the item went on the wire (`sent`),
-- and, when the interrupt came in a waiter after the create succeeded (the
-- error `call.method` raises then: kind "hook", its `cause` the
-- interrupt's), an interrupt error carrying `created` (the new id).
-- @param err the error the item ended with
-- @tparam string signal the signal acted on
-- @tparam[opt] boolean sent whether the item put anything on the wire
-- @return the error to record
function runtime.interrupted_item(err, signal, sent)
  if type(err) ~= "table" then return err end
  local cause = err.cause
  if err.kind == "hook" and type(cause) == "table" and cause.kind == "interrupted" and err.created ~= nil then
    local e = runtime.interrupted_error(cause.signal or signal, { sent = true, maybe_applied = true,
      created = err.created, vendor = err.vendor, operation = err.operation },
      "interrupted by " .. tostring(cause.signal or signal) .. " while waiting; the create succeeded (see created)")
    return e
  end
  if err.kind ~= "interrupted" then return err end
  err.sent = sent == true or err.sent == true
  err.maybe_applied = err.maybe_applied == true or err.sent
  return err
end

--- Sleep without blocking others where the host allows it: inside a batch
-- task the batch's loop runs the other tasks meanwhile; inside nginx,
-- ngx.sleep; otherwise a blocking sleep. When the program asked for
-- signals (`core.catch_signals`), a pending one ends the sleep with the
-- error of `check_interrupt` (kind "interrupted"): a waiter, a retry's
-- back-off or a rate-limit wait stops there rather than sending again.
-- @tparam number seconds
function runtime.sleep(seconds)
  local co = coroutine.running()
  local scheduler = co and schedulers[co]
  if scheduler then
    if seconds > 0 then scheduler:sleep(seconds) end
  elseif runtime.in_openresty() then
    if seconds > 0 then runtime.ngx().sleep(seconds) end
    runtime.check_interrupt()
  else
    runtime.check_interrupt()
    if seconds <= 0 then return end
    core.sleep(seconds)
    runtime.check_interrupt()
  end
end

--- Monotonic seconds (`core.now`: CLOCK_MONOTONIC), inside nginx too.
-- It is one clock for every process of the machine, so the rate limiter's
-- log in a `lua_shared_dict` reads the same in every worker; `ngx.now()`
-- would be the wall clock (a step of it, by NTP or by hand, would move every
-- logged end), cached per worker, in whole milliseconds rounded down.
-- @treturn number
function runtime.now()
  return core.now()
end

return runtime
