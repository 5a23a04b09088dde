-- The rate limiter's Redis store (rate_limit_store), in one process against
-- a real redis-server and the emulator: the rule kept in Redis, its keys
-- (hashed, with a TTL, gone after the longest window plus the lease), the
-- scripts loaded again after SCRIPT FLUSH and a restart, leases that lapse
-- and the late release reported, Redis down with "local" (fallback, one log
-- line, bounded latency) and "closed" (the stable reason), and bad input.
-- The fleet (several processes and nginx workers) is in
-- spec/nginx/redis_fleet_test.lua.
local socket = require("socket")
local emu = require("spec.support.emu")
local rs = require("spec.support.redis")
local limiter = require("envclone.limiter")
local envclone = require("envclone")

if not rs.available() then
  describe("rate_limit_store", function()
    it("needs redis-server (scripts/deps.sh test)", function() error("redis-server is not installed") end)
  end)
  return
end

local PASSWORD = "redis-pw-7f3a"

describe("rate_limit_store: Redis", function()
  local e, r, lines
  setup(function()
    e = emu.start{ kontent_rate_limit = true }
    r = rs.start{ password = PASSWORD }
  end)
  teardown(function()
    limiter.log_sink = nil
    if r then r:stop() end
    if e then e:stop() end
  end)
  before_each(function()
    e:reset()
    e:config{ kontent_rate_limit = true }
    r:call("FLUSHALL")
    lines = {}
    limiter.log_sink = function(line) lines[#lines + 1] = line end
  end)

  local function kontent(extra)
    local opts = { rate_limit_store = r.url, retry = false }
    for k, v in pairs(extra or {}) do opts[k] = v end
    return e:client("kontent", opts)
  end
  local function get(k) return k:get_environment{ environment_id = e.seed.kontent.environment_id } end

  local function no_secret(text)
    text = tostring(text)
    for _, s in ipairs{ PASSWORD, e.credentials.kontent.api_key, e.seed.kontent.environment_id } do
      assert.is_nil(text:find(s, 1, true), "secret shown in: " .. text)
    end
  end

  it("keeps Kontent's 10 per second across two clients, 0 x 429, keys hashed with a TTL", function()
    local a, b = kontent(), kontent()
    local t0 = socket.gettime()
    for i = 1, 12 do
      local res, err = get(i % 2 == 0 and a or b)
      assert.is_truthy(res, tostring(err))
    end
    -- 12 calls at 10 per second: the 11th waited for the first to leave the window
    assert.is_true(socket.gettime() - t0 >= 1.0)
    local keys = r:keys()
    local n = 0
    for k, ttl in pairs(keys) do
      n = n + 1
      assert.matches("^envclone:rl:%x+$", k)
      -- the longest window (60 s) plus margins; never without an expiry
      assert.is_true(ttl > 0 and ttl <= 64000, k .. " " .. ttl)
      no_secret(k)
      no_secret(r:call("GET", k))
    end
    assert.are.equal(1, n)
    no_secret(tostring(a))
    assert.are.same({}, lines)
  end)

  it("a key is gone after its longest window plus the lease", function()
    local lim = limiter.new("versori", e.base_urls.versori, { per_second = 5, concurrency_per_key = 1 }, nil, 1, r.url)
    local t = assert(limiter.acquire(lim, {}))
    local keys = r:keys()
    local k, ttl = next(keys)
    assert.is_truthy(k)
    -- 1 s window, a lease of 2 s (timeout + 1), a waiter's grace: at most 5 s
    assert.is_true(ttl > 0 and ttl <= 5100, tostring(ttl))
    limiter.release(t, true)
    socket.sleep(3.2)
    assert.are.same({}, r:keys())
  end)

  it("loads its scripts again after SCRIPT FLUSH", function()
    local k = kontent()
    assert.is_truthy(get(k))
    r:call("SCRIPT", "FLUSH")
    local res, err = get(k)
    assert.is_truthy(res, tostring(err))
    assert.are.same({}, lines)
  end)

  it("a lapsed lease: the next caller proceeds after its deadline, the late release is a lost lease", function()
    local store = r.url
    local holder = limiter.new("kontent", e.base_urls.kontent, nil, nil, 0.5, store) -- lease 1.5 s
    local other = limiter.new("kontent", e.base_urls.kontent, nil, nil, 5, store)
    local args = { environment_id = "env-lease" }
    -- its holder (a coroutine) has gone without a release: nobody renews the lease
    local t1
    assert(coroutine.resume(coroutine.create(function() t1 = assert(limiter.acquire(holder, args)) end)))
    local t0 = socket.gettime()
    local t2 = assert(limiter.acquire(other, args))
    local waited = socket.gettime() - t0
    assert.is_true(waited >= 1.3 and waited < 2.5, tostring(waited))
    local lost = limiter.lost_leases
    limiter.release(t1, true)
    assert.are.equal(lost + 1, limiter.lost_leases)
    assert.are.equal(1, #lines)
    assert.matches("lost lease", lines[1])
    no_secret(lines[1])
    -- the late release freed nothing: t2 still holds the key's one slot
    local k = next(r:keys())
    local st = require("envclone.limiter.rule").decode(r:call("GET", k))
    assert.are.equal(1, st.n_inflight)
    assert.is_truthy(st.inflight[t2.id])
    limiter.release(t2, true)
    st = require("envclone.limiter.rule").decode(r:call("GET", k))
    assert.are.equal(0, st.n_inflight)
  end)

  it("a holder that lives past its lease keeps it: renewed on the process's next look at Redis", function()
    local rule = require("envclone.limiter.rule")
    local lim = limiter.new("kontent", e.base_urls.kontent, nil, nil, 0.5, r.url) -- lease 1.5 s
    local t1 = assert(limiter.acquire(lim, { environment_id = "env-renew" }))
    local k = next(r:keys())
    local d0 = rule.decode(r:call("GET", k)).inflight[t1.id]
    socket.sleep(0.6)
    -- another key's admission looks at Redis: t1's lease (due after a third of it) is renewed
    local t2 = assert(limiter.acquire(lim, { environment_id = "env-renew-2" }))
    local d1 = rule.decode(r:call("GET", k)).inflight[t1.id]
    assert.is_true(d1 >= d0 + 0.5, d0 .. " " .. d1)
    limiter.release(t2, true)
    limiter.release(t1, true)
    assert.are.same({}, lines)
  end)

  it("Redis paused then killed: calls go on through the fallback with one log line, then shared again", function()
    local backoff = require("envclone.limiter.redis")
    local k = kontent()
    assert.is_truthy(get(k))
    backoff.BACKOFF = 1
    r:pause()
    local t0 = socket.gettime()
    local res = get(k)
    local first = socket.gettime() - t0
    assert.is_truthy(res)
    -- one read timeout (0.25 s) at most, not a hang
    assert.is_true(first < 0.6, tostring(first))
    t0 = socket.gettime()
    for _ = 1, 5 do assert.is_truthy(get(k)) end
    assert.is_true(socket.gettime() - t0 < 0.5) -- within the back-off: no Redis, no added latency
    assert.are.equal(1, #lines, table.concat(lines, "\n"))
    assert.matches("rate_limit_store redis://%*%*%*@127.0.0.1:%d+/0 unavailable", lines[1])
    no_secret(lines[1])
    -- back: the ends this process logged alone go into Redis's log with the next call
    r:resume()
    socket.sleep(1.1)
    local ok, err = pcall(function()
      assert.is_truthy(get(k))
      assert.matches("is back", lines[2])
      local key = next(r:keys())
      local st = require("envclone.limiter.rule").decode(r:call("GET", key))
      assert.are.equal(8, st.last - st.first + 1)
      -- killed: the fallback again, one more line for this outage
      r:kill()
      for _ = 1, 2 do assert.is_truthy(get(k)) end
      assert.are.equal(3, #lines, table.concat(lines, "\n"))
      assert.matches("unavailable", lines[3])
      -- a restarted Redis (no persistence) has lost its log: past the 1 s window it is shared again
      r:restart()
      socket.sleep(1.1)
      assert.is_truthy(get(k))
      assert.matches("is back", lines[4])
      assert.is_truthy(next(r:keys()))
    end)
    backoff.BACKOFF = 5
    assert(ok, err)
  end)

  it("'closed': a store that stays down refuses the call with the stable reason, nothing sent", function()
    local down = "redis://:" .. PASSWORD .. "@127.0.0.1:" .. rs.free_port() .. "/0"
    local k = e:client("kontent", { rate_limit_store = down, rate_limit_store_failure = "closed", retry = false,
      timeout = 0.5 })
    local before = e:stats().requests
    local t0 = socket.gettime()
    local res, err = get(k) -- an expected failure: nil, err (never a raise)
    local took = socket.gettime() - t0
    assert.is_nil(res)
    assert.are.equal("unavailable", err.kind)
    assert.are.equal("rate_limit_store", err.reason)
    assert.is_true(took >= 0.45 and took < 1.5, tostring(took))
    no_secret(tostring(err))
    assert.are.equal(before, e:stats().requests)
    -- limiter.admit gives the same as nil, err
    local lim = limiter.new("kontent", e.base_urls.kontent, nil, nil, 0.2, down, "closed")
    local ticket, aerr = limiter.admit(lim, { environment_id = "x" })
    assert.is_false(ticket)
    assert.are.equal("rate_limit_store", aerr.reason)
  end)

  it("a non-Redis server on the port: fallback with a log line ('local'), the calls go on", function()
    local k = e:client("kontent", { rate_limit_store = "redis://:" .. PASSWORD .. "@127.0.0.1:" .. e.port .. "/0",
      retry = false })
    local t0 = socket.gettime()
    for _ = 1, 3 do assert.is_truthy(get(k)) end
    assert.is_true(socket.gettime() - t0 < 1)
    assert.are.equal(1, #lines)
    assert.matches("unavailable", lines[1])
    no_secret(lines[1])
  end)

  it("bad input at construction: a clear error, the password masked", function()
    local function refuses(opts, pattern)
      local ok, err = pcall(envclone.kontent, opts)
      assert.is_false(ok)
      assert.matches(pattern, err, 1, true)
      assert.is_nil(tostring(err):find("topsecret", 1, true))
    end
    local base = { api_key = "kkkkkkkkkk", base_url = e.base_urls.kontent }
    local function with(extra)
      local o = {}
      for key, v in pairs(base) do o[key] = v end
      for key, v in pairs(extra) do o[key] = v end
      return o
    end
    refuses(with{ rate_limit_store = "localhost:6379" }, "malformed store URL")
    refuses(with{ rate_limit_store = "memcached://u:topsecret@h:1" }, "unknown store URL scheme 'memcached'")
    refuses(with{ rate_limit_store = "redis://u:topsecret@h:x/0" }, "malformed")
    refuses(with{ rate_limit_store = 6379 }, "must be a redis:// URL")
    refuses(with{ rate_limit_store = r.url, rate_limit_store_failure = "open" }, "'local' or 'closed'")
    refuses(with{ rate_limit_store_failure = "open" }, "'local' or 'closed'")
  end)
end)
