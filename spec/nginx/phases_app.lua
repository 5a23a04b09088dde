--- The handlers of spec/nginx/phases_test.lua: envclone called from the
-- nginx phases where cosockets are disabled (balancer_by_lua, set_by_lua,
-- header_filter_by_lua, body_filter_by_lua, log_by_lua) and, for contrast,
-- from a timer, where they work. Each records what the call gave in the
-- shared dict `phases` (a raise included): /results answers them all.
-- @module spec.nginx.phases_app
local cjson = require("cjson.safe")
local envclone = require("envclone")
local conf = require("envclone_phases_conf") -- written by spec/nginx/phases_test.lua

local M = {}

local clients

-- A Droplit client (no rate limit) and a Kontent one (Kontent's limiter),
-- both with the default transport ("auto"), made once per worker.
local function get_clients()
  if not clients then
    clients = {
      droplit = envclone.droplit{ base_url = conf.base_urls.droplit, token = conf.credentials.droplit.token,
        retry = false, timeout = 5 },
      kontent = envclone.kontent{ base_url = conf.base_urls.kontent, api_key = conf.credentials.kontent.api_key,
        retry = false, timeout = 5 },
    }
  end
  return clients
end

-- Makes one call of each client in `phase` and records the outcome.
local function try(phase)
  local c = get_clients()
  local calls = {
    droplit = function() return c.droplit:create_environment{ ecosystemId = conf.seed.droplit.ecosystem_id,
      alias = "in_" .. phase } end,
    kontent = function() return c.kontent:get_environment{ environment_id = conf.seed.kontent.environment_id } end,
  }
  for vendor, call in pairs(calls) do
    local ok, res, err = pcall(call)
    local rec = { raised = not ok, message = not ok and tostring(res) or nil, ok = ok and res ~= nil }
    if ok and res == nil then
      rec.kind, rec.code, rec.sent, rec.text = err.kind, err.code, err.sent, tostring(err)
    end
    ngx.shared.phases:set(phase .. ":" .. vendor, cjson.encode(rec))
  end
end

--- balancer_by_lua: calls, then sends the request on to /ok.
function M.balancer()
  try("balancer")
  assert(require("ngx.balancer").set_current_peer("127.0.0.1", conf.port))
end

--- set_by_lua: calls; the variable says it ran.
function M.set()
  try("set")
  return "set ran"
end

function M.header_filter() try("header_filter") end
function M.body_filter() try("body_filter") end
function M.log() try("log") end

--- content_by_lua of /timer: a timer calls (cosockets work there).
function M.timer()
  assert(ngx.timer.at(0, function() try("timer") end))
  ngx.say("timer started")
end

--- content_by_lua of /results: every recorded outcome, by "phase:vendor".
function M.results()
  local out = {}
  for _, key in ipairs(ngx.shared.phases:get_keys(0)) do
    out[key] = cjson.decode(ngx.shared.phases:get(key))
  end
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode(out))
end

return M
