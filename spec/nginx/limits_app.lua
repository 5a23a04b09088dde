--- The handlers of spec/nginx/limits_test.lua: two nginx workers run the
-- same job at once (a timer in each worker picks it up), each making N
-- Kontent calls to one environment, with or without `rate_limit_dict`.
--
--   /start?n=N[&dict=1]   posts a job; answers {id}
--   /results?id=ID        each worker's statuses for that job, by worker id
-- @module spec.nginx.limits_app
local cjson = require("cjson.safe")
local envclone = require("envclone")
local conf = require("envclone_limits_conf") -- written by spec/nginx/limits_test.lua

local M = {}

local done_job = 0

local function run(job)
  local k = envclone.kontent{ api_key = conf.api_key, base_url = conf.base_url, retry = false, timeout = 10,
    rate_limit_dict = job.dict and "envclone_limits" or nil }
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
  ngx.timer.every(0.02, function(premature)
    if premature then return end
    local job = cjson.decode(ngx.shared.jobs:get("job") or "null")
    if type(job) == "table" and job.id > done_job then
      done_job = job.id
      run(job)
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
    jobs:set("job", cjson.encode({ id = id, n = tonumber(args.n) or 10, dict = args.dict == "1" }))
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
