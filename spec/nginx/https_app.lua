--- The request handlers of spec/nginx/https_front_test.lua: envclone over
-- cosockets, inside nginx, to the emulator behind this nginx's own TLS
-- front end (verification on: lua_ssl_trusted_certificate, SNI).
--
--   /tour?tag=T    the ten operations and the waiter (spec/support/ten_ops.lua)
--   /wait?tag=T    Kontent clone_environment with wait = true
--   /batch?n=N     a batch of N mixed calls
-- @module spec.nginx.https_app
local cjson = require("cjson.safe")
local envclone = require("envclone")
local tour = require("spec.support.ten_ops")
local conf = require("envclone_https_conf") -- written by the test

local M = {}

local VENDORS = { "versori", "qovery", "kontent", "droplit" }

local function clients(extra)
  local c = {}
  for _, vendor in ipairs(VENDORS) do
    local o = { timeout = 10, retry = false }
    for k, v in pairs(conf.options[vendor]) do o[k] = v end
    for k, v in pairs(extra or {}) do o[k] = v end
    c[vendor] = envclone[vendor](o)
  end
  return c
end

local function reply(value)
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode(value))
end

function M.handle()
  local args = ngx.req.get_uri_args()
  local uri = ngx.var.uri
  if uri == "/tour" then
    local steps = tour.run(clients(), conf.seed, args.tag)
    return reply{ failures = tour.failures(steps), steps = #steps }
  elseif uri == "/wait" then
    local c = clients()
    local res, state = c.kontent:clone_environment{ environment_id = conf.seed.kontent.environment_id,
      name = "Wait " .. args.tag, wait = true, wait_interval = 0.1, wait_timeout = 20 }
    return reply{ ok = res ~= nil, state = res and state.cloning_state or tostring(state) }
  elseif uri == "/batch" then
    local c = clients{ rate_limit = false }
    local b = envclone.batch{ max_in_flight = 16 }
    local n = tonumber(args.n) or 48
    for i = 1, n do
      if i % 4 == 0 then
        b:add(c.droplit, "create_environment", { ecosystemId = conf.seed.droplit.ecosystem_id })
      else
        b:add(c.kontent, "get_environment", { environment_id = conf.seed.kontent.environment_id })
      end
    end
    local r = b:run()
    local errors = {}
    for i = 1, n do
      if r[i] and r[i].ok == false then errors[#errors + 1] = tostring(r[i].err) end
    end
    return reply{ succeeded = r.succeeded, failed = r.failed, errors = errors }
  end
  ngx.status = 404
  reply{ error = "no such handler" }
end

return M
