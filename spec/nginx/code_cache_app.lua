--- The handler of spec/nginx/code_cache_test.lua: one Kontent call to one
-- environment per request, with or without `rate_limit_dict`, in an nginx
-- where `lua_code_cache` may be off (then every request loads envclone in a
-- Lua VM of its own).
--
--   /call[?dict=1]   answers the call's status: 200, or the error's status or kind
-- @module spec.nginx.code_cache_app
local envclone = require("envclone")
local conf = require("envclone_code_cache_conf") -- written by spec/nginx/code_cache_test.lua

local M = {}

--- content_by_lua: /call.
function M.handle()
  local dict = ngx.var.arg_dict == "1" and "envclone_limits" or nil
  local k = envclone.kontent{ api_key = conf.api_key, base_url = conf.base_url, retry = false, timeout = 10,
    rate_limit_dict = dict }
  local res, err = k:get_environment{ environment_id = conf.environment_id }
  k:close()
  ngx.say(res and 200 or (err.status or err.kind))
end

return M
