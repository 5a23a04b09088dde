--- Helpers for the OpenResty example (examples/openresty/nginx.conf): one
-- Kontent.ai client per worker, and error objects turned into HTTP answers.
-- @module clone
local cjson = require("cjson.safe")
local envclone = require("envclone")

local M = {}

local client -- one per worker: its pooled connections are reused by every request

--- The worker's Kontent.ai client (built on first use, in a request handler).
-- `transport` is "auto": cosockets in handlers and timers, libcurl elsewhere.
-- @return an envclone.kontent client
function M.kontent()
  if not client then
    client = envclone.kontent{
      api_key = os.getenv("KONTENT_API_KEY"),
      base_url = os.getenv("ENVCLONE_KONTENT_URL"), -- nil: https://manage.kontent.ai/v2
      timeout = 30, connect_timeout = 5,
      pool_size = 16, keepalive_timeout = 60, -- cosocket connection pool
      retry = { max_attempts = 3 },           -- never re-sends a create that may have been applied
    }
  end
  return client
end

--- Sends `value` as JSON with HTTP status `status`.
-- @tparam number status
-- @param value
function M.json(status, value)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode(value))
end

local status_of = { validation = 400, http = 502, decode = 502, transport = 502, timeout = 504, state = 502 }

--- Answers with an envclone error object: 400 for invalid input, 502/504
-- when the vendor failed. The fields are safe to show: envclone never puts
-- a credential in an error.
-- @tparam table err an envclone error
function M.fail(err)
  local status = status_of[err.kind] or 500
  if err.kind == "http" and err.status and err.status < 500 and err.status ~= 401 and err.status ~= 403 then
    status = err.status -- the vendor refused the input (duplicate name, unknown id...)
  end
  return M.json(status, {
    error = tostring(err), kind = err.kind, code = err.code, status = err.status, field = err.field,
    request_id = err.request_id, retryable = err.retryable, maybe_applied = err.maybe_applied,
  })
end

return M
