--- The rate limiter's rule, written once: the sliding log of attempt ends,
-- the attempts in flight, the one-at-a-time slots and the shared queue of
-- head waiters, as one piece of Lua source (`rule.source`).
--
-- The same text runs in three places, so the three stores cannot drift:
-- `envclone.limiter` loads it for this Lua state's store and for a
-- `lua_shared_dict` (both under a lock it holds), and the Redis store ships it
-- inside its two server-side scripts (`envclone.limiter.redis`), where Redis
-- runs it atomically with Redis's clock. The source is therefore Lua 5.1 as
-- Redis embeds it: no globals, no `require`, no integer division, no goto.
--
-- A state is `{ ends = {t...} ascending in [first, last], inflight = { [id] =
-- lease deadline }, n_inflight, queue = { {id, due}... } (shared stores: the
-- head waiter of each process or worker, first come first served), span (the
-- longest window a policy on this key counts), clock (the latest time a
-- decision on this key used: Redis's guard against a clock that steps back) }`.
-- Times are seconds of whatever clock the store uses (monotonic in a process
-- and a machine's shared dicts, Redis `TIME` in Redis).
-- @module envclone.limiter.rule

local SOURCE = [==[
local R = {}

-- How long an end stays in a window after the window has passed it
-- (seconds): more than a coarse clock's resolution (see envclone.limiter).
R.MARGIN = 0.005
-- The shortest wait, and the poll of a head blocked by attempts in flight.
R.POLL = 0.002
-- A queued waiter this late for a look it promised has gone (seconds).
R.STALE = 1

local WINDOWS = { { field = "per_second", span = 1 }, { field = "per_minute", span = 60 } }

function R.new_state()
  return { ends = {}, first = 1, last = 0, inflight = {}, n_inflight = 0, queue = {}, span = 1 }
end

-- Drops what has left the state: ends older than its longest window, slots
-- whose holder has gone (`slot_gone(st, id, deadline, now)`; by default a
-- slot goes when its lease deadline has passed), queue entries gone stale.
function R.prune(st, now, slot_gone)
  local ends, i = st.ends, st.first
  -- an end counts MARGIN longer than its longest window
  while i <= st.last and ends[i] <= now - st.span - R.MARGIN do
    ends[i] = nil
    i = i + 1
  end
  if i > st.last then i, st.last = 1, 0 end
  st.first = i
  for id, deadline in pairs(st.inflight) do
    local gone
    if slot_gone then gone = slot_gone(st, id, deadline, now) else gone = deadline < now end
    if gone then
      st.inflight[id] = nil
      st.n_inflight = st.n_inflight - 1
    end
  end
  local q = st.queue
  if q[1] then
    local n = 0
    for k = 1, #q do
      local w = q[k]
      if w[2] >= now - R.STALE then
        n = n + 1
        q[n] = w
      end
    end
    for k = #q, n + 1, -1 do q[k] = nil end
  end
end

function R.state_empty(st)
  return st.last < st.first and st.n_inflight == 0 and st.queue[1] == nil
end

-- One decision for the head waiter `id`: start now (returns 0, false: the
-- slot is taken, with a lease until now + hold), or the seconds before its
-- window opens (0 if it is only blocked by attempts in flight) and whether
-- attempts in flight block it. `shared`: the state is shared by several
-- processes or workers, whose head waiters queue in it.
function R.try_start(st, policy, id, now, hold, shared, slot_gone)
  local longest = policy.per_minute and 60 or 1
  if longest > st.span then st.span = longest end
  R.prune(st, now, slot_gone)
  if shared then
    -- first come, first served among the head waiters of this key
    local q, pos = st.queue, nil
    for k = 1, #q do
      if q[k][1] == id then pos = k; break end
    end
    if not pos then
      pos = #q + 1
      q[pos] = { id, now }
    end
    if pos > 1 then
      -- not its turn: at most one start per 1/per_second ahead of it
      local gap = policy.per_second and 1 / policy.per_second or R.POLL
      local wait = math.max(R.POLL, (pos - 1) * gap / 2)
      q[pos][2] = now + wait
      return wait, false
    end
  end
  local wait, busy = 0, false
  if policy.concurrency_per_key and st.n_inflight >= policy.concurrency_per_key then busy = true end
  for _, w in ipairs(WINDOWS) do
    local limit = policy[w.field]
    if limit then
      -- attempts in flight have not ended: they count in every window
      local room = limit - st.n_inflight
      if room <= 0 then
        busy = true
      else
        -- the room-th most recent end must leave the window first
        local idx = st.last - room + 1
        local free_at = idx >= st.first and st.ends[idx] + w.span + R.MARGIN
        if free_at and free_at - now > wait then wait = free_at - now end
      end
    end
  end
  if wait == 0 and not busy then
    if shared then table.remove(st.queue, 1) end
    st.inflight[id] = now + hold
    st.n_inflight = st.n_inflight + 1
    return 0, false
  end
  -- a waiter that woke a hair early (a clock of whole milliseconds, a
  -- rounded sum) must not spin on a wait of next to nothing
  if wait > 0 and wait < R.POLL then wait = R.POLL end
  if shared then st.queue[1][2] = now + math.max(wait, R.POLL) end
  return wait, busy
end

-- Ends attempt `id`: its slot is freed and, when `counted`, its end logged.
-- Returns false when the slot was not held any more (its lease lapsed and
-- was pruned): the slot now free may be someone else's, so nothing else is
-- freed; the end is still logged (the attempt did happen). `unordered`:
-- log `now` as it is, even before the last end (only the Redis store's
-- test-only client-clock switch asks for that: a design without one clock
-- has no order to keep).
function R.finish(st, id, now, counted, unordered)
  local held = st.inflight[id] ~= nil
  if held then
    st.inflight[id] = nil
    st.n_inflight = st.n_inflight - 1
  end
  if counted then
    -- ends stay ascending: a clock read under the lock never goes back
    local last = st.ends[st.last]
    st.last = st.last + 1
    st.ends[st.last] = (last and last > now and not unordered) and last or now
    if unordered then R.merge_ends(st, {}, true) end
  end
  return held
end

-- Adds ends logged elsewhere (`times`, in this state's clock): the ends of
-- a process that kept its limits alone while this store was down.
function R.merge_ends(st, times, always)
  if not times[1] and not always then return end
  local all = {}
  for k = st.first, st.last do all[#all + 1] = st.ends[k] end
  for _, t in ipairs(times) do all[#all + 1] = t end
  table.sort(all)
  st.ends = all
  st.first, st.last = 1, #all
end

-- Serialised state: "E t t t|I id=d id=d|Q id=s id=s|S span|C clock".
function R.encode(st)
  local e, i, q = {}, {}, {}
  for k = st.first, st.last do e[#e + 1] = string.format("%.4f", st.ends[k]) end
  for id, d in pairs(st.inflight) do i[#i + 1] = id .. "=" .. string.format("%.4f", d) end
  for _, w in ipairs(st.queue) do q[#q + 1] = w[1] .. "=" .. string.format("%.4f", w[2]) end
  return table.concat(e, " ") .. "|" .. table.concat(i, " ") .. "|" .. table.concat(q, " ") .. "|" .. st.span
    .. "|" .. (st.clock and string.format("%.6f", st.clock) or "")
end

function R.decode(s)
  local st = R.new_state()
  if type(s) ~= "string" then return st end
  local e, i, q, span, clock = s:match("^([^|]*)|([^|]*)|([^|]*)|(%d*)|?([%d.]*)$")
  for t in (e or ""):gmatch("%S+") do
    st.last = st.last + 1
    st.ends[st.last] = tonumber(t)
  end
  for id, d in (i or ""):gmatch("(%S+)=(%S+)") do
    st.inflight[id] = tonumber(d)
    st.n_inflight = st.n_inflight + 1
  end
  for id, t in (q or ""):gmatch("(%S+)=(%S+)") do st.queue[#st.queue + 1] = { id, tonumber(t) } end
  st.span = tonumber(span) or 1
  st.clock = tonumber(clock)
  return st
end

-- How long a state must outlive its last write (seconds): its longest window
-- and margin, a lease taken now, and a queued waiter's grace.
function R.ttl(st, hold)
  return st.span + R.MARGIN + (hold or 0) + R.STALE + 1
end

return R
]==]

local load_chunk = rawget(_G, "loadstring") or load
local rule = assert(load_chunk(SOURCE, "=envclone.limiter.rule"))()
rule.source = SOURCE
return rule
