--- The rate limiter's Redis store (`rate_limit_store = "redis://..."`): one
-- limit shared by every process, worker and machine that names the same
-- store. See doc/limits.md.
--
-- The rule is `envclone.limiter.rule`'s source, shipped inside two scripts
-- that Redis runs atomically: one per admission (`start`) and one per
-- release (`finish`); a third renews the lease of a holder whose attempt
-- outlasts it (`renew`). Both read the clock with Redis's `TIME`, never a
-- client's, and keep per key the latest time used, so time never runs
-- backwards for a key (Redis restarted on a host whose clock stepped back).
-- Scripts are sent by SHA (EVALSHA) and loaded again on NOSCRIPT (after
-- SCRIPT FLUSH or a restart).
--
-- Keys: `envclone:rl:` and a 128-bit hash (four FNV-1a lanes) of the vendor,
-- the origin and the policy key's value (Kontent: the environment id): no
-- credential or id text is stored in Redis, and every write sets an expiry
-- of the longest window plus the longest lease, so nothing lingers.
--
-- "One at a time" is a lease: the slot's holder id (unique per attempt and
-- process) with a deadline, the call's timeout plus a margin. A holder that
-- dies or stops blocks the key only until then; its late release finds its
-- slot gone and says so (the caller logs a lost lease), freeing nothing else.
-- @module envclone.limiter.redis
local runtime = require("envclone.runtime")
local rule = require("envclone.limiter.rule")
local redis = require("envclone.redis")

local M = {}

-- The two scripts: the rule, then the glue that reads the state, decides
-- and writes it back with its expiry. ARGV[last] is a client clock (only
-- the test-only switch ENVCLONE_TEST_CLIENT_CLOCK sends one; then the guard
-- is off too, as a client-clock design would have it).
local PRELUDE = "local R = (function()\n" .. rule.source .. "\nend)()\n" .. [[
local function clock(client)
  if client ~= "" then return tonumber(client), false end
  local t = redis.call("TIME")
  return tonumber(t[1]) + tonumber(t[2]) / 1000000, true
end
local function load_state(key, client)
  local st = R.decode(redis.call("GET", key))
  local now, guarded = clock(client)
  if guarded then
    -- time never runs backwards for a key
    if st.clock and now < st.clock then now = st.clock end
    st.clock = now
  end
  return st, now
end
local function save_state(key, st, now)
  if R.state_empty(st) then
    redis.call("DEL", key)
    return
  end
  local lease = 0
  for _, d in pairs(st.inflight) do
    if d - now > lease then lease = d - now end
  end
  redis.call("SET", key, R.encode(st), "PX", math.ceil(R.ttl(st, lease) * 1000))
end
]]

M.START = PRELUDE .. [[
local policy = { per_second = tonumber(ARGV[1]), per_minute = tonumber(ARGV[2]),
  concurrency_per_key = tonumber(ARGV[3]) }
local st, now = load_state(KEYS[1], ARGV[6])
-- ends this process logged alone while the store was down, as ages
local imported = {}
for age in string.gmatch(ARGV[7] or "", "%S+") do imported[#imported + 1] = now - tonumber(age) end
R.merge_ends(st, imported)
local wait, busy = R.try_start(st, policy, ARGV[4], now, tonumber(ARGV[5]), true)
save_state(KEYS[1], st, now)
return { string.format("%.6f", wait), busy and 1 or 0 }
]]

M.FINISH = PRELUDE .. [[
local st, now = load_state(KEYS[1], ARGV[3])
local held = R.finish(st, ARGV[1], now, ARGV[2] == "1", ARGV[3] ~= "")
R.prune(st, now)
save_state(KEYS[1], st, now)
return held and 1 or 0
]]

-- A lease renewed by its holder, still alive, whose attempt lasts longer than
-- the lease (in a batch, waiting for a wire slot): 1 if it was still held.
M.RENEW = PRELUDE .. [=[
local st, now = load_state(KEYS[1], ARGV[3])
local held = st.inflight[ARGV[1]] ~= nil
if held then st.inflight[ARGV[1]] = now + tonumber(ARGV[2]) end
save_state(KEYS[1], st, now)
return held and 1 or 0
]=]

-- ---------------------------------------------------------------------------
-- Key hashing: four 32-bit FNV-1a lanes with different offset bases (plain
-- arithmetic, exact in doubles: Lua 5.1, LuaJIT and 5.4 alike).

local function fnv1a(s, h)
  for i = 1, #s do
    local b = s:byte(i)
    -- h XOR b on the low byte
    local low, x, bit = h % 256, 0, 1
    for _ = 1, 8 do
      if (low % 2) ~= (b % 2) then x = x + bit end
      low, b, bit = (low - low % 2) / 2, (b - b % 2) / 2, bit * 2
    end
    h = h - h % 256 + x
    -- h * 16777619 mod 2^32, as (h * 2^24 + h * 403) mod 2^32
    h = ((h % 256) * 16777216 + h * 403) % 4294967296
  end
  return h
end

local BASES = { 2166136261, 3735928559, 2654435769, 1013904223 }

--- The Redis key of a limiter key text: `envclone:rl:` and 32 hex digits.
-- @tparam string text vendor, origin and the policy key's value
-- @treturn string
function M.key(text)
  local out = {}
  for i, base in ipairs(BASES) do out[i] = string.format("%08x", fnv1a(i .. text, base)) end
  return "envclone:rl:" .. table.concat(out)
end

-- ---------------------------------------------------------------------------
-- Test-only hooks: a clock offset for this process, and the switch that
-- makes the scripts use the client's clock (with that offset) instead of
-- Redis's (spec/redis_fleet_spec.lua shows it lets too many calls in).
local TEST_OFFSET = tonumber(os.getenv("ENVCLONE_TEST_CLOCK_OFFSET") or "") or 0
local TEST_CLIENT_CLOCK = os.getenv("ENVCLONE_TEST_CLIENT_CLOCK") == "1"

local function client_clock()
  if not TEST_CLIENT_CLOCK then return "" end
  local ngx = runtime.ngx()
  local t
  if ngx and ngx.now then
    ngx.update_time()
    t = ngx.now()
  else
    t = require("socket").gettime()
  end
  return string.format("%.6f", t + TEST_OFFSET)
end

-- ---------------------------------------------------------------------------

--- How long one Redis exchange may take (seconds) before the store counts
-- as down: connect, send and each read.
M.TIMEOUT = 0.25
--- How long a store found down is skipped (seconds), with `failure = "local"`.
M.BACKOFF = 5
--- How often a head blocked by attempts in flight asks Redis again (seconds).
M.POLL = 0.005

local Store = {}
Store.__index = Store
Store.__tostring = function(s) return "envclone rate_limit_store " .. s.cfg.url end

local stores = {}

--- The store of one URL (one per URL in this Lua state; raises on a
-- malformed URL or failure mode, with the password masked).
-- @tparam string url `redis://[[user]:password@]host[:port][/db]`
-- @tparam[opt="local"] string failure "local" or "closed"
-- @treturn table store
function M.store(url, failure)
  failure = failure or "local"
  if failure ~= "local" and failure ~= "closed" then
    error("rate_limit_store_failure must be 'local' or 'closed', got " .. tostring(failure), 0)
  end
  local cfg, err = redis.parse_url(url)
  if not cfg then error("rate_limit_store: " .. err, 0) end
  local id = url .. " " .. failure
  local s = stores[id]
  if not s then
    s = setmetatable({ cfg = cfg, failure = failure, redis = true, shared = true, down_until = -math.huge,
      down = false, sha = {}, url = cfg.url, alone = {} }, Store)
    stores[id] = s
  end
  return s
end

--- Whether the store is being skipped (down, within its back-off).
-- @tparam number now `runtime.now()`
function Store:skipped(now)
  return self.down and now < self.down_until
end

-- A connection: inside nginx a pooled cosocket per exchange, in plain Lua
-- one kept per store.
function Store:conn()
  if self.c and self.c.sock then return self.c end
  local c, err = redis.connect(self.cfg, M.TIMEOUT)
  if not c then return nil, err end
  if not c.cosocket then self.c = c end
  return c
end

local function loaded(self, c, which, text)
  local sha = self.sha[which]
  if sha then return sha end
  local res, err = c:call("SCRIPT", "LOAD", text)
  if type(res) ~= "string" then
    return nil, res and redis.mask_text(res.redis_error or "unexpected reply to SCRIPT LOAD", self.cfg) or err
  end
  self.sha[which] = res
  return res
end

-- Runs script `which` (M.START or M.FINISH text) on key with args; the
-- reply, or nil and what went wrong.
function Store:eval(which, text, key, ...)
  local c, err = self:conn()
  if not c then return nil, err end
  for _ = 1, 2 do
    local sha, lerr = loaded(self, c, which, text)
    if not sha then
      c:close()
      return nil, lerr
    end
    local res, rerr = c:call("EVALSHA", sha, 1, key, ...)
    if res == nil then return nil, rerr end
    if not redis.is_error(res) then
      c:keepalive()
      return res
    end
    if not res.redis_error:find("^NOSCRIPT") then
      c:close()
      if c == self.c then self.c = nil end
      return nil, "Redis answered: " .. redis.mask_text(res.redis_error, self.cfg)
    end
    self.sha[which] = nil -- flushed or restarted: load it again
  end
  c:close()
  return nil, "the script could not be loaded"
end

local function num(v)
  return v and string.format("%d", v) or ""
end

--- One admission (the START script).
-- @tparam string key from `M.key`
-- @tparam table policy
-- @tparam string id the attempt's unique id
-- @tparam number hold the lease, seconds
-- @tparam[opt] string ages the ages (seconds, space-separated) of ends this
--   process logged alone while the store was down: added to the store's log
-- @treturn[1] number seconds before the window opens (0: started)
-- @treturn[1] boolean blocked by attempts in flight
-- @treturn[2] nil
-- @treturn[2] string what went wrong
function Store:start(key, policy, id, hold, ages)
  local res, err = self:eval("start", M.START, key, num(policy.per_second), num(policy.per_minute),
    num(policy.concurrency_per_key), id, string.format("%.3f", hold), client_clock(), ages or "")
  if res == nil then return nil, err end
  local wait = type(res) == "table" and tonumber(res[1])
  if not wait then return nil, "unexpected reply from the admission script" end
  return wait, res[2] == 1
end

--- One release (the FINISH script).
-- @tparam string key
-- @tparam string id
-- @tparam boolean counted
-- @treturn[1] boolean true when the slot was still held; false: its lease had lapsed
-- @treturn[2] nil
-- @treturn[2] string what went wrong
function Store:finish(key, id, counted)
  local res, err = self:eval("finish", M.FINISH, key, id, counted and "1" or "0", client_clock())
  if res == nil then return nil, err end
  if res ~= 0 and res ~= 1 then return nil, "unexpected reply from the release script" end
  return res == 1
end

--- Renews a lease (the RENEW script) for `hold` seconds from now.
-- @tparam string key
-- @tparam string id
-- @tparam number hold
-- @treturn[1] boolean true when the slot was still held
-- @treturn[2] nil
-- @treturn[2] string what went wrong
function Store:renew(key, id, hold)
  local res, err = self:eval("renew", M.RENEW, key, id, string.format("%.3f", hold), client_clock())
  if res == nil then return nil, err end
  return res == 1
end

--- Marks the store down until `now + BACKOFF`; true when it was up (the
-- caller logs the change once).
-- @tparam number now
function Store:mark_down(now)
  local was_up = not self.down
  self.down, self.down_until = true, now + M.BACKOFF
  if self.c then self.c:close(); self.c = nil end
  return was_up
end

--- Marks the store up again; true when it was down.
function Store:mark_up()
  local was_down = self.down
  self.down = false
  return was_down
end

return M
