-- HTTP/2 (issue 13): over HTTPS libcurl negotiates h2 by ALPN, and an HTTP/2
-- server can end a request in ways HTTP/1.1 has no words for. They are
-- classified as their HTTP/1.1 equivalents (a connection that dropped after
-- the request: code "recv"): retried for idempotent calls; for a create,
-- maybe_applied, unless the server said the stream was not processed
-- (GOAWAY with a last-stream-id below the request's stream, or
-- REFUSED_STREAM: RFC 9113 §6.8, §8.7), when nothing was applied and a
-- retry is safe. Against spec/support/h2_server.lua on 127.0.0.1, which
-- speaks only h2: a request it counts arrived as an HTTP/2 HEADERS frame.
local envclone = require("envclone")
local pki = require("spec.support.pki")
local emu = require("spec.support.emu")

local ENV = "8d20758c-d74c-4f59-ae04-ee928c0816b7"
local KEY = "http2-spec-api-key-0123456789"

local dir, path
local servers = {}

setup(function()
  dir, path = pki.make()
end)

teardown(function()
  for _, s in pairs(servers) do os.execute("kill " .. s.pid .. " 2>/dev/null") os.remove(s.stats) end
  pki.remove(dir)
end)

-- A server in `mode`, started once.
local function server(mode)
  if servers[mode] then return servers[mode] end
  local port_file, stats = os.tmpname(), os.tmpname()
  os.remove(port_file)
  local cmd = string.format("exec env -u LD_PRELOAD lua5.4 spec/support/h2_server.lua %s %s %s %s %s 300"
    .. " >/dev/null 2>&1 </dev/null & echo $!", emu.quote(port_file), emu.quote(stats), mode,
    emu.quote(path("server.pem")), emu.quote(path("server.key")))
  local p = assert(io.popen(cmd))
  local pid = tonumber(p:read("*l"))
  p:close()
  local port = assert(tonumber(emu.wait_for_port_file(pid, port_file, "^(%d+)\n")), "h2 server did not start")
  os.remove(port_file)
  servers[mode] = { pid = pid, stats = stats, url = "https://127.0.0.1:" .. port }
  return servers[mode]
end

-- HTTP/2 requests (HEADERS frames) the server has seen.
local function requests(s)
  return tonumber((emu.read_file(s.stats) or ""):match(" (%d+)")) or 0
end

local function call(mode, what)
  local s = server(mode)
  local c = envclone.kontent{ api_key = KEY, base_url = s.url .. "/v2", ca_file = path("ca.pem"), timeout = 3,
    retry = { max_attempts = 2, base_delay = 0.001 } }
  local before = requests(s)
  local res, err
  if what == "get" then
    res, err = c:get_environment{ environment_id = ENV }
  else
    res, err = c:clone_environment{ environment_id = ENV, name = "h2" }
  end
  c:close()
  assert.is_nil(res)
  assert.is_true(requests(s) > before, "the request reached the server over HTTP/2")
  assert.is_nil(tostring(err):find(KEY, 1, true))
  return { err.kind, err.code, err.retryable, err.maybe_applied, err.attempts }, err
end

describe("an HTTP/2 server that ends the request without an answer", function()
  it("GOAWAY with last-stream-id 0 on the first request: a GET is retried", function()
    assert.are.same({ "transport", "recv", true, false, 2 }, call("goaway0", "get"))
  end)

  it("GOAWAY with last-stream-id 0: a create was not processed, so it is retried and not maybe_applied", function()
    local got, err = call("goaway0", "create")
    assert.are.same({ "transport", "recv", true, false, 2 }, got, tostring(err))
    assert.is_false(err.sent)
    assert.matches("did not process it", err.message)
  end)

  it("REFUSED_STREAM: the same (libcurl also tries a fresh connection itself)", function()
    assert.are.same({ "transport", "recv", true, false, 2 }, call("refused", "get"))
    assert.are.same({ "transport", "recv", true, false, 2 }, call("refused", "create"))
  end)

  it("GOAWAY naming the request's stream as processed, then no answer: a GET is retried, a create maybe_applied",
    function()
      assert.are.same({ "transport", "recv", true, false, 2 }, call("goaway_after", "get"))
      local got, err = call("goaway_after", "create")
      assert.are.same({ "transport", "recv", false, true, 1 }, got)
      assert.is_true(err.sent)
    end)

  it("RST_STREAM INTERNAL_ERROR: a GET is retried, a create maybe_applied and never sent twice", function()
    assert.are.same({ "transport", "recv", true, false, 2 }, call("reset", "get"))
    local s = server("reset")
    local before = requests(s)
    assert.are.same({ "transport", "recv", false, true, 1 }, call("reset", "create"))
    assert.are.equal(before + 1, requests(s))
  end)
end)
