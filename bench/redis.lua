-- bench/redis.lua - issue 22: the cost of the rate limiter's Redis store
-- (rate_limit_store) against a loopback redis-server.
--
--   lua5.4 bench/redis.lua [N]                         # from the repository root
--   ENVCLONE_BUILD=build/jit luajit bench/redis.lua
--
-- 1. N (2000) admissions + releases (limiter.acquire / limiter.release) on
--    one key with a policy that never waits, with the process's store and with
--    the Redis store: microseconds per admission + release, and Redis round
--    trips per call (counted by Redis: INFO commandstats, EVALSHA calls); on
--    an empty log and on a log of 400 ends (Kontent's per-minute worst case:
--    the script decodes and encodes the key's whole log).
-- 2. One envclone.batch of 64 Kontent get_environment calls to one
--    environment against the emulator, Kontent's limits (10/s, one at a time)
--    with the process's store and with the Redis store: the batch's wall time.
-- Prints one RESULT line per measure. Starts and stops its own redis-server
-- and emulator (both on 127.0.0.1 only).
local build = os.getenv("ENVCLONE_BUILD") or "build"
package.path = "lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path
package.cpath = build .. "/?.so;" .. package.cpath

local socket = require("socket")
local envclone = require("envclone")
local limiter = require("envclone.limiter")
local emu = require("spec.support.emu")
local rs = require("spec.support.redis")

local N = tonumber(arg[1]) or 2000
local r = rs.start{}
local e = emu.start{ kontent_rate_limit = true }

local function evalsha_calls()
  local info = r:call("INFO", "commandstats")
  return tonumber(info:match("cmdstat_evalsha:calls=(%d+)") or "0")
end

local ok, err = pcall(function()
  -- a policy that never waits; releases not counted, so the key's log stays
  -- as it is: `ends` ends (0, and 400: Kontent's per-minute worst case)
  local fast = { per_second = 1000000, per_minute = 100000000, concurrency_per_key = 1000000 }
  for _, ends in ipairs{ 0, 400 } do
    for _, store in ipairs{ false, r.url } do
      local lim = limiter.new("versori", "http://bench" .. ends .. ".test", fast, nil, 5, store)
      local args = {}
      for _ = 1, ends do limiter.release(limiter.acquire(lim, args), true) end
      for _ = 1, 50 do limiter.release(limiter.acquire(lim, args), false) end -- warm up (scripts loaded)
      local before = store and evalsha_calls() or 0
      local t0 = socket.gettime()
      for _ = 1, N do limiter.release(limiter.acquire(lim, args), false) end
      local dt = socket.gettime() - t0
      local trips = store and (evalsha_calls() - before) / N or 0
      print(string.format("RESULT bench=admit_release store=%s ends=%d n=%d us_per_call=%.1f "
        .. "round_trips_per_call=%.2f", store and "redis" or "process", ends, N, dt / N * 1e6, trips))
    end
  end
  for _, store in ipairs{ false, r.url } do
    r:call("FLUSHALL")
    e:reset()
    e:config{ kontent_rate_limit = true }
    -- past the emulator's last second of the previous run
    socket.sleep(1.1)
    local k = e:client("kontent", { retry = false, timeout = 10, rate_limit_store = store })
    local b = envclone.batch{ max_in_flight = 16 }
    for _ = 1, 64 do b:add(k, "get_environment", { environment_id = e.seed.kontent.environment_id }) end
    local t0 = socket.gettime()
    b:run()
    local dt = socket.gettime() - t0
    local n429 = 0
    for _, entry in ipairs(e:requests()) do if entry.status == 429 then n429 = n429 + 1 end end
    print(string.format("RESULT bench=batch64 store=%s wall=%.2f s 429s=%d", store and "redis" or "process", dt,
      n429))
  end
end)
e:stop()
r:stop()
assert(ok, err)
