--- The nginx side of spec/nginx/redis_fleet_test.lua: each of two workers
-- runs the posted job from a timer (where cosockets are allowed), N Kontent
-- calls to one environment with `rate_limit_store` (no rate_limit_dict: the
-- workers share their limits only through Redis, as two machines would).
--
--   /start?n=N&at=T   posts a job (T: wall-clock second to start at); answers {id}
--   /results?id=ID    each worker's statuses for that job, by worker id
-- @module spec.nginx.redis_fleet_app
local cjson = require("cjson.safe")
local envclone = require("envclone")
local conf = require("envclone_redis_fleet_conf") -- written by spec/nginx/redis_fleet_test.lua

local M = {}

local done_job = 0

local function run(job)
  ngx.update_time()
  local wait = job.at - ngx.now()
  if wait > 0 then ngx.sleep(wait) end
  local k = envclone.kontent{ api_key = conf.api_key, base_url = conf.base_url, retry = false, timeout = 5,
    rate_limit_store = conf.store }
  local statuses = {}
  for _ = 1, job.n do
    local res, err = k:get_environment{ environment_id = conf.environment_id }
    statuses[#statuses + 1] = res and 200 or (err.status or err.kind)
  end
  k:close()
  ngx.shared.jobs:set("result:" .. job.id .. ":" .. ngx.worker.id(), cjson.encode(statuses))
end

--- init_worker_by_lua: every worker looks for a new job every 20 ms.
function M.init_worker()
  require("envclone.limiter").test_origin = conf.origin
  ngx.timer.every(0.02, function(premature)
    if premature then return end
    local job = cjson.decode(ngx.shared.jobs:get("job") or "null")
    if type(job) == "table" and job.id > done_job then
      done_job = job.id
      local ok, err = pcall(run, job)
      if not ok then ngx.log(ngx.ERR, "fleet job failed: ", tostring(err)) end
    end
  end)
end

--- content_by_lua: /start and /results.
function M.handle()
  local args = ngx.req.get_uri_args()
  local jobs = ngx.shared.jobs
  ngx.header["Content-Type"] = "application/json"
  if ngx.var.uri == "/start" then
    local id = jobs:incr("next_id", 1, 0)
    jobs:set("job", cjson.encode({ id = id, n = tonumber(args.n) or 5, at = tonumber(args.at) or 0 }))
    ngx.say(cjson.encode({ id = id }))
  elseif ngx.var.uri == "/results" then
    local out = {}
    for w = 0, ngx.worker.count() - 1 do
      local r = jobs:get("result:" .. tostring(args.id) .. ":" .. w)
      if r then out[tostring(w)] = cjson.decode(r) end
    end
    ngx.say(cjson.encode(out))
  else
    ngx.status = 404
    ngx.say("{}")
  end
end

return M
