--- The OpenResty example (examples/openresty/nginx.conf): an admin endpoint
-- that clones Kontent.ai environments on request, with one Kontent.ai client
-- per worker and envclone's error objects turned into HTTP answers.
--
--     POST   /admin/environments       {"environment_id": UUID, "name": "...", "wait": false}
--                                       -> 201 {"id": ..., "cloning_state": ...}
--     GET    /admin/environments/ID   -> 200 {"id": ..., "cloning_state": ...}
--     DELETE /admin/environments/ID   -> 204
--
-- Every call needs `Authorization: Bearer $ENVCLONE_ADMIN_TOKEN`; without
-- that variable (16 characters or more) the endpoint stays off.
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

-- Compares two strings in time that does not depend on where they differ.
local function same(a, b)
  if type(a) ~= "string" or #a ~= #b then return false end
  local diff = 0
  for i = 1, #a do
    diff = bit.bor(diff, bit.bxor(a:byte(i), b:byte(i)))
  end
  return diff == 0
end

local function clone(body)
  if type(body) ~= "table" then return M.json(400, { error = "the body must be a JSON object" }) end
  local env, state = M.kontent():clone_environment{
    environment_id = body.environment_id,
    name = body.name,
    -- wait = true polls the cloning state with ngx.sleep: the worker keeps serving
    wait = body.wait == true, wait_timeout = 600, wait_interval = 2,
  }
  if not env then return M.fail(state) end
  -- the answer carries the new environment's API keys: hand back only the id
  return M.json(201, { id = env.id, cloning_state = state and state.cloning_state or "in_progress" })
end

--- The admin endpoint's handler (content_by_lua for location /admin/environments).
function M.admin()
  local token = os.getenv("ENVCLONE_ADMIN_TOKEN")
  if not token or #token < 16 then
    return M.json(503, { error = "the admin endpoint is off: set ENVCLONE_ADMIN_TOKEN (16 characters or more)" })
  end
  if not same(ngx.var.http_authorization, "Bearer " .. token) then
    ngx.header["WWW-Authenticate"] = "Bearer"
    return M.json(401, { error = "unauthorized" })
  end
  local method, uri = ngx.req.get_method(), ngx.var.uri
  if uri == "/admin/environments" then
    if method ~= "POST" then return M.json(405, { error = "POST here" }) end
    ngx.req.read_body()
    return clone(cjson.decode(ngx.req.get_body_data() or ""))
  end
  local id = uri:match("^/admin/environments/([^/]+)$")
  if not id then return M.json(404, { error = "not found" }) end
  id = ngx.unescape_uri(id) -- envclone percent-encodes it again for Kontent's path
  if method == "GET" then
    local s, err = M.kontent():get_cloning_state{ environment_id = id }
    if not s then return M.fail(err) end
    return M.json(200, { id = id, cloning_state = s.cloning_state })
  elseif method == "DELETE" then
    local ok, err = M.kontent():delete_environment{ environment_id = id }
    if not ok then return M.fail(err) end
    ngx.status = 204
    return ngx.exit(204)
  end
  return M.json(405, { error = "GET or DELETE here" })
end

return M
