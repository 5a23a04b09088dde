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

--- Is the OpenResty API usable here (ngx present, in a phase that allows
-- cosockets and ngx.sleep)?
-- @treturn boolean
function runtime.in_openresty()
  local ngx = rawget(_G, "ngx")
  if type(ngx) ~= "table" or type(ngx.sleep) ~= "function" or not ngx.get_phase then
    return false
  end
  return yieldable[ngx.get_phase()] == true
end

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

--- Sleep without blocking others where the host allows it: inside a batch
-- task the batch's loop runs the other tasks meanwhile; inside nginx,
-- ngx.sleep; otherwise a blocking sleep.
-- @tparam number seconds
function runtime.sleep(seconds)
  if seconds <= 0 then return end
  local co = coroutine.running()
  local scheduler = co and schedulers[co]
  if scheduler then
    scheduler:sleep(seconds)
  elseif runtime.in_openresty() then
    rawget(_G, "ngx").sleep(seconds)
  else
    core.sleep(seconds)
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
