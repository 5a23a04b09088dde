--- An envclone transport carried by LuaSocket: an example of a host that
-- sends the requests itself (`transport = { perform = ... }` on any client
-- constructor). A host with its own event loop (HAProxy's core.httpclient,
-- Neovim's luv, cqueues) writes the same dozen lines around its own HTTP
-- client; envclone keeps the validation, policy, retries, parsing and error
-- objects.
--
-- `perform(request)` gets an envclone request: `request.method`,
-- `request.url`, `request:headers()` (the credential among them: send them,
-- never log them), `request.body` (nil when none), `request.timeout` and
-- `request.connect_timeout` (seconds), `request.max_response_size` (bytes).
-- It returns `{ status = 200, headers = { ["content-type"] = "..." }, body = "..." }`,
-- or, when the exchange failed, `return request:fail(code, message, sent)` (nil, err).
-- LuaSocket's socket.http speaks plain http only (https needs LuaSec).
local http = require("socket.http")
local ltn12 = require("ltn12")
local socket = require("socket")

local M = {}

-- What a LuaSocket error says about the request: (code, sent).
local function classify(why)
  why = tostring(why)
  if why == "connection refused" then return "connect", false end
  if why:find("host or service not provided", 1, true) or why:find("not known", 1, true) then
    return "resolve", false
  end
  if why == "timeout" then return "timeout", true end
  if why == "closed" then return "recv", true end
  return "transport", true -- unknown: assume the request may have reached the server
end

--- Builds the transport table.
-- @treturn table `{ perform = function(request) ... end }`
function M.new()
  return { perform = function(req)
    if req.scheme ~= "http" then
      return req:fail("unavailable", "this example transport speaks http only", false)
    end
    local chunks, size, cap = {}, 0, req.max_response_size
    local too_large = false
    local body = req.body
    local headers = req:headers()
    if body then headers["Content-Length"] = tostring(#body) end
    local ok, status, resp_headers = http.request{
      url = req.url,
      method = req.method,
      headers = headers,
      source = body and ltn12.source.string(body) or nil,
      sink = function(chunk)
        if chunk then
          size = size + #chunk
          if size > cap then too_large = true return nil, "too large" end
          chunks[#chunks + 1] = chunk
        end
        return 1
      end,
      -- a socket whose every wait is bounded by the request's timeout
      create = function()
        local s = socket.tcp()
        s:settimeout(req.timeout)
        return s
      end,
    }
    if too_large then return req:fail("too_large", nil, true) end
    if not ok then
      local code, sent = classify(status)
      return req:fail(code, "luasocket: " .. tostring(status), sent)
    end
    return { status = status, headers = resp_headers, body = table.concat(chunks) }
  end }
end

return M
