-- envclone.redis, the small RESP client of the rate limiter's Redis store:
-- store URLs (and their masking), commands and replies against a real
-- redis-server, and servers that are not Redis (garbage, silence): an
-- error within the timeout, never a hang.
local socket = require("socket")
local redis = require("envclone.redis")
local rs = require("spec.support.redis")

describe("envclone.redis: store URLs", function()
  it("parses host, port, db, user and password", function()
    local c = assert(redis.parse_url("redis://app:s%40cret@cache.example:6380/3"))
    assert.are.same({ "cache.example", 6380, 3, "app", "s@cret" }, { c.host, c.port, c.db, c.user, c.password })
    assert.are.equal("redis://app:***@cache.example:6380/3", c.url)
    c = assert(redis.parse_url("redis://127.0.0.1"))
    assert.are.same({ "127.0.0.1", 6379, 0 }, { c.host, c.port, c.db })
    assert.is_nil(c.password)
    c = assert(redis.parse_url("redis://:pw@[::1]:7000/"))
    assert.are.same({ "::1", 7000, 0, "pw" }, { c.host, c.port, c.db, c.password })
    assert.is_nil(c.user)
  end)

  it("refuses malformed URLs and unknown schemes, the password masked", function()
    local cases = {
      { "localhost:6379", "malformed" },
      { "http://127.0.0.1:6379", "unknown store URL scheme 'http'" },
      { "rediss://u:topsecret@h:1/0", "unknown store URL scheme" },
      { "redis://u:topsecret@/0", "no host" },
      { "redis://u:topsecret@h:99999/0", "bad port" },
      { "redis://u:topsecret@h:1/x", "/DB" },
      { "redis://u:topsecret@h:1/1/2", "/DB" },
    }
    for _, case in ipairs(cases) do
      local c, err = redis.parse_url(case[1])
      assert.is_nil(c, case[1])
      assert.matches(case[2], err, 1, true)
      assert.is_nil(err:find("topsecret", 1, true), err)
    end
    assert.matches("must be a string", select(2, redis.parse_url(42)))
    assert.are.equal("redis://***@h:1/0", redis.masked("redis://topsecret@h:1/0"))
    assert.are.equal("***", redis.masked("topsecret@h"))
    -- a generated (base64) password may hold an unencoded "/": still user information
    assert.are.equal("redis://***@h:1/0", redis.masked("redis://:top/secret@h:1/0"))
    local cfg = assert(redis.parse_url("redis://:top/secret@h:1/0"))
    assert.are.same({ "h", 1, 0, "top/secret" }, { cfg.host, cfg.port, cfg.db, cfg.password })
    local _, perr = redis.parse_url("redis://:top/secret@/0")
    assert.is_nil(perr:find("secret", 1, true), perr)
  end)

  it("encodes commands as RESP arrays of bulk strings", function()
    assert.are.equal("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n10\r\n", redis.encode("SET", "k", 10))
    assert.are.equal("*1\r\n$0\r\n\r\n", redis.encode(""))
  end)

  it("reads every reply type and refuses what is not RESP", function()
    local function parse(text)
      local pos = 1
      return redis.read_reply(function(p)
        if p == "*l" then
          local e = text:find("\r\n", pos, true)
          if not e then return nil, "closed" end
          local line = text:sub(pos, e - 1)
          pos = e + 2
          return line
        end
        local s = text:sub(pos, pos + p - 1)
        pos = pos + p
        if #s < p then return nil, "closed" end
        return s
      end)
    end
    assert.are.equal("OK", parse("+OK\r\n"))
    assert.are.same({ redis_error = "ERR no" }, parse("-ERR no\r\n"))
    assert.are.equal(-12, parse(":-12\r\n"))
    assert.are.equal("a\r\nb", parse("$4\r\na\r\nb\r\n"))
    assert.is_false(parse("$-1\r\n"))
    assert.are.same({ "x", 1, { "y" } }, parse("*3\r\n$1\r\nx\r\n:1\r\n*1\r\n+y\r\n"))
    for _, bad in ipairs{ "HTTP/1.1 400 Bad Request\r\n", ":x\r\n", "$5\r\nab\r\n", "$99999999999\r\n",
      "*99999\r\n", "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n+x\r\n", "$-2\r\n", "" } do
      local v, err = parse(bad)
      assert.is_nil(v, bad)
      assert.is_string(err)
    end
  end)
end)

describe("envclone.redis: a real redis-server", function()
  if not rs.available() then
    it("needs redis-server (scripts/deps.sh test)", function() error("redis-server is not installed") end)
    return
  end
  local r
  setup(function() r = rs.start{ password = "hunter2-secret" } end)
  teardown(function() if r then r:stop() end end)

  it("authenticates, selects the db and runs commands", function()
    local cfg = assert(redis.parse_url("redis://:hunter2-secret@127.0.0.1:" .. r.port .. "/2"))
    local c = assert(redis.connect(cfg, 1))
    assert.are.equal("OK", c:call("SET", "k", "v"))
    assert.are.equal("v", c:call("GET", "k"))
    assert.is_false(c:call("GET", "missing"))
    assert.are.equal(1, c:call("DEL", "k"))
    assert.is_true(redis.is_error(c:call("NOSUCHCOMMAND")))
    assert.matches("envclone.redis connection to redis://%*%*%*@", tostring(c))
    c:close()
    assert.is_nil((c:call("PING")))
  end)

  it("a wrong password: a clear error, the password not in it", function()
    local cfg = assert(redis.parse_url("redis://:wrong-secret@127.0.0.1:" .. r.port .. "/0"))
    local c, err = redis.connect(cfg, 1)
    assert.is_nil(c)
    assert.matches("authentication to redis://%*%*%*@127.0.0.1:%d+/0 failed", err)
    assert.is_nil(err:find("wrong-secret", 1, true))
  end)

  it("nothing listening: refused at once", function()
    local cfg = assert(redis.parse_url("redis://127.0.0.1:" .. rs.free_port()))
    local t0 = socket.gettime()
    local c, err = redis.connect(cfg, 1)
    assert.is_nil(c)
    assert.matches("cannot connect", err)
    assert.is_true(socket.gettime() - t0 < 0.5)
  end)
end)

describe("envclone.redis: a server that is not Redis", function()
  it("one that never answers: a timeout, bounded", function()
    local server = assert(socket.bind("127.0.0.1", 0)) -- listens, never accepts, never answers
    local _, port = server:getsockname()
    local cfg = assert(redis.parse_url("redis://127.0.0.1:" .. port))
    local c = assert(redis.connect(cfg, 0.2))
    local t0 = socket.gettime()
    local res, err = c:call("PING")
    assert.is_nil(res)
    assert.matches("timeout", err)
    assert.is_true(socket.gettime() - t0 < 1)
    server:close()
  end)

  it("one that answers garbage (an HTTP server): a protocol error", function()
    local e = require("spec.support.emu").start{}
    local cfg = assert(redis.parse_url("redis://127.0.0.1:" .. e.port))
    local c = assert(redis.connect(cfg, 1))
    local res, err = c:call("PING")
    e:stop()
    assert.is_nil(res)
    assert.is_string(err)
  end)
end)

describe("envclone.redis: the fuzz harness (scripts/fuzz_redis.lua)", function()
  it("reads 5000 random and mutated replies without a raise or a read past the end", function()
    local lua = os.getenv("ENVCLONE_LUA") or "lua5.4"
    local p = assert(io.popen(lua .. " scripts/fuzz_redis.lua 5000 " .. os.time() .. " 2>&1", "r"))
    local out = p:read("*a")
    local ok = p:close()
    assert.is_truthy(ok, out)
    assert.matches("fuzz_redis: 5000 inputs, seed %d+: ok", out)
  end)
end)
