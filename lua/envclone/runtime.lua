--- The few things that differ between plain Lua and OpenResty: how to
-- sleep and how to read a monotonic clock. Everything else in envclone
-- is the same code in both.
-- @module envclone.runtime
local core = require("envclone.core")

local runtime = {}

--- Is the OpenResty API usable here (ngx present and sleep allowed)?
-- @treturn boolean
function runtime.in_openresty()
  local ngx = rawget(_G, "ngx")
  if type(ngx) ~= "table" or type(ngx.sleep) ~= "function" or not ngx.get_phase then
    return false
  end
  local phase = ngx.get_phase()
  -- cosockets and ngx.sleep are not allowed in these phases
  return phase ~= "init" and phase ~= "init_worker" and phase ~= "set"
    and phase ~= "header_filter" and phase ~= "body_filter" and phase ~= "log"
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
