-- bench/limiter_queue.lua - issue 23, item 1: a big batch queued behind the
-- client-side rate limiter. One envclone.batch of N (20000) get_environment
-- calls to one Kontent environment, against the emulator (127.0.0.1 only)
-- enforcing Kontent's limits (10/s, 400/min per environment); after SECONDS
-- (30) the batch is dropped (b:run() raises), and the script prints the calls
-- per second against the limit and this process's CPU while it waited.
--
--   lua5.4 bench/limiter_queue.lua [N] [SECONDS]      # from the repository root
--   ENVCLONE_BUILD=build/jit luajit bench/limiter_queue.lua
--
-- Bounded: the batch is dropped after SECONDS whatever it does (checked after
-- each call and by a debug hook on the batch's loop; under LuaJIT, whose
-- compiled code runs no hook, run it under `timeout` too), and the emulator is
-- stopped. CPU is os.clock() (this
-- process only: the emulator runs in its own); "waiting" is from 5 s after the
-- start (the 20000 tasks are set up by then) to the drop.
local build = os.getenv("ENVCLONE_BUILD") or "build"
package.path = "lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path
package.cpath = build .. "/?.so;" .. package.cpath

local envclone = require("envclone")
local runtime = require("envclone.runtime")
local emu = require("spec.support.emu")

local N = tonumber(arg[1]) or 20000
local SECONDS = tonumber(arg[2]) or 30
local SETTLE = 5 -- seconds: the waiting is measured from here
local LIMIT = 10 -- Kontent: requests per second per environment

local e = emu.start{ kontent_rate_limit = true }
local ENV = e.seed.kontent.environment_id
local k = e:client("kontent", { retry = false, timeout = 10 })

local t0, c0
local settled -- { time, cpu, calls } at SETTLE seconds
local DROP = setmetatable({}, { __tostring = function() return "dropped" end })
local statuses, done = {}, 0

-- the clock, looked at after each call and by a hook on the batch's loop
-- (which LuaJIT's compiled code may not run: there the calls' ends alone)
local function check()
  local now = runtime.now()
  if not settled and now - t0 >= SETTLE then settled = { now, os.clock(), done } end
  if now - t0 >= SECONDS then
    debug.sethook()
    error(DROP, 0)
  end
end

local b = envclone.batch{ on_progress = function(_, _, _, r)
  done = done + 1
  local s = r.ok and 200 or (r.err.status or r.err.kind)
  statuses[s] = (statuses[s] or 0) + 1
  check()
end }
for _ = 1, N do b:add(k, "get_environment", { environment_id = ENV }) end

t0, c0 = runtime.now(), os.clock()
debug.sethook(check, "", 1000)
local ok, err = pcall(b.run, b)
debug.sethook()
local t1, c1 = runtime.now(), os.clock()
if ok or err ~= DROP then
  e:stop()
  error("the batch ended before it was dropped: " .. tostring(err))
end

local per_key = e:concurrency().max_in_flight_per_key.kontent or {}
e:stop()
local list = {}
for s, n in pairs(statuses) do list[#list + 1] = tostring(s) .. ": " .. n end
table.sort(list)
local wall = t1 - t0
print(string.format("%s, %d calls queued to one environment, dropped after %.1f s",
  rawget(_G, "jit") and "LuaJIT" or _VERSION, N, wall))
print(string.format("  calls done: %d (%s); %.2f calls/s over %.0f s against the limit of %d/s (%.0f%%)",
  done, table.concat(list, ", "), done / wall, wall, LIMIT, 100 * done / wall / LIMIT))
print(string.format("  CPU: %.2f s in %.1f s (%.1f%% of a core), set-up included", c1 - c0, wall,
  100 * (c1 - c0) / wall))
if settled then
  local w = t1 - settled[1]
  print(string.format("  while waiting (%.0f-%.0f s): %.1f%% of a core, %.2f calls/s",
    settled[1] - t0, wall,
    100 * (c1 - settled[2]) / w, (done - settled[3]) / w))
end
print(string.format("  most in flight at the server for the environment: %s", tostring(per_key[ENV])))
