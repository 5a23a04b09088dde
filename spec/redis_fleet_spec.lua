-- rate_limit_store across processes: a holder stopped (SIGSTOP) past its
-- lease. The next caller, in another process, proceeds once the lease has
-- lapsed; the holder, continued, releases late and reports a lost lease.
local socket = require("socket")
local cjson = require("cjson.safe")
local emu = require("spec.support.emu")
local rs = require("spec.support.redis")
local limiter = require("envclone.limiter")

describe("rate_limit_store: a holder stopped past its lease", function()
  if not rs.available() then
    it("needs redis-server (scripts/deps.sh test)", function() error("redis-server is not installed") end)
    return
  end
  local r
  setup(function() r = rs.start{} end)
  teardown(function() if r then r:stop() end end)

  it("the next caller proceeds after the lease deadline; the late release is a lost lease", function()
    local ready, out, errf = os.tmpname(), os.tmpname(), os.tmpname()
    os.remove(ready)
    local lua = os.getenv("ENVCLONE_LUA") or "lua5.4"
    -- no `timeout` wrapper: the pid must be the Lua process itself, for SIGSTOP
    local cmd = "env WORKER_MODE=hold WORKER_URL=http://kontent.test/v2 WORKER_ENV=env-held WORKER_TIMEOUT=0.5"
      .. " WORKER_HOLD=0.5 WORKER_STORE=" .. emu.quote(r.url) .. " WORKER_READY=" .. emu.quote(ready)
      .. " " .. lua .. " spec/support/redis_worker.lua >" .. out .. " 2>" .. errf .. " & echo $!"
    local p = assert(io.popen(cmd, "r"))
    local pid = tonumber(p:read("*l"))
    p:close()
    local deadline = socket.gettime() + 10
    while not emu.read_file(ready) and socket.gettime() < deadline do socket.sleep(0.01) end
    assert.is_truthy(emu.read_file(ready), emu.read_file(errf))
    os.execute("kill -STOP " .. pid)
    local held_at = socket.gettime()
    -- the holder's lease: its timeout (0.5 s) plus 1 s
    local lim = limiter.new("kontent", "http://kontent.test/v2", nil, nil, 5, r.url)
    local ticket = assert(limiter.acquire(lim, { environment_id = "env-held" }))
    local waited = socket.gettime() - held_at
    assert.is_true(waited >= 1.3 and waited < 2.5, tostring(waited))
    os.execute("kill -CONT " .. pid)
    deadline = socket.gettime() + 10
    while emu.alive(pid) and socket.gettime() < deadline do socket.sleep(0.02) end
    local result = cjson.decode(emu.read_file(out) or "")
    local log = emu.read_file(errf) or ""
    assert.are.same({ lost = 1 }, result, log)
    assert.matches("lost lease", log)
    -- its late release freed nothing: this process still holds the one slot
    local key = next(r:keys())
    local st = require("envclone.limiter.rule").decode(r:call("GET", key))
    assert.are.equal(1, st.n_inflight)
    assert.is_truthy(st.inflight[ticket.id])
    limiter.release(ticket, true)
    for _, f in ipairs{ ready, out, errf } do os.remove(f) end
  end)

  it("ENVCLONE_RATE_LIMIT_STORE names the store of a client that does not", function()
    local e = emu.start{ kontent_rate_limit = true }
    r:call("FLUSHALL")
    local out = os.tmpname()
    local lua = os.getenv("ENVCLONE_LUA") or "lua5.4"
    local cmd = "env ENVCLONE_RATE_LIMIT_STORE=" .. emu.quote(r.url) .. " WORKER_URL=" .. emu.quote(e.base_urls.kontent)
      .. " WORKER_KEY=" .. emu.quote(e.credentials.kontent.api_key) .. " WORKER_ENV="
      .. emu.quote(e.seed.kontent.environment_id) .. " WORKER_N=2 timeout 30 " .. lua
      .. " spec/support/redis_worker.lua >" .. out .. " 2>&1"
    local ok = os.execute(cmd)
    local text = emu.read_file(out) or ""
    os.remove(out)
    e:stop()
    assert.is_truthy(ok == true or ok == 0, text)
    assert.are.same({ 200, 200 }, cjson.decode(text), text)
    local k = next(r:keys())
    assert.is_truthy(k, "no key in Redis")
    assert.matches("^envclone:rl:", k)
  end)
end)
