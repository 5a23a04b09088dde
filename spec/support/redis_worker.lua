--- A Lua process of the rate_limit_store fleet tests
-- (spec/nginx/redis_fleet_test.lua, spec/redis_fleet_spec.lua), configured
-- by its environment:
--
--   WORKER_MODE     "calls" (default): N Kontent calls, then one JSON line of
--                   their statuses on stdout; "hold": takes the limiter's slot,
--                   writes "held" to WORKER_READY, sleeps WORKER_HOLD seconds,
--                   releases, prints `{"lost":n}`
--   WORKER_URL, WORKER_KEY, WORKER_ENV, WORKER_STORE, WORKER_N, WORKER_TIMEOUT
--   WORKER_ORIGIN    the origin limits are kept under (limiter.test_origin)
--   WORKER_START_AT  wall-clock second to start at (so that all compete)
--   ENVCLONE_TEST_CLOCK_OFFSET, ENVCLONE_TEST_CLIENT_CLOCK  the limiter's test hooks
-- Log lines (the limiter's) go to stderr.
-- @module spec.support.redis_worker
local build = os.getenv("ENVCLONE_BUILD") or "build"
package.path = "lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path
package.cpath = build .. "/?.so;" .. package.cpath
local socket = require("socket")
local cjson = require("cjson")
local envclone = require("envclone")
local limiter = require("envclone.limiter")
limiter.test_origin = os.getenv("WORKER_ORIGIN")

local env = os.getenv
local timeout = tonumber(env("WORKER_TIMEOUT") or "5")
local start_at = tonumber(env("WORKER_START_AT") or "0")
local wait = start_at - socket.gettime()
if wait > 0 then socket.sleep(wait) end

if env("WORKER_MODE") == "hold" then
  local lim = limiter.new("kontent", env("WORKER_URL"), nil, nil, timeout, env("WORKER_STORE"))
  local ticket = assert(limiter.acquire(lim, { environment_id = env("WORKER_ENV") }))
  local f = assert(io.open(env("WORKER_READY"), "w"))
  f:write("held\n")
  f:close()
  socket.sleep(tonumber(env("WORKER_HOLD") or "1"))
  limiter.release(ticket, true)
  io.write(cjson.encode({ lost = limiter.lost_leases }), "\n")
  os.exit(0)
end

local k = envclone.kontent{ api_key = env("WORKER_KEY"), base_url = env("WORKER_URL"), timeout = timeout,
  retry = false, rate_limit_store = env("WORKER_STORE") } -- unset: ENVCLONE_RATE_LIMIT_STORE
local statuses = {}
for i = 1, tonumber(env("WORKER_N") or "5") do
  local res, err = k:get_environment{ environment_id = env("WORKER_ENV") }
  statuses[i] = res and 200 or (err.status or err.kind)
end
io.write(cjson.encode(statuses), "\n")
