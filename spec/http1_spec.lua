-- One reading of HTTP/1.1 (issue 13), libcurl side: every case of the
-- parity table (spec/support/http1_cases.lua: one answer per rule of RFC
-- 9112) and every fault, served by the hostile server on 127.0.0.1, must
-- end as the table says. spec/nginx/nginx_test.lua runs the same table
-- through the cosocket transport and asserts both agree.
local envclone = require("envclone")
local cjson = require("cjson")
local socket = require("socket")
local hostile = require("spec.support.hostile")
local cases = require("spec.support.http1_cases")

local srv, closed_url

setup(function()
  srv = hostile.start()
  local s = assert(socket.bind("127.0.0.1", 0))
  closed_url = "http://127.0.0.1:" .. select(2, s:getsockname())
  s:close()
end)

teardown(function()
  if srv then srv:stop() end
end)

describe("HTTP/1.1 answers (RFC 9112) through libcurl", function()
  for _, c in ipairs(cases.cases) do
    it(c.name .. " (" .. c.why .. ")", function()
      srv:case(c.name)
      local res, err = cases.run(envclone, c, srv.url, "curl", socket.gettime)
      local wrong = cases.check(c, res, err, cjson.decode)
      assert.is_nil(wrong, wrong)
      if err then assert.is_nil(err.text:find(cases.KEY, 1, true), "no credential in the message") end
    end)
  end

  it("refuses two differing Content-Length values before reading any body", function()
    srv:case("cl_differ_twice")
    local _, err = cases.run(envclone, cases.by_name.cl_differ_twice, srv.url, "curl", socket.gettime)
    assert.matches("Content%-Length", err.message)
    assert.is_true(err.sent)
  end)
end)

describe("faults through libcurl, with retries", function()
  for _, f in ipairs(cases.faults) do
    it(f.name, function()
      if f.mode then srv:mode(f.mode) end
      local res, err, took = cases.run(envclone, f, f.refused and closed_url or srv.url, "curl", socket.gettime)
      local wrong = cases.check(f, res, err, cjson.decode)
      assert.is_nil(wrong, wrong)
      -- `timeout` bounds each attempt, whatever the server trickles
      assert.is_true(took < (f.timeout + 0.5) * err.attempts + 1, f.name .. " took " .. took .. " s")
    end)
  end
end)
