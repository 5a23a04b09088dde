--- Client-side rate limits: each vendor's documented limits, kept before
-- the vendor has to answer 429.
--
-- A policy is `{ per_second =, per_minute =, concurrency_per_key =, key = }`:
-- at most `concurrency_per_key` attempts in flight and at most `per_second`
-- (`per_minute`) attempts in any sliding 1 s (60 s) window, counted per
-- value of the argument named by `key` (Kontent.ai: `environment_id`), or
-- per client host when the policy has no key. Each attempt counts, retries
-- and waiter polls included. Vendors whose pages document no limit get none.
--
-- The window is a sliding log, not a token bucket: a bucket that bursts
-- `per_second` calls at once and then refills lets more than `per_second`
-- requests fall in one second. The log records when each attempt *ended*
-- (an attempt in flight counts as not yet ended), and a new attempt starts
-- only when fewer than the limit ended inside the last window widened by
-- `MARGIN`. The server receives an attempt somewhere between its start and
-- its end, so any `per_second + 1` attempts the server sees span more than a
-- second, whatever the network delays -- provided the clocks are exact and
-- agree. They need not: OpenResty's `ngx.now` (which envclone.runtime used
-- to read inside nginx) gives whole milliseconds rounded down, so an end was
-- logged up to 1 ms before the server saw that attempt, and a start that
-- came exactly as the log allowed fell inside the server's second (Kontent
-- answered 429); and the server's own clock and stamping have their slack.
-- The margin in the rule, not in the sleeps, covers that: a start always
-- comes `MARGIN` late, however the waiter was woken.
--
-- State lives in this Lua state (one process, or one nginx worker), shared
-- by every client aimed at the same host; inside OpenResty a client with
-- `rate_limit_dict = "NAME"` keeps it in that `lua_shared_dict` instead, so
-- all workers share one limit. Waiting uses `envclone.runtime.sleep`, which
-- yields inside a batch task and inside nginx.
-- @module envclone.limiter
local core = require("envclone.core")
local runtime = require("envclone.runtime")

local limiter = {}

-- How long an end stays in a window after the window has passed it
-- (seconds): more than a coarse clock's resolution (ngx.now: 1 ms, rounded
-- down), so a logged end is never later than the server's own record of
-- that attempt by the time a start may count it out.
local MARGIN = 0.005
-- How often a call blocked by concurrency looks again (seconds).
local POLL = 0.002
-- A waiter that has not looked again for this long has gone (its batch was
-- dropped): it loses its place in the queue.
local STALE = 1
-- An attempt in flight longer than the client's timeout plus this has gone
-- (its coroutine was dropped): its slot is freed.
local INFLIGHT_GRACE = 1

local WINDOWS = { { field = "per_second", span = 1 }, { field = "per_minute", span = 60 } }

local policy_fields = { per_second = true, per_minute = true, concurrency_per_key = true }

--- The vendor's own policy (a table), or nil when its page documents none.
-- @tparam string vendor
-- @treturn table|nil
function limiter.vendor_policy(vendor)
  -- the vendor row's rate_limit column (src/ec_ops.c), where the source is cited
  local row = core.vendors[vendor]
  return row and row.rate_limit or nil
end

--- Builds a client's policy from its `rate_limit` option (raises on a
-- malformed one: a programmer error; the message has no position).
-- @tparam string vendor
-- @param user nil (the vendor's policy), false (no limit), or a table whose
--   fields `per_second`, `per_minute`, `concurrency_per_key` (positive
--   integers) replace the vendor's
-- @treturn table|false policy
function limiter.policy(vendor, user)
  local base = limiter.vendor_policy(vendor)
  if user == nil then return base or false end
  if user == false then return false end
  if type(user) ~= "table" then
    error("envclone." .. vendor .. ": option 'rate_limit' must be a table or false, got " .. type(user), 0)
  end
  local p = {}
  for k, v in pairs(base or {}) do p[k] = v end
  for k, v in pairs(user) do
    if not policy_fields[k] then
      error("envclone." .. vendor .. ": unknown rate_limit field '" .. tostring(k) .. "'", 0)
    end
    if type(v) ~= "number" or v < 1 or v ~= math.floor(v) or v == math.huge then
      error("envclone." .. vendor .. ": rate_limit." .. k .. " must be a positive integer", 0)
    end
    p[k] = v
  end
  return p
end

-- ---------------------------------------------------------------------------
-- Per-key state: { ends = {t...} ascending in [first, last],
-- inflight = { [id] = deadline }, n_inflight, queue = { {id, due}... } }
-- (`due`: when that waiter said it would look again).

local function new_state()
  return { ends = {}, first = 1, last = 0, inflight = {}, n_inflight = 0, queue = {} }
end

local function prune(st, now, longest)
  local ends, i = st.ends, st.first
  -- an end counts MARGIN longer than its longest window
  while i <= st.last and ends[i] <= now - longest - MARGIN do
    ends[i] = nil
    i = i + 1
  end
  if i > st.last then i, st.last = 1, 0 end
  st.first = i
  for id, deadline in pairs(st.inflight) do
    if deadline < now then
      st.inflight[id] = nil
      st.n_inflight = st.n_inflight - 1
    end
  end
  local q, kept = st.queue, {}
  for _, w in ipairs(q) do
    if w[2] >= now - STALE then kept[#kept + 1] = w end -- w[2]: when it said it would be back
  end
  st.queue = kept
end

local function empty(st)
  return st.last < st.first and st.n_inflight == 0 and #st.queue == 0
end

-- One decision, under the store's lock: start attempt `id` now (returns 0),
-- or the seconds to wait before looking again.
local function try_start(st, policy, id, now, deadline)
  local longest = policy.per_minute and 60 or 1
  prune(st, now, longest)
  -- first come, first served among the waiters of this key
  local pos
  for i, w in ipairs(st.queue) do
    if w[1] == id then pos = i; break end
  end
  if not pos then
    st.queue[#st.queue + 1] = { id, now }
    pos = #st.queue
  end
  local me = st.queue[pos]
  if pos > 1 then
    -- not its turn: at most one start per 1/per_second ahead of it, so it
    -- looks again after half that (a batch of 1000 calls to one Kontent
    -- environment must not wake 1000 tasks every few milliseconds)
    local gap = policy.per_second and 1 / policy.per_second or POLL
    local wait = math.max(POLL, (pos - 1) * gap / 2)
    me[2] = now + wait
    return wait
  end
  me[2] = now + POLL
  local wait = 0
  if policy.concurrency_per_key and st.n_inflight >= policy.concurrency_per_key then
    wait = POLL
  end
  for _, w in ipairs(WINDOWS) do
    local limit = policy[w.field]
    if limit then
      -- attempts in flight have not ended: they count in every window
      local room = limit - st.n_inflight
      if room <= 0 then
        wait = math.max(wait, POLL)
      else
        -- the room-th most recent end must leave the window first
        local idx = st.last - room + 1
        local free_at = idx >= st.first and st.ends[idx] + w.span + MARGIN
        if free_at and free_at > now then wait = math.max(wait, free_at - now) end
      end
    end
  end
  if wait > 0 then
    -- a waiter that woke a hair early (a clock of whole milliseconds, a
    -- rounded sum) must not spin on a wait of next to nothing
    wait = math.max(wait, POLL)
    me[2] = now + wait
    return wait
  end
  table.remove(st.queue, 1)
  st.inflight[id] = deadline
  st.n_inflight = st.n_inflight + 1
  return 0
end

local function finish(st, id, now, counted)
  if st.inflight[id] then
    st.inflight[id] = nil
    st.n_inflight = st.n_inflight - 1
  end
  if counted then
    -- ends stay ascending: a clock read under the lock never goes back
    local last = st.ends[st.last]
    st.last = st.last + 1
    st.ends[st.last] = (last and last > now) and last or now
  end
end

-- ---------------------------------------------------------------------------
-- Stores: this Lua state, or an OpenResty lua_shared_dict.

local local_states = {}
local local_count = 0

local local_store = {}

function local_store.update(key, fn)
  local st = local_states[key]
  if not st then
    st = new_state()
    local_states[key] = st
    local_count = local_count + 1
  end
  local r = fn(st)
  if empty(st) then
    local_states[key] = nil
    local_count = local_count - 1
  end
  return r
end

-- Serialised state for a shared dict: "E t t t|I id=d id=d|Q id=s id=s".
local function encode(st)
  local e, i, q = {}, {}, {}
  for k = st.first, st.last do e[#e + 1] = string.format("%.4f", st.ends[k]) end
  for id, d in pairs(st.inflight) do i[#i + 1] = id .. "=" .. string.format("%.4f", d) end
  for _, w in ipairs(st.queue) do q[#q + 1] = w[1] .. "=" .. string.format("%.4f", w[2]) end
  return table.concat(e, " ") .. "|" .. table.concat(i, " ") .. "|" .. table.concat(q, " ")
end

local function decode(s)
  local st = new_state()
  if not s then return st end
  local e, i, q = s:match("^([^|]*)|([^|]*)|([^|]*)$")
  for t in (e or ""):gmatch("%S+") do
    st.last = st.last + 1
    st.ends[st.last] = tonumber(t)
  end
  for id, d in (i or ""):gmatch("(%S+)=(%S+)") do
    st.inflight[id] = tonumber(d)
    st.n_inflight = st.n_inflight + 1
  end
  for id, t in (q or ""):gmatch("(%S+)=(%S+)") do st.queue[#st.queue + 1] = { id, tonumber(t) } end
  return st
end

local LOCK_TTL = 0.5      -- seconds: a worker that dies holding the lock frees it
local LOCK_SPINS = 2000   -- bounded: 2000 x 1 ms

local function dict_store(name)
  local ngx = rawget(_G, "ngx")
  local dict = type(ngx) == "table" and ngx.shared and ngx.shared[name]
  if not dict then
    return nil, "rate_limit_dict '" .. tostring(name) .. "' is not a lua_shared_dict"
  end
  local store = {}
  function store.update(key, fn)
    local lock = "envclone:lock:" .. key
    local spins = 0
    while not dict:add(lock, true, LOCK_TTL) do
      spins = spins + 1
      if spins > LOCK_SPINS then
        error("envclone: rate_limit_dict '" .. name .. "': lock not available after 2 s")
      end
      ngx.sleep(0.001)
    end
    local ok, r = pcall(function()
      local st = decode(dict:get("envclone:rl:" .. key))
      local res = fn(st)
      if empty(st) then
        dict:delete("envclone:rl:" .. key)
      else
        -- the log is never needed longer than its longest window
        local okset, err = dict:set("envclone:rl:" .. key, encode(st), 62)
        if not okset then error("envclone: rate_limit_dict '" .. name .. "': " .. tostring(err)) end
      end
      return res
    end)
    dict:delete(lock)
    if not ok then error(r, 0) end
    return r
  end
  return store
end

-- ---------------------------------------------------------------------------

local serial = 0
local function next_id()
  serial = serial + 1
  local ngx = rawget(_G, "ngx")
  local pid = type(ngx) == "table" and ngx.worker and ngx.worker.pid and ngx.worker.pid() or 0
  return pid .. ":" .. serial
end

--- The limiter of one client: its policy, its store and the key prefix
-- (vendor and host).
-- @tparam string vendor
-- @tparam string base_url
-- @param rate_limit the client's `rate_limit` option
-- @tparam[opt] string dict the client's `rate_limit_dict` option
-- @tparam number timeout the client's timeout, seconds
-- @treturn table|false
function limiter.new(vendor, base_url, rate_limit, dict, timeout)
  local policy = limiter.policy(vendor, rate_limit)
  if dict ~= nil and type(dict) ~= "string" then
    error("envclone." .. vendor .. ": option 'rate_limit_dict' must be a string", 0)
  end
  if not policy or not (policy.per_second or policy.per_minute or policy.concurrency_per_key) then
    return false
  end
  return { policy = policy, prefix = vendor .. " " .. base_url .. " ", dict = dict,
    hold = timeout + INFLIGHT_GRACE }
end

local function store_of(lim)
  -- outside nginx there are no shared dicts and no other workers: the same
  -- client code runs in plain Lua (tests, scripts) with this process's store
  if not lim.dict or type(rawget(_G, "ngx")) ~= "table" then return local_store end
  -- looked up on each call: a client built in init_by_lua has no ngx.shared yet
  local store, err = dict_store(lim.dict)
  if not store then error("envclone: " .. err, 0) end
  return store
end

--- Waits until an attempt may start under the client's limits, and
-- records it as in flight.
-- @tparam table lim from `limiter.new` (false: no limit)
-- @tparam table args the call's arguments (the policy's `key` is read from them)
-- @return a ticket for `limiter.release`, or nil when nothing is limited
function limiter.acquire(lim, args)
  if not lim then return nil end
  local policy = lim.policy
  local value = policy.key and type(args) == "table" and rawget(args, policy.key)
  local key = lim.prefix .. (type(value) == "string" and value or "")
  local store = store_of(lim)
  local id = next_id()
  while true do
    -- the clock is read under the store's lock: the decision is about the
    -- log as it is at that moment (another worker may have just added to it)
    local wait = store.update(key, function(st)
      local now = runtime.now()
      return try_start(st, policy, id, now, now + lim.hold)
    end)
    if wait == 0 then return { key = key, id = id, store = store } end
    runtime.sleep(wait)
  end
end

--- Ends an attempt started by `limiter.acquire`.
-- @param ticket from `acquire` (nil: nothing to do)
-- @tparam boolean counted false when the attempt surely never reached the
--   server (validation failed, connection refused): it leaves the log
function limiter.release(ticket, counted)
  if not ticket then return end
  ticket.store.update(ticket.key, function(st) finish(st, ticket.id, runtime.now(), counted) end)
end

--- Number of keys with state in this Lua state (for tests: stays bounded).
function limiter.local_keys() return local_count end

return limiter
