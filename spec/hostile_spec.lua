-- Hostile servers (issue 6): envclone against a server that answers too
-- much, too slowly, with the wrong thing, or tries to send the credential
-- elsewhere (spec/support/hostile_server.lua, a separate process on
-- 127.0.0.1). Each answer must give a clear `nil, err` (no crash, no raise),
-- keep memory bounded, never follow a redirect, and leave the SAME client
-- working for the next call.
local envclone = require("envclone")
local hostile = require("spec.support.hostile")
local socket = require("socket")

local ENV = "8d20758c-d74c-4f59-ae04-ee928c0816b7"
local ULID = "01HZY8K2V6Q4N3M5T7W9X0ABCD"
local KEY = "hostile-spec-api-key-0123456789"
local CAP = 1024 * 1024 -- the client's max_response_size
local TIMEOUT = 2       -- the client's total timeout, seconds

local srv, kontent

local function rss_kib()
  local f = io.open("/proc/self/status", "r")
  if not f then return nil end
  local text = f:read("*a")
  f:close()
  return tonumber(text:match("VmRSS:%s*(%d+)"))
end

-- A good call on the same client: it still works after the bad one.
local function still_works(client)
  srv:mode("good")
  local env, err = (client or kontent):get_environment{ environment_id = ENV }
  assert.is_nil(err, err and tostring(err))
  assert.are.equal("Production", env.environment)
end

-- One call answered in `mode`; returns res, err, seconds.
local function call(mode, fn)
  srv:mode(mode)
  local t0 = socket.gettime()
  local res, err = (fn or function() return kontent:get_environment{ environment_id = ENV } end)()
  return res, err, socket.gettime() - t0
end

local function assert_error(res, err, kind, code)
  assert.is_nil(res)
  assert.is_true(envclone.is_error(err), "expected an error object, got " .. tostring(err))
  assert.are.equal(kind, err.kind, tostring(err))
  if code then assert.are.equal(code, err.code, tostring(err)) end
  local line = tostring(err)
  assert.is_nil(line:find("[\r\n]"), "tostring(err) is one line")
  assert.is_nil(line:find(KEY, 1, true), "no credential in the message")
  assert.is_true(#err.message > 10, "the message says something")
end

setup(function()
  srv = hostile.start()
  kontent = envclone.kontent{ api_key = KEY, base_url = srv.url .. "/v2", timeout = TIMEOUT, connect_timeout = 2,
    max_response_size = CAP, retry = false }
end)

teardown(function()
  if srv then srv:stop() end
end)

describe("a hostile server", function()
  it("answers normally in the 'good' mode (the baseline the other cases break)", function()
    still_works()
    local st = srv:stats()
    assert.are.equal("/v2/projects/" .. ENV, st.last_path)
    assert.is_true(st.last_had_credential)
  end)

  it("sends a declared body larger than max_response_size: refused before reading it", function()
    local res, err = call("big_length")
    assert_error(res, err, "transport", "too_large")
    assert.matches("max_response_size", err.message)
    assert.is_false(err.retryable)
    -- not read: the server got to send next to nothing of its 64 MiB
    assert.is_true(srv:stats().bytes_sent < 16 * CAP, "the client read on")
    still_works()
  end)

  it("streams an endless body without a length: cut at the cap, memory stays bounded", function()
    still_works() -- warm up: the client's buffers exist
    local before = rss_kib()
    local res, err = call("big_stream")
    local after = rss_kib()
    assert_error(res, err, "transport", "too_large")
    local sent = srv:stats().bytes_sent
    assert.is_true(sent < 16 * CAP, "the client read " .. sent .. " bytes of 64 MiB")
    if before and after and os.getenv("ENVCLONE_SANITIZER") == nil then
      -- buffering the whole stream would add 64 MiB
      assert.is_true(after - before < 24 * 1024, "RSS grew by " .. (after - before) .. " KiB")
    end
    still_works()
  end)

  it("sends a body that never ends: the total timeout ends the call", function()
    local res, err, secs = call("endless")
    assert_error(res, err, "timeout", "timeout")
    assert.is_true(secs < TIMEOUT + 3, "took " .. secs .. " s")
    assert.is_true(err.retryable) -- a GET may be tried again
    still_works()
  end)

  it("never answers at all: the total timeout ends the call", function()
    local res, err, secs = call("stall")
    assert_error(res, err, "timeout", "timeout")
    assert.is_true(secs < TIMEOUT + 3, "took " .. secs .. " s")
    still_works()
  end)

  it("answers 200 with invalid JSON", function()
    local res, err = call("badjson")
    assert_error(res, err, "decode")
    assert.are.equal(200, err.status)
    assert.matches("not valid JSON", err.message)
    still_works()
  end)

  it("answers 200 with JSON nested 100 000 deep: refused, no stack overflow", function()
    local res, err = call("deep")
    assert_error(res, err, "decode")
    assert.matches("nested", err.message)
    still_works()
  end)

  it("answers 200 with the wrong content type (a PNG)", function()
    local res, err = call("wrongtype")
    assert_error(res, err, "decode")
    assert.matches("image/png", err.message, 1, true)
    still_works()
  end)

  it("answers 200 with an HTML page (a login portal)", function()
    local res, err = call("html")
    assert_error(res, err, "decode")
    assert.matches("text/html", err.message, 1, true)
    still_works()
  end)

  describe("redirects: never followed, so the credential cannot travel", function()
    local cases = {
      { "Bearer (kontent)", function() return kontent:get_environment{ environment_id = ENV } end },
      { "Bearer on a create (kontent clone)", function()
        return kontent:clone_environment{ environment_id = ENV, name = "Stolen" } end },
      { "Cookie (versori)", function()
        -- (reconcile = false: the create alone, no lookup by its name first)
        local v = envclone.versori{ cookie = "session=" .. KEY, base_url = srv.url, timeout = TIMEOUT, retry = false,
          reconcile = false }
        return v:create_connection_version{ organisation_id = ULID, connection_id = "c1", name = "v9" } end },
      { "raw authorization (droplit)", function()
        local d = envclone.droplit{ token = KEY, base_url = srv.url, timeout = TIMEOUT, retry = false }
        return d:create_environment{ ecosystemId = "E1" } end },
    }
    for _, mode in ipairs{ "redirect_host", "redirect_307" } do
      for _, case in ipairs(cases) do
        it(mode .. " to another host, " .. case[1], function()
          local before = srv:stats()
          local res, err = call(mode, case[2])
          assert_error(res, err, "http")
          assert.are.equal(mode == "redirect_307" and 307 or 302, err.status)
          assert.matches("redirect not followed to http://127.0.0.1:" .. srv.other_port, err.message, 1, true)
          local st = srv:stats()
          assert.is_true(st.last_had_credential, "the first server did get the credential")
          assert.are.equal(before.requests + 1, st.requests, "exactly one request")
          assert.are.equal(0, st.other_requests, "the other host received nothing")
          assert.are.equal(0, st.other_with_credential)
          still_works()
        end)
      end
    end

    it("to file:///etc/passwd: not followed, nothing read", function()
      local res, err = call("redirect_file")
      assert_error(res, err, "http")
      assert.are.equal(302, err.status)
      assert.matches("redirect not followed to file:///etc/passwd", err.message, 1, true)
      assert.is_nil(tostring(err):find("root:", 1, true))
      assert.is_nil(err.body)
      still_works()
    end)

    it("to ftp://: not followed", function()
      local res, err = call("redirect_ftp")
      assert_error(res, err, "http")
      assert.matches("redirect not followed to ftp://", err.message, 1, true)
      assert.are.equal(0, srv:stats().other_requests)
      still_works()
    end)
  end)

  it("sends 1 MiB of response headers (1024 lines): refused at the header cap", function()
    local res, err = call("headers_many")
    assert_error(res, err, "transport", "too_large")
    assert.matches("headers", err.message)
    assert.is_true(srv:stats().bytes_sent < 1024 * 1024, "the client read all the headers")
    still_works()
  end)

  it("sends one 1 MiB header line: refused", function()
    local res, err = call("header_huge")
    assert_error(res, err, "transport", "too_large")
    assert.matches("headers", err.message)
    still_works()
  end)

  it("answers with bytes that are not HTTP", function()
    local res, err = call("garbage")
    assert_error(res, err, "transport", "protocol")
    still_works()
    -- the request went out before the garbage came back: a create may exist
    res, err = call("garbage", function()
      return kontent:clone_environment{ environment_id = ENV, name = "Garbled" } end)
    assert_error(res, err, "transport", "protocol")
    assert.is_true(err.sent)
    assert.is_true(err.maybe_applied)
    assert.are.equal(1, err.attempts)
    still_works()
  end)

  it("closes the connection without answering a create: it may have been applied", function()
    local res, err = call("close_early", function()
      return kontent:clone_environment{ environment_id = ENV, name = "Maybe" } end)
    assert_error(res, err, "transport", "recv")
    assert.is_true(err.sent)
    assert.is_true(err.maybe_applied, "a create cut after sending may exist on the server")
    still_works()
  end)

  it("echoes the credential with JSON escapes: still never shows, in any field or in err.body", function()
    local res, err = call("echo_escaped")
    assert_error(res, err, "http")
    for _, k in ipairs{ "message", "code", "request_id" } do
      assert.is_nil(tostring(err[k]):find(KEY, 1, true), "err." .. k .. " shows the key")
    end
    assert.matches("***", err.code, 1, true)
    assert.is_nil(err.body.detail.list[1]:find(KEY, 1, true))
    assert.matches("***", tostring(err), 1, true)
    still_works()
  end)

  it("answers a create with a bare 503 (no Retry-After): not retried, it may have been applied", function()
    local k = envclone.kontent{ api_key = KEY, base_url = srv.url .. "/v2", timeout = TIMEOUT,
      retry = { max_attempts = 3, base_delay = 0.001 } }
    local before = srv:stats().requests
    local res, err = call("bare503", function()
      return k:clone_environment{ environment_id = ENV, name = "Gateway" } end)
    assert_error(res, err, "http")
    assert.are.equal(503, err.status)
    assert.is_true(err.maybe_applied)
    assert.are.equal(1, err.attempts)
    assert.are.equal(before + 1, srv:stats().requests)
    -- a GET is retried on the same answer
    before = srv:stats().requests
    res, err = call("bare503", function() return k:get_environment{ environment_id = ENV } end)
    assert.is_nil(res)
    assert.are.equal(3, err.attempts)
    assert.is_false(err.maybe_applied)
    assert.are.equal(before + 3, srv:stats().requests)
    still_works()
  end)

  it("answers an idempotent call 500 once: retried (Kontent asks clients to retry 5xx), then it succeeds",
    function()
    local k = envclone.kontent{ api_key = KEY, base_url = srv.url .. "/v2", timeout = TIMEOUT,
      retry = { max_attempts = 3, base_delay = 0.001 } }
    local before = srv:stats().requests
    local res, err = call("error500_once", function() return k:get_environment{ environment_id = ENV } end)
    assert.is_table(res, tostring(err))
    assert.are.equal(before + 2, srv:stats().requests)
    -- a create answered 500 is never re-sent: the server may have acted
    before = srv:stats().requests
    res, err = call("error500_once", function()
      return k:clone_environment{ environment_id = ENV, name = "Once" } end)
    assert_error(res, err, "http")
    assert.are.equal("server_error", err.reason)
    assert.is_true(err.maybe_applied)
    assert.are.equal(before + 1, srv:stats().requests)
    still_works()
  end)

  it("sends a Retry-After date os.time cannot hold: an error, not a raise", function()
    local k = envclone.kontent{ api_key = KEY, base_url = srv.url .. "/v2", timeout = TIMEOUT,
      retry = { max_attempts = 2, base_delay = 0.001 } }
    local ok, res, err = pcall(call, "bad_date", function() return k:get_environment{ environment_id = ENV } end)
    assert.is_true(ok, tostring(res))
    assert_error(res, err, "http")
    assert.are.equal(429, err.status)
    assert.is_nil(err.retry_after)
    still_works()
  end)

  it("echoes the credential in its error (body, code, request id, Location): it never shows", function()
    local res, err = call("echo")
    assert_error(res, err, "http")
    assert.are.equal(401, err.status)
    for _, k in ipairs{ "message", "code", "request_id" } do
      assert.is_nil(tostring(err[k]):find(KEY, 1, true), "err." .. k .. " shows the key")
    end
    assert.are.equal("credential Bearer *** refused", err.body.message, "err.body is scrubbed too")
    assert.matches("***", tostring(err), 1, true)
    still_works()
  end)

  it("a client closed while its batched calls are in flight still masks its key in their errors "
    .. "(issue 23, item 10)", function()
    srv:mode("echo_slow")
    local c = envclone.kontent{ api_key = KEY, base_url = srv.url .. "/v2", timeout = TIMEOUT, connect_timeout = 2,
      retry = false, rate_limit = false }
    local b = envclone.batch()
    -- a plain call (started in C, no task) and a call inside a task (a request object)
    local plain = b:add(c, "get_environment", { environment_id = ENV })
    local tasked = b:add(function() return c:get_environment{ environment_id = ENV } end)
    local closer = b:add(function()
      require("envclone.runtime").sleep(0.2) -- both requests are on the wire, their answers 0.5 s away
      c:close()
      return tostring(c)
    end)
    local results = b:run()
    assert.matches("closed", results[closer].value)
    for _, i in ipairs{ plain, tasked } do
      local err = results[i].err
      assert.is_false(results[i].ok)
      assert.are.equal(401, err.status, tostring(err))
      for _, k in ipairs{ "message", "code", "request_id" } do
        assert.is_nil(tostring(err[k]):find(KEY, 1, true), "err." .. k .. " shows the key: " .. tostring(err[k]))
      end
      assert.is_nil(tostring(err):find(KEY, 1, true), "tostring(err) shows the key: " .. tostring(err))
      assert.are.equal("credential Bearer *** refused", err.body.message, "err.body is scrubbed too")
    end
    srv:mode("good")
  end)

  it("a run of bad answers leaves one client usable, with no retries piling up", function()
    local c = envclone.kontent{ api_key = KEY, base_url = srv.url .. "/v2", timeout = TIMEOUT,
      max_response_size = CAP, retry = { max_attempts = 2, base_delay = 0, max_delay = 0 } }
    for _, mode in ipairs{ "badjson", "garbage", "redirect_host", "headers_many", "big_stream", "close_early" } do
      local before = srv:stats().requests
      local res, err = call(mode, function() return c:get_environment{ environment_id = ENV } end)
      assert.is_nil(res)
      assert.is_true(envclone.is_error(err), mode)
      assert.is_true(srv:stats().requests - before <= 2, mode .. ": at most max_attempts requests")
      still_works(c)
    end
  end)
end)
