-- Secrets in every form (issue 11, inputs 7 and 8): a server or proxy that
-- echoes the credential percent-encoded, JSON-escaped, base64'd or
-- HTML-escaped, in a body, a message or a header, never gets it shown in
-- err.message, err.body, tostring(err) or a log line; and a credential too
-- short to be told from ordinary text is refused when the client is made.
-- The answers come from spec/support/hostile_server.lua (a real loopback
-- server), scripted byte for byte.
local envclone = require("envclone")
local core = require("envclone.core")
local hostile = require("spec.support.hostile")

local TOKEN = "AbCd+EfGh/IjKl==PLACEHOLDER" -- the issue's Droplit token
local ECO = "01HZY8K2V6Q4N3M5T7W9X0ABCD"

local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    for k = 3, 0, -1 do
      local v = math.floor(n / 64 ^ k) % 64
      out[#out + 1] = b64chars:sub(v + 1, v + 1)
    end
    if not b then out[#out - 1], out[#out] = "=", "=" elseif not c then out[#out] = "=" end
  end
  return table.concat(out)
end
local function base64url(s) return (base64(s):gsub("%+", "-"):gsub("/", "_"):gsub("=", "")) end
local function pct(s, fmt)
  return (s:gsub("[^%w%-%._~]", function(ch) return fmt:format(ch:byte()) end))
end
local function json_u(s, all)
  return (s:gsub(all and "." or "[^%w]", function(ch) return ("\\u%04X"):format(ch:byte()) end))
end

-- Every form, as it appears inside a JSON string (JSON-escaped forms are raw JSON text).
local FORMS = {
  verbatim = TOKEN,
  percent_upper = pct(TOKEN, "%%%02X"),
  percent_lower = pct(TOKEN, "%%%02x"),
  json_slash = TOKEN:gsub("/", "\\/"),
  json_u_some = json_u(TOKEN),
  json_u_all = json_u(TOKEN, true),
  base64 = base64(TOKEN),
  base64_shifted1 = base64("u" .. TOKEN),
  base64_shifted2 = base64("us:" .. TOKEN),
  base64url = base64url(TOKEN),
  base64url_shifted = base64url("x:" .. TOKEN),
  html_numeric = TOKEN:gsub("[+/=]", function(ch) return ("&#%d;"):format(ch:byte()) end),
  html_hex = TOKEN:gsub("[+/=]", function(ch) return ("&#x%X;"):format(ch:byte()) end),
  html_named = TOKEN:gsub("[+/=]", { ["+"] = "&plus;", ["/"] = "&sol;", ["="] = "&equals;" }),
}

local srv, droplit, logged

-- The distinctive pieces a leak would show: the token's halves, in each form.
local function leaks(text)
  text = tostring(text)
  for name, form in pairs(FORMS) do
    -- any 12-character window of the form is enough to give the token away
    for i = 1, #form - 11, 4 do
      local piece = form:sub(i, i + 11)
      if text:find(piece, 1, true) then return name .. " (" .. piece .. ")" end
    end
  end
  for _, piece in ipairs{ "AbCd+EfGh", "EfGh/IjKl", "IjKl==PLACE", "PLACEHOLDER" } do
    if text:find(piece, 1, true) then return piece end
  end
  return nil
end

local function flatten(v, out)
  out = out or {}
  if type(v) == "table" then
    for k, x in pairs(v) do
      out[#out + 1] = tostring(k)
      flatten(x, out)
    end
  else
    out[#out + 1] = tostring(v)
  end
  return out
end

local function assert_masked(err, where)
  assert.is_true(envclone.is_error(err), where .. ": expected an error")
  for _, text in ipairs{ tostring(err), err.message, err.code, err.request_id } do
    local leak = leaks(text)
    assert.is_nil(leak, where .. ": the token shows (" .. tostring(leak) .. ") in: " .. tostring(text))
  end
  if err.body ~= nil then
    local text = table.concat(flatten(err.body), " ")
    assert.is_nil(leaks(text), where .. ": the token shows in err.body: " .. text)
  end
  for _, line in ipairs(logged) do
    assert.is_nil(leaks(line), where .. ": the token shows in a log line: " .. line)
  end
end

setup(function()
  srv = hostile.start()
end)

teardown(function()
  if srv then srv:stop() end
end)

before_each(function()
  logged = {}
  droplit = envclone.droplit{ token = TOKEN, base_url = srv.url, timeout = 5, retry = false,
    log = function(_, msg) logged[#logged + 1] = msg end }
end)

describe("input 7: a secret echoed in any form is masked", function()
  it("a 302 with the token percent-encoded in Location (the issue's case)", function()
    srv:script(302, { "Location: https://login.example/sso?token=AbCd%2BEfGh%2FIjKl%3D%3DPLACEHOLDER" }, "")
    local res, err = droplit:create_environment{ ecosystemId = ECO }
    assert.is_nil(res)
    assert.are.equal(302, err.status)
    assert.matches("token=***", err.message, 1, true)
    assert_masked(err, "302 Location")
  end)

  for name, form in pairs(FORMS) do
    it("a 401 whose JSON message, code and request id hold the " .. name .. " form", function()
      -- a header carries no JSON escapes: those forms send the token verbatim there
      local header_form = form:find("\\", 1, true) and TOKEN or form
      srv:script(401, { "Content-Type: application/json", "X-Request-Id: req-" .. header_form },
        '{"errors":[{"type":"unauthorized","name":"bad_token ' .. form .. '","message":"invalid token ' .. form
          .. '"}],"detail":{"' .. form .. '":["' .. form .. '"]}}')
      local res, err = droplit:create_environment{ ecosystemId = ECO }
      assert.is_nil(res)
      assert.are.equal(401, err.status)
      -- base64 at an offset keeps the characters that encode the text around the token
      assert.matches("^invalid token %w*%*%*%*%w*=*$", err.message)
      assert.is_table(err.body, "the masked body still decodes")
      assert_masked(err, name)
    end)

    it("a 401 plain-text body holding the " .. name .. " form", function()
      srv:script(401, { "Content-Type: text/plain" }, "Unauthorized: token " .. form .. " is not valid here")
      local _, err = droplit:create_environment{ ecosystemId = ECO }
      assert.are.equal(401, err.status)
      assert.matches("***", err.message, 1, true)
      assert_masked(err, name .. " (text)")
    end)
  end

  it("a body cut in the middle of the token still hides its first part", function()
    srv:script(401, { "Content-Type: text/plain" }, "invalid token " .. TOKEN:sub(1, 12))
    local _, err = droplit:create_environment{ ecosystemId = ECO }
    assert.is_nil(err.message:find(TOKEN:sub(1, 12), 1, true), err.message)
    assert.matches("invalid token ***", err.message, 1, true)
  end)

  it("ordinary text that merely looks like part of the token is left alone", function()
    srv:script(401, { "Content-Type: application/json" }, '{"errors":[{"message":"AbCd is not a valid PLACE"}]}')
    local _, err = droplit:create_environment{ ecosystemId = ECO }
    assert.are.equal("AbCd is not a valid PLACE", err.message)
  end)
end)

describe("core.mask, the same routine for the command line's output", function()
  it("masks every form of the secrets it is given, and nothing else", function()
    for name, form in pairs(FORMS) do
      local out = core.mask("before " .. form .. " after", { "unrelated-secret", TOKEN })
      assert.is_nil(leaks(out), name .. ": " .. out)
      assert.matches("^before %w*%*%*%*%w*=* after$", out, nil, name)
    end
    assert.are.equal("no secret here", core.mask("no secret here", { TOKEN }))
    -- a secret holding the characters the encodings start with: each echo is read both ways
    local odd = [[pa%25ss\w&rd+ 12]]
    for _, echo in ipairs{ odd, [[pa%2525ss%5Cw%26rd%2B%2012]], [[pa%25ss\\w&rd+ 12]], [[pa%25ss\w&amp;rd&#43;&#32;12]],
      [[pa%25ss\w%26rd%2B+12]], [[pa%25ss\w&rd\u002b\u002012]], [[pa\u002525ss\u005cw\u0026rd+ 12]] } do
      assert.are.equal("[***]", core.mask("[" .. echo .. "]", { odd }), echo)
    end
    assert.are.equal("short ones are ignored: abc", core.mask("short ones are ignored: abc", { "abc" }))
  end)
end)

describe("input 8: a credential shorter than 8 characters", function()
  it("is refused when any client is made, without echoing it", function()
    for vendor, v in pairs(core.vendors) do
      for _, name in ipairs(v.credentials) do
        for _, short in ipairs{ "a", "s3cr3t!", "1234567" } do
          local ok, msg = pcall(envclone[vendor], { [name] = short })
          assert.is_false(ok, vendor .. "." .. name .. " = " .. short .. " was accepted")
          assert.matches("option '" .. name .. "' must be 8 to %d+ characters long", msg)
          if #short > 1 then assert.is_nil(msg:find(short, 1, true), "the raise shows the value: " .. msg) end
        end
        assert.is_truthy(envclone[vendor]{ [name] = "12345678" }, "8 characters are enough")
      end
    end
  end)
end)
