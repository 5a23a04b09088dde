--- Client-side rate limits: each vendor's documented limits, kept before
-- the vendor has to answer 429.
--
-- A policy is `{ per_second =, per_minute =, concurrency_per_key =, key = }`:
-- at most `concurrency_per_key` attempts in flight and at most `per_second`
-- (`per_minute`) attempts in any sliding 1 s (60 s) window, counted per
-- value of the argument named by `key` (Kontent.ai: `environment_id`), or
-- per origin when the policy has no key. Each attempt counts, retries and
-- waiter polls included. Vendors whose pages document no limit get none.
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
-- **Keys.** A limit is kept per vendor, per origin and per value of the
-- policy's key. The origin is the client's base URL normalised: scheme and
-- host case-folded, the default port written out (`HTTP://LOCALHOST/v2` and
-- `http://localhost:80/v1` are one origin), so clients aimed at one
-- environment share its limit however their URLs are spelt.
--
-- **Waiting.** The waiters of one key queue first come, first served, in this
-- Lua state. Each has its index in the queue, so a look costs the same
-- whatever the queue's length, and only the head looks at the limits: the
-- others park until the waiter ahead of them starts or leaves, which wakes
-- the next one, and a finished attempt wakes the head. Inside a batch task
-- a parked waiter is woken through the batch's loop (`scheduler:wake`), inside
-- nginx by a semaphore; where nobody can wake it (a blocking call, a plain
-- coroutine) it looks again at a pace that halves as it nears the head.
-- A waiter that misses a look it promised by `STALE` has gone (its batch
-- was dropped, its request aborted), and so has every waiter of the same
-- batch or coroutine (its runner): they lose their places, and one of them
-- that comes back after all queues again at the end.
--
-- **Slots.** An attempt holds its slot from its start until it ends, as long
-- as that takes (in a batch it may wait for a wire slot, `max_in_flight`,
-- longer than any timeout); `release` frees it however the attempt ended.
-- Time alone never frees a slot whose holder may still send: a slot is
-- freed at the next look once its holder is gone (the coroutine finished or
-- was collected without releasing). A slot held longer than the client's
-- timeout plus `LEASE_GRACE` makes the limiter run a full garbage collection
-- (at most every `GC_EVERY` seconds) to find that out. In a shared dict,
-- where other workers cannot see this worker's coroutines, a slot is a
-- lease of that length which its worker renews while the holder lives (on
-- its own looks, and from a timer while it holds any): a worker that died
-- leaves leases that run out.
--
-- **State** lives in this Lua state (one process, or one nginx worker),
-- shared by every client of one vendor aimed at the same origin; inside
-- OpenResty a client with `rate_limit_dict = "NAME"` keeps it in that
-- `lua_shared_dict` instead, so all workers share one limit, and so does
-- every request when `lua_code_cache` is off (each request then has a Lua
-- VM of its own: a client without the dict logs a warning once per worker).
-- A client with `rate_limit_store = "redis://..."` keeps it in Redis, shared
-- by every process and machine naming that store (envclone.limiter.redis,
-- doc/limits.md): the rule (envclone.limiter.rule, the same source every
-- store runs) is decided there by a script, on Redis's clock; this Lua
-- state's queue still orders its own waiters, and only the head asks Redis.
-- Redis down: this Lua state's or the dict's store serves ("local"), or the
-- call fails ("closed").
-- A key's state is freed once its log has emptied and nothing waits or is in
-- flight, whether or not the key is used again. Waiting uses the batch's
-- loop, nginx's semaphores or `envclone.runtime.sleep`, never blocking a
-- batch or an nginx worker.
-- @module envclone.limiter
local core = require("envclone.core")
local runtime = require("envclone.runtime")
local heap = require("envclone.heap")
local rule = require("envclone.limiter.rule")

local limiter = {}

-- How long an end stays in a window after the window has passed it
-- (seconds): more than a coarse clock's resolution (ngx.now: 1 ms, rounded
-- down), so a logged end is never later than the server's own record of
-- that attempt by the time a start may count it out.
local MARGIN = rule.MARGIN
-- How often a waiter nobody can wake looks again while the head is blocked
-- by attempts in flight (seconds); also the shortest wait.
local POLL = rule.POLL
-- A waiter this late for a look it promised has gone (seconds).
local STALE = rule.STALE
-- A head blocked by attempts in flight that can be woken by their end still
-- looks again this often (seconds): its due stays near, so that waiters
-- behind it from another batch or request see soon enough when it has gone.
local HEAD_NAP = 0.5
-- The longest a waiter that can be woken parks without being asked to look
-- (seconds): a safety net only, the queue wakes it when its turn comes.
local NAP = 300
-- A slot's lease: the client's timeout plus this (seconds).
local LEASE_GRACE = 1
-- At most one full garbage collection per this many seconds, to find slots
-- whose holder was dropped.
local GC_EVERY = 5
-- How often a worker renews the leases of its slots in a shared dict.
local RENEW_EVERY = 0.5
-- How often a key's queue with waiters is looked at by the sweep, whether or
-- not the key is used (seconds).
local GATE_CHECK = 2

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

local DEFAULT_PORT = { http = 80, https = 443 }

--- The origin a limit is kept for: `scheme://host:port` with scheme and host
-- in lower case and the port written out (80 for http, 443 for https); the
-- path, the query and user information are not part of it.
-- @tparam string url a base URL
-- @treturn string
function limiter.origin(url)
  url = tostring(url)
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then return url end
  scheme = scheme:lower()
  local authority = rest:match("^[^/?#]*"):gsub("^.*@", "")
  local host, port
  if authority:sub(1, 1) == "[" then
    host, port = authority:match("^(%[[^%]]*%])(.*)$")
  else
    host, port = authority:match("^([^:]*)(.*)$")
  end
  if not host then return url end
  host = host:lower():gsub("%.$", "") -- "h." is the fully qualified "h"
  port = tonumber(port:match("^:(%d+)$") or "") or DEFAULT_PORT[scheme]
  return scheme .. "://" .. host .. (port and ":" .. string.format("%d", port) or "")
end

-- ---------------------------------------------------------------------------
-- The sweep's timetable: { at, seq, ... } entries on a heap (envclone.heap).
local heap_push, heap_pop = heap.push, heap.pop

-- ---------------------------------------------------------------------------
-- Attempt ids and the slots this Lua state holds.

-- One token per Lua VM (with lua_code_cache off, one per request), so ids
-- stay unique in a shared dict across workers and VMs.
local VM = string.format("%x%s", math.floor(core.now() * 1e6) % 0x7fffffff,
  (tostring({}):match("0x(%x+)") or ""))
do
  -- ids in a Redis store are shared by machines, whose pids may coincide
  local f = io.open("/dev/urandom", "rb")
  local bytes = f and f:read(6)
  if f then f:close() end
  if bytes then VM = VM .. (bytes:gsub(".", function(c) return string.format("%02x", c:byte()) end)) end
end

local serial = 0
local function id_prefix()
  local pid = runtime.worker_pid() or 0
  return pid .. ":" .. VM .. ":"
end

-- id -> the ticket of a slot this Lua state holds; weak: a ticket whose
-- holder was dropped is collected, and its slot found gone.
local live = setmetatable({}, { __mode = "v" })
local last_gc = -math.huge

local function is_mine(id)
  local p = id_prefix()
  return id:sub(1, #p) == p
end

-- ---------------------------------------------------------------------------
-- Per-key state and the decisions on it: envclone.limiter.rule, the one
-- text of the rule (the Redis store runs the same source inside Redis).

local new_state, state_empty = rule.new_state, rule.state_empty

-- Whether slot `id` (lease `deadline`) of state st has gone, for
-- rule.prune in this Lua state's store and in a shared dict: a holder of
-- this Lua state has gone when its coroutine ended without release or it
-- was collected; another worker's lease lasts until it runs out. Renews
-- the leases of this Lua state's live holders; `suspect` is set when one
-- has been held past its lease (its holder may have been dropped and not
-- yet collected).
local suspect_flag = false
local function local_gone(_, id)
  local t = live[id]
  if not t then return true end
  return t.co ~= nil and coroutine.status(t.co) == "dead"
end
local function shared_gone(st, id, deadline, now)
  local t = live[id]
  if t then
    if t.co ~= nil and coroutine.status(t.co) == "dead" then return true end
    if now - t.since > t.hold then suspect_flag = true end
    if deadline - now < t.hold / 2 then st.inflight[id] = now + t.hold end
    return false
  end
  return deadline < now or is_mine(id)
end
local function local_gone_watch(st, id, _, now)
  local t = live[id]
  if t and now - t.since > t.hold then suspect_flag = true end
  return local_gone(st, id)
end

local function prune(st, now, shared)
  suspect_flag = false
  rule.prune(st, now, shared and shared_gone or local_gone_watch)
  return suspect_flag
end

-- One decision under the store's lock (rule.try_start); third, whether a
-- slot of this Lua state is held past its lease.
local function try_start(st, policy, id, now, hold, shared)
  suspect_flag = false
  local wait, busy = rule.try_start(st, policy, id, now, hold, shared, shared and shared_gone or local_gone_watch)
  return wait, busy, suspect_flag
end

local finish = rule.finish

-- ---------------------------------------------------------------------------
-- The sweep: a timetable of states and queues to look at later, so that
-- those of keys no longer used are freed too.

local timetable, tseq = {}, 0
local local_states, local_count = {}, 0
local gates, gate_count = {}, 0
local gate_head -- (below)

local function look_later(at, kind, obj, key)
  tseq = tseq + 1
  heap_push(timetable, { at, tseq, kind, obj, key })
end

-- A state of the local store that still holds something looks again when
-- its last end leaves its window (or, with attempts in flight, soon).
-- A state of the local store is looked at when its last end leaves its
-- window (with attempts in flight or nothing logged, a little later).
local function watch_state(st, key, now)
  local at = st.last >= st.first and st.n_inflight == 0 and st.ends[st.last] + st.span + MARGIN
    or now + GATE_CHECK
  look_later(at, "state", st, key)
end

-- Frees the states and queues of this Lua state that hold nothing any more
-- (amortised: each is looked at once per GATE_CHECK at most).
local function sweep(now)
  while timetable[1] and timetable[1][1] <= now do
    local e = heap_pop(timetable)
    local kind, obj, key = e[3], e[4], e[5]
    if kind == "state" then
      if local_states[key] == obj then
        prune(obj, now, false)
        if state_empty(obj) then
          local_states[key] = nil
          local_count = local_count - 1
        else
          watch_state(obj, key, now)
        end
      end
    elseif gates[key] == obj then
      -- waiters that have gone are dropped; a queue left empty goes
      gate_head(key, obj, now)
      if obj.first > obj.last then
        gates[key] = nil
        gate_count = gate_count - 1
      else
        look_later(now + GATE_CHECK, "gate", obj, key)
      end
    end
  end
end

-- ---------------------------------------------------------------------------
-- Stores: this Lua state, or an OpenResty lua_shared_dict. `update(key, fn)`
-- runs fn(state) under the store's lock and returns what it returns.

local local_store = { shared = false }

function local_store.update(key, fn)
  local st = local_states[key]
  if not st then
    -- kept while the key is used; the sweep frees it once it holds nothing
    st = new_state()
    local_states[key] = st
    local_count = local_count + 1
    watch_state(st, key, runtime.now())
  end
  return fn(st)
end

local encode, decode = rule.encode, rule.decode

local LOCK_TTL = 0.5      -- seconds: a worker that dies holding the lock frees it
local LOCK_SPINS = 2000   -- bounded: 2000 x 1 ms

local function dict_store(name)
  local ngx = runtime.ngx()
  local dict = ngx and ngx.shared and ngx.shared[name]
  if not dict then
    return nil, "rate_limit_dict '" .. tostring(name) .. "' is not a lua_shared_dict"
  end
  local store = { shared = true, name = name }
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
    local ok, a, b, c = pcall(function()
      local st = decode(dict:get("envclone:rl:" .. key))
      local r1, r2, r3 = fn(st)
      if state_empty(st) then
        dict:delete("envclone:rl:" .. key)
      else
        -- the log is never needed longer than its longest window
        local okset, err = dict:set("envclone:rl:" .. key, encode(st), 62)
        if not okset then error("envclone: rate_limit_dict '" .. name .. "': " .. tostring(err)) end
      end
      return r1, r2, r3
    end)
    dict:delete(lock)
    if not ok then error(a, 0) end
    return a, b, c
  end
  return store
end

-- Slots held in shared dicts and in Redis, renewed while their holder
-- lives: from a timer inside nginx while any is held; in plain Lua, Redis
-- leases also on this Lua state's next look at a Redis store (a batch whose
-- other tasks wait), as due.
local dict_held = setmetatable({}, { __mode = "k" })
local renewing = false

-- Renews the Redis leases held longer than a third of their lease since
-- they were last renewed (their holder alive: a dropped ticket is collected).
local function renew_redis(now)
  for t in pairs(dict_held) do
    if t.rkey and now - t.renewed >= t.hold / 3 then
      if t.co ~= nil and coroutine.status(t.co) == "dead" then
        dict_held[t] = nil
      else
        t.renewed = now
        t.store:renew(t.rkey, t.id, t.hold)
      end
    end
  end
end

local function renew(premature)
  renewing = false
  if premature then return end
  local any = false
  for t in pairs(dict_held) do
    any = true
    if not t.rkey then
      pcall(t.store.update, t.key, function(st)
        if st.inflight[t.id] then st.inflight[t.id] = runtime.now() + t.hold end
      end)
    end
  end
  pcall(renew_redis, runtime.now())
  if any then
    local ok, timer = pcall(runtime.ngx().timer.at, RENEW_EVERY, renew)
    renewing = ok and timer and true or false
  end
end

local function hold_in_dict(ticket)
  dict_held[ticket] = true
  if renewing then return end
  local ngx = runtime.ngx()
  if ngx and ngx.timer and ngx.timer.at then
    local ok, timer = pcall(ngx.timer.at, RENEW_EVERY, renew)
    renewing = ok and timer and true or false
  end
end

-- ---------------------------------------------------------------------------
-- Waiters and their queue (a "gate" per key, in this Lua state).
--
-- A waiter: { seq (its index in the gate), due (when it looks again at the
-- latest), runner (its batch, else its coroutine), co, sched, sema, dropped }.
-- A gate: { q = { [seq] = waiter }, first, last }.

local MAIN = setmetatable({}, { __name = "envclone.limiter.main" })

-- Runners found gone (weak keys: a dropped batch is still collected).
local gone_runners = setmetatable({}, { __mode = "k" })

local semaphore -- ngx.semaphore, loaded on first use inside nginx

local function new_waiter(now)
  local co = coroutine.running()
  local sched = runtime.scheduler()
  local w = { due = now, co = co, sched = sched, runner = sched or co or MAIN }
  if sched and sched.wake then
    w.wake = true
  elseif co ~= nil and runtime.in_openresty() then
    if semaphore == nil then
      local ok, m = pcall(require, "ngx.semaphore")
      semaphore = ok and m or false
    end
    if semaphore then
      w.sema = semaphore.new(0)
      w.wake = true
    end
  end
  return w
end

-- Asks waiter w to look again now (nothing happens for one nobody can wake:
-- it looks at its own pace).
local function wake(w, now)
  if not w.wake then return end
  w.due = now -- it must show up within STALE, or it has gone
  if w.sema then
    if w.sema:count() <= 0 then w.sema:post(1) end
  else
    w.sched:wake(w.co)
  end
end

local function park(w, seconds)
  if w.sema then
    w.sema:wait(seconds)
  elseif w.wake then
    w.sched:sleep(seconds) -- ended early by w.sched:wake
  else
    runtime.sleep(seconds)
  end
end

local function enqueue(key, w, now)
  local g = gates[key]
  if not g then
    -- kept while the key is used; the sweep frees it once it is empty
    g = { q = {}, first = 1, last = 0 }
    gates[key] = g
    gate_count = gate_count + 1
    look_later(now + GATE_CHECK, "gate", g, key)
  end
  g.last = g.last + 1
  g.q[g.last] = w
  w.seq, w.dropped = g.last, nil
  return g
end

-- The first waiter of gate g that has not gone (nil: none). Waiters that
-- have gone are dropped on the way, and woken: one that was only late
-- queues again. A new head other than `me` is woken.
function gate_head(_, g, now, me)
  local q, moved = g.q, false
  while g.first <= g.last do
    local w = q[g.first]
    if w then
      if not gone_runners[w.runner] and w.due + STALE >= now then
        if moved and w ~= me then wake(w, now) end
        return w
      end
      -- it missed a look it promised: its runner has gone, every waiter of it too
      gone_runners[w.runner] = true
      w.dropped = true
      wake(w, now)
    end
    q[g.first] = nil
    g.first = g.first + 1
    moved = true
  end
  g.first, g.last = 1, 0
  return nil
end

-- Waiter w leaves gate g (it starts, or raised); a new head is woken.
local function leave(key, g, w, now)
  if g.q[w.seq] == w then g.q[w.seq] = nil end
  if w.seq == g.first then gate_head(key, g, now, w) end
end

-- ---------------------------------------------------------------------------

--- Test hook: when set, the origin every new limiter's keys are kept under,
-- whatever its base URL (spec/nginx/redis_fleet_test.lua: two emulators on
-- two ports stand in for one vendor seen from two machines).
limiter.test_origin = nil

--- The limiter of one client: its policy, its store and the key prefix
-- (vendor and origin).
-- @tparam string vendor
-- @tparam string base_url
-- @param rate_limit the client's `rate_limit` option
-- @tparam[opt] string dict the client's `rate_limit_dict` option
-- @tparam number timeout the client's timeout, seconds
-- @param[opt] store the client's `rate_limit_store` option: a
--   `redis://[[user]:password@]host[:port][/db]` URL shared by every process
--   that names it; nil reads `ENVCLONE_RATE_LIMIT_STORE` (unset or empty:
--   none); false: none
-- @tparam[opt="local"] string failure the client's `rate_limit_store_failure`:
--   "local" (Redis down: this process's or the dict's limiter, one log line,
--   Redis skipped for a back-off) or "closed" (wait up to the call's timeout,
--   then an error of kind "unavailable", reason "rate_limit_store")
-- @treturn table|false
function limiter.new(vendor, base_url, rate_limit, dict, timeout, store, failure)
  local policy = limiter.policy(vendor, rate_limit)
  if dict ~= nil and type(dict) ~= "string" then
    error("envclone." .. vendor .. ": option 'rate_limit_dict' must be a string", 0)
  end
  if store == nil then
    store = os.getenv("ENVCLONE_RATE_LIMIT_STORE")
    if store == "" then store = nil end
  end
  if store ~= nil and store ~= false and type(store) ~= "string" then
    error("envclone." .. vendor .. ": option 'rate_limit_store' must be a redis:// URL string", 0)
  end
  if failure ~= nil and failure ~= "local" and failure ~= "closed" then
    error("envclone." .. vendor .. ": option 'rate_limit_store_failure' must be 'local' or 'closed'", 0)
  end
  local remote
  if store then
    local ok, s = pcall(require("envclone.limiter.redis").store, store, failure)
    if not ok then error("envclone." .. vendor .. ": " .. tostring(s), 0) end
    remote = s
  end
  if not policy or not (policy.per_second or policy.per_minute or policy.concurrency_per_key) then
    return false
  end
  if dict == nil and not remote then limiter.warn_code_cache(vendor) end
  local origin = limiter.test_origin or limiter.origin(base_url)
  return { policy = policy, prefix = vendor .. " " .. origin .. " ", dict = dict,
    hold = timeout + LEASE_GRACE, timeout = timeout, remote = remote, vendor = vendor }
end

local function store_of(lim)
  -- outside nginx there are no shared dicts and no other workers: the same
  -- client code runs in plain Lua (tests, scripts) with this process's store
  if not lim.dict or not runtime.ngx() then return local_store end
  -- looked up on each call: a client built in init_by_lua has no ngx.shared yet
  local store, err = dict_store(lim.dict)
  if not store then error("envclone: " .. err, 0) end
  return store
end

-- How long a waiter that is not the head parks.
local function nap_behind(w, head, g, policy, now)
  local wait
  if w.wake then
    wait = NAP
  else
    -- nobody will wake it: at most one start per 1/per_second ahead of it,
    -- so it looks again after half that (a batch of 1000 calls to one
    -- Kontent environment must not wake 1000 tasks every few milliseconds)
    local gap = policy.per_second and 1 / policy.per_second or POLL
    wait = math.max(POLL, (w.seq - g.first) * gap / 2)
  end
  if head.runner ~= w.runner then
    -- the head belongs to another batch or request, which may go without a
    -- word: look again soon after it should have shown up
    wait = math.min(wait, math.max(POLL, head.due + STALE + POLL - now))
  end
  return wait
end

-- ---------------------------------------------------------------------------
-- The Redis store's failures and log lines.

--- Where the limiter's log lines go: nil (the default) writes them to
-- nginx's error log inside nginx, else to standard error; a function
-- `sink(line)` takes them instead (tests).
limiter.log_sink = nil

--- Releases that came after their lease had lapsed, in this Lua state (for tests).
limiter.lost_leases = 0

local function log(line)
  if limiter.log_sink then return limiter.log_sink(line) end
  local ngx = runtime.ngx()
  if ngx and ngx.log then
    ngx.log(ngx.WARN, line)
  else
    io.stderr:write(line, "\n")
    io.stderr:flush()
  end
end

local function store_down(lim, now, err)
  local remote = lim.remote
  if remote:mark_down(now) then
    log("envclone: rate_limit_store " .. remote.url .. " unavailable (" .. tostring(err) .. "); "
      .. lim.vendor .. " limits kept by this " .. (runtime.ngx() and "nginx worker" or "process")
      .. " alone, Redis tried again in " .. string.format("%g", require("envclone.limiter.redis").BACKOFF) .. " s")
  end
end

local function store_up(lim)
  if lim.remote:mark_up() then
    log("envclone: rate_limit_store " .. lim.remote.url .. " is back: limits shared again")
  end
end

local function store_error(lim, err)
  return core.error{ kind = "unavailable", reason = "rate_limit_store", vendor = lim.vendor, retryable = true,
    sent = false, maybe_applied = false,
    message = "rate_limit_store " .. lim.remote.url .. " unavailable and rate_limit_store_failure is "
      .. "'closed': " .. tostring(err) }
end

-- How long a head waits before asking a "closed" store that failed again.
local CLOSED_RETRY = 0.1

-- Key texts -> their Redis keys (hashing costs a few microseconds a byte).
local redis_keys, redis_key_count = {}, 0
local function redis_key(key)
  local k = redis_keys[key]
  if not k then
    k = require("envclone.limiter.redis").key(key)
    if redis_key_count >= 1000 then redis_keys, redis_key_count = {}, 0 end
    redis_keys[key] = k
    redis_key_count = redis_key_count + 1
  end
  return k
end

-- The store a head waiter asks now: the Redis store, unless it is down
-- (failure "local") or cosockets are not allowed here (nginx's init and
-- log phases), then the process's or the dict's.
local function remote_usable(lim, now)
  local remote = lim.remote
  if not remote then return false end
  if runtime.ngx() and not runtime.cosockets_available() then return false end
  if remote.failure == "local" and remote:skipped(now) then return false end
  return true
end

--- Waits until an attempt may start under the client's limits, and
-- records it as in flight. With a Redis store and `rate_limit_store_failure
-- = "closed"`, a store that stays down until the call's timeout has passed
-- refuses the attempt: nothing is sent.
-- @tparam table lim from `limiter.new` (false: no limit)
-- @tparam table args the call's arguments (the policy's `key` is read from them)
-- @return[1] a ticket for `limiter.release`, or nil when nothing is limited
-- @return[2] false
-- @return[2] the error (kind "unavailable", reason "rate_limit_store")
function limiter.admit(lim, args)
  if not lim then return nil end
  local policy = lim.policy
  local value = policy.key and type(args) == "table" and rawget(args, policy.key)
  local key = lim.prefix .. (type(value) == "string" and value or "")
  local id = id_prefix()
  serial = serial + 1
  id = id .. serial
  local now = runtime.now()
  local deadline = now + lim.timeout
  sweep(now)
  local w = new_waiter(now)
  enqueue(key, w, now)
  while true do
    -- it is here: its runner has not gone, and it is not late
    gone_runners[w.runner] = nil
    w.due = now
    local g = gates[key]
    if w.dropped or not g or g.q[w.seq] ~= w then
      -- it came back after it had been given up: at the end of the queue
      g = enqueue(key, w, now)
    end
    local head = gate_head(key, g, now, w)
    if head == nil then
      -- dropped with a stale waiter of its own runner (one an interrupt or
      -- an error left behind): it is here, so it queues again
      gone_runners[w.runner] = nil
      g = enqueue(key, w, now)
      head = gate_head(key, g, now, w)
    end
    local wait
    if head == w then
      local window, busy, suspect, store
      if remote_usable(lim, now) then
        store = lim.remote
        if next(dict_held) then renew_redis(now) end
        local rk = redis_key(key)
        -- a key this process kept alone while the store was down brings its
        -- ends along, so that they still count
        local ages, alone = nil, store.alone[key]
        if alone then
          local ends = {}
          pcall(alone.update, key, function(st)
            local t = runtime.now()
            for k = st.first, st.last do ends[#ends + 1] = string.format("%.4f", math.max(0, t - st.ends[k])) end
            for _ in pairs(st.inflight) do ends[#ends + 1] = "0" end
          end)
          ages = table.concat(ends, " ")
        end
        window, busy = store:start(rk, policy, id, lim.hold, ages)
        now = runtime.now()
        if window ~= nil and alone then
          store.alone[key] = nil
          -- now in the store's log: not counted twice
          pcall(alone.update, key, function(st) st.first, st.last, st.ends = 1, 0, {} end)
        end
        if window == nil then
          local err = busy
          if store.failure == "closed" then
            if now >= deadline then
              leave(key, g, w, now)
              return false, store_error(lim, err)
            end
            window = math.min(CLOSED_RETRY, deadline - now)
          else
            store_down(lim, now, err)
            store = nil
          end
        else
          store_up(lim)
          if window == 0 and not busy then
            local ticket = { key = key, rkey = rk, id = id, store = store, co = w.co, since = now, hold = lim.hold,
              lim = lim, renewed = now }
            hold_in_dict(ticket)
            leave(key, g, w, now)
            return ticket
          end
          if busy then window = math.max(window, require("envclone.limiter.redis").POLL) end
        end
      end
      if store == nil then
        store = store_of(lim)
        if lim.remote then lim.remote.alone[key] = store end
        local shared = store.shared
        -- the clock is read under the store's lock: the decision is about the
        -- log as it is at that moment (another worker may have just added to it)
        local ok
        ok, window, busy, suspect = pcall(store.update, key, function(st)
          now = runtime.now()
          return try_start(st, policy, id, now, lim.hold, shared)
        end)
        if not ok then
          leave(key, g, w, runtime.now())
          error(window, 0)
        end
        if suspect and now - last_gc >= GC_EVERY then
          -- a slot held past its lease: if its holder was dropped, a
          -- collection frees it for the next look
          last_gc = now
          collectgarbage()
        end
        if window == 0 and not busy then
          local ticket = { key = key, id = id, store = store, co = w.co, since = now, hold = lim.hold }
          live[id] = ticket
          if shared then hold_in_dict(ticket) end
          leave(key, g, w, now)
          return ticket
        end
        if busy then
          -- the end of an attempt wakes it (in this Lua state's store); in a
          -- shared dict another worker's end cannot
          window = math.max(window, (w.wake and not shared) and HEAD_NAP or POLL)
        end
      end
      wait = window
    else
      wait = nap_behind(w, head, g, policy, now)
    end
    w.due = now + wait
    if runtime.pcall_yields or not runtime.scheduler() then
      -- an interrupt (or any error) raised in the wait leaves the queue
      -- with it: a waiter left behind would stall the key for the next call
      local ok, perr = pcall(park, w, wait)
      if not ok then
        local gg = gates[key]
        if gg then leave(key, gg, w, runtime.now()) end
        error(perr, 0)
      end
    else
      park(w, wait)
    end
    now = runtime.now()
  end
end

--- `limiter.admit`, raising its error (an error table: kind "unavailable",
-- reason "rate_limit_store") when it refuses, so that a caller that sends
-- whenever no ticket comes back never sends a refused attempt.
-- @tparam table lim
-- @tparam table args
-- @return a ticket, or nil when nothing is limited
function limiter.acquire(lim, args)
  local ticket, err = limiter.admit(lim, args)
  if ticket == false then error(err, 0) end
  return ticket
end

--- Ends an attempt started by `limiter.acquire`.
-- @param ticket from `acquire` (nil: nothing to do)
-- @tparam boolean counted false when the attempt surely never reached the
--   server (validation failed, connection refused): it leaves the log
function limiter.release(ticket, counted)
  if not ticket then return end
  live[ticket.id] = nil
  dict_held[ticket] = nil
  local now = runtime.now()
  if ticket.rkey then
    local lim = ticket.lim
    local held, err = ticket.store:finish(ticket.rkey, ticket.id, counted)
    if held == nil then
      -- its lease will lapse; with "local", Redis is skipped for a while
      if ticket.store.failure == "local" then store_down(lim, runtime.now(), err) end
    elseif not held then
      limiter.lost_leases = limiter.lost_leases + 1
      log("envclone: rate limiter: lost lease: a " .. lim.vendor .. " attempt ended after its slot's lease ("
        .. string.format("%g", lim.hold) .. " s) had lapsed in " .. ticket.store.url
        .. "; the slot had already been freed")
    end
  else
    ticket.store.update(ticket.key, function(st) finish(st, ticket.id, runtime.now(), counted) end)
  end
  -- a slot is free: the key's head looks again
  local g = gates[ticket.key]
  if g then
    local h = gate_head(ticket.key, g, now)
    if h then wake(h, now) end
  end
  sweep(now)
end

-- ---------------------------------------------------------------------------
-- lua_code_cache off: every request has a Lua VM of its own, so state kept
-- in the VM does not survive from one request to the next. Two VMs loading
-- this module in one nginx worker process tell it: the worker's environment
-- (a process-wide place every VM reads) keeps the last one's mark.

local code_cache_off = false
do
  local pid = runtime.worker_pid()
  local ok_ffi, ffi = pcall(require, "ffi")
  if pid and ok_ffi then
    pcall(ffi.cdef, "int setenv(const char *name, const char *value, int overwrite);")
    pid = tostring(pid)
    local mark = os.getenv("ENVCLONE_LIMITER_VM")
    if mark and mark:match("^(%d+) ") == pid and mark ~= pid .. " " .. VM then code_cache_off = true end
    pcall(function() ffi.C.setenv("ENVCLONE_LIMITER_VM", pid .. " " .. VM, 1) end)
  end
end

--- Logs, once per nginx worker, that a client of `vendor` keeps its limits
-- in a Lua VM that lasts one request (`lua_code_cache off`); called for a
-- limited client without `rate_limit_dict`.
-- @tparam string vendor
function limiter.warn_code_cache(vendor)
  local ngx = runtime.ngx()
  if not code_cache_off or not ngx or not ngx.log then return end
  local pid = tostring(runtime.worker_pid())
  if os.getenv("ENVCLONE_LIMITER_WARNED") == pid then return end
  local ok = pcall(function()
    require("ffi").C.setenv("ENVCLONE_LIMITER_WARNED", pid, 1)
  end)
  if not ok then return end
  ngx.log(ngx.WARN, "envclone: lua_code_cache is off (this worker runs Lua in more than one VM), so the ",
    vendor, " rate limits a client keeps in its VM do not hold from one request to the next; give the ",
    "client rate_limit_dict = \"<a lua_shared_dict>\" to keep them in shared memory")
end

--- Number of keys with state in this Lua state's store (for tests: stays bounded).
function limiter.local_keys() return local_count end

--- Number of keys with waiters queued in this Lua state (for tests).
function limiter.queued_keys() return gate_count end

return limiter
