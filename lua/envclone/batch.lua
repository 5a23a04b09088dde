--- Batches: many calls and tasks at once, on one thread.
--
--     local b = envclone.batch{ max_in_flight = 16, on_progress = function(done, total, i, result) end }
--     local i = b:add(kontent, "clone_environment", { environment_id = E, name = "pr-101" })
--     local j = b:add(function()
--       local env = assert(kontent:clone_environment{ environment_id = E, name = "pr-102", wait = true })
--       return assert(kontent:rename_environment{ environment_id = env.id, name = "PR 102" })
--     end)
--     local results = b:run()   -- results[i] = { ok = true, value =, extra = } or { ok = false, err = }
--
-- Every item runs as a coroutine (a task). Every envclone call inside a
-- task, with its retries' back-off, its waiter's sleeps and its rate-limit
-- waits, yields to the batch's loop instead of blocking, so the tasks
-- progress together. In plain Lua the loop drives one libcurl multi handle
-- (`core.multi`) and sleeps in `curl_multi_poll`; inside nginx each task is
-- an `ngx.thread` and requests go over cosockets, with the same results.
-- `max_in_flight` bounds the requests on the wire at any moment; a task
-- waiting for a slot, a timer or a rate limit holds none.
--
-- The yields happen in Lua (`envclone.runtime.sleep`, `scheduler:send`),
-- never inside a C function, so tasks also run under LuaJIT. A task may call
-- envclone inside `pcall` under Lua 5.2+ and LuaJIT (both yield across it),
-- not under PUC Lua 5.1. Coroutines a task creates itself are not tasks:
-- envclone calls inside them block as outside a batch. A task's own bare
-- `coroutine.yield()` yields to the scheduler: the loop polls the wire (and
-- fires due timers) once, then resumes it with no values.
-- @module envclone.batch
local core = require("envclone.core")
local runtime = require("envclone.runtime")
local retry = require("envclone.retry")
local call = require("envclone.call")
local options = require("envclone.options")

local batch = {}

local Batch = {}
Batch.__index = Batch

-- What a task yields to the loop (private values: a task's own yields are
-- told apart from envclone's).
local SLEEP, SEND = setmetatable({}, { __name = "envclone.batch.sleep" }),
  setmetatable({}, { __name = "envclone.batch.send" })
-- What the loop resumes a task with when its request could not be put on
-- the wire because putting it raised (its client was closed meanwhile):
-- the task raises it, where a single call would have.
local RAISE = setmetatable({}, { __name = "envclone.batch.raise" })

local DEFAULT_MAX_IN_FLIGHT = 16

-- The key of a vendor's name in a table of env.callables.
local VENDOR = setmetatable({}, { __name = "envclone.batch.vendor" })

-- The rows of `core.operations`, by "vendor.name" and by start function.
local row_of_name, row_of_start = {}, {}
for _, op in ipairs(core.operations) do
  row_of_name[op.vendor .. "." .. op.name] = op
  row_of_start[op.start] = op
end

--- What `b:add` accepts of the clients of a client layer (init.lua): for
-- each client metatable, the operations and waiters by name, as
-- `{ method, start }` (start: the operation's `start` function, so that
-- the call may start without a task (see run_plain); false for a waiter),
-- and the vendor's name under a private key.
-- @tparam table vendor_methods vendor -> { name -> method }
-- @tparam table metatables vendor -> the metatable of its clients
-- @treturn table client metatable -> callables
function batch.callables(vendor_methods, metatables)
  local by_mt = {}
  for vendor, methods in pairs(vendor_methods) do
    local t = { [VENDOR] = vendor }
    for name, fn in pairs(methods) do
      if type(fn) == "function" and name:sub(1, 1) ~= "_" and name ~= "close" then
        local op = row_of_name[vendor .. "." .. name]
        t[name] = { fn, op and op.start or false }
      end
    end
    by_mt[metatables[vendor]] = t
  end
  return by_mt
end

local option_kinds = { max_in_flight = "number", on_progress = "function" }

--- A new batch (`envclone.batch`).
-- @tparam[opt] table opts `max_in_flight` (16: requests on the wire at once,
--   a positive integer), `on_progress(done, total, i, result)` (after each
--   item finishes)
-- @tparam table env the client layer: `callables` (see batch.callables)
-- @treturn table the batch
function batch.new(opts, env)
  if opts ~= nil and type(opts) ~= "table" then
    error("envclone.batch: options must be a table, got " .. type(opts), 3)
  end
  opts = opts or {}
  options.check(opts, option_kinds, "envclone.batch", "option", 3)
  local n = opts.max_in_flight or DEFAULT_MAX_IN_FLIGHT
  if n < 1 or n ~= math.floor(n) or n == math.huge then
    error("envclone.batch: max_in_flight must be a positive integer", 3)
  end
  -- items, 4 values each (m:fill reads them): a call is (method, client,
  -- args, its operation's start function or false), a task (fn, nil, nil,
  -- false)
  return setmetatable({ _items = {}, _n = 0, _max = n, _on_progress = opts.on_progress,
    _state = "new", _env = env }, Batch)
end

--- Adds a call or a task; returns its index in the results.
-- `b:add(client, "operation", args)`: a call (an operation or waiter the
-- client has; its arguments are validated when the batch runs, and a call
-- that fails validation gets its own `kind = "validation"` result and sends
-- nothing). `b:add(function() ... end)`: a task; its envclone calls yield
-- to the batch. Raises (a programmer error) on anything else, on an
-- operation the client does not have, on a per-call option the call would
-- refuse (`wait = true` where no waiter follows, a negative or NaN
-- `wait_timeout`, a malformed `retry`, ...), and once `run` has started.
-- @treturn integer index
function Batch:add(what, operation, args)
  if getmetatable(self) ~= Batch then
    error("envclone.batch: call add with ':' (b:add(...))", 2)
  end
  if self._state ~= "new" then
    error("envclone.batch: add after run() has started", 2)
  end
  local n = self._n + 1
  -- a client's metatable leads to what `operation` names (see
  -- env.callables); a table that is not a client, a string, ... to nothing
  local callable = self._env.callables[getmetatable(what)]
  if callable then
    local c = callable[operation]
    if not c then
      error("envclone.batch: the " .. callable[VENDOR] .. " client has no operation '"
        .. tostring(operation) .. "'", 2)
    end
    -- an operation's per-call options (wait, wait_timeout, retry, ...) are
    -- checked now, as the call checks them before sending: a programmer error
    if c[2] and type(args) == "table" then
      call.check_args(callable[VENDOR] .. "." .. operation, args, 2)
    end
    local items, k = self._items, 4 * n
    items[k - 3], items[k - 2], items[k - 1], items[k] = c[1], what, args, c[2]
  elseif type(what) == "function" then
    local items, k = self._items, 4 * n
    items[k - 3], items[k] = what, false
  else
    error("envclone.batch: add takes a client and an operation name, or a function; got " .. type(what), 2)
  end
  self._n = n
  return n
end

-- The result record of an item that ended with `ok` (it did not raise) and
-- values a, b.
local function result_of(ok, a, b)
  if not ok then
    if getmetatable(a) == core.error_mt then return { ok = false, err = a } end
    return { ok = false, err = core.error{ kind = "task", message = tostring(a) } }
  end
  -- a call (or a task) that returned nil, err failed: a task's err that is
  -- not an error object (`return nil, "message"`) becomes one of kind "task"
  if a == nil and b ~= nil then
    if getmetatable(b) == core.error_mt then return { ok = false, err = b } end
    return { ok = false, err = core.error{ kind = "task", message = tostring(b) } }
  end
  return { ok = true, value = a, extra = b }
end

local function record(self, results, i, ok, a, b)
  local r = result_of(ok, a, b)
  results[i] = r
  if r.ok then results.succeeded = results.succeeded + 1 else results.failed = results.failed + 1 end
  self._done = self._done + 1
  if self._on_progress then self._on_progress(self._done, self._n, i, r) end
end

-- ---------------------------------------------------------------------------
-- Timers: a binary heap of { due, seq, task }.

local function heap_push(h, e)
  local n = #h + 1
  h[n] = e
  while n > 1 do
    local p = math.floor(n / 2)
    local a, b = h[p], h[n]
    if a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) then break end
    h[p], h[n] = b, a
    n = p
  end
end

local function heap_pop(h)
  local top, last = h[1], h[#h]
  h[#h] = nil
  local n = #h
  if n > 0 then
    h[1] = last
    local i = 1
    while true do
      local l, r, m = 2 * i, 2 * i + 1, i
      if l <= n and (h[l][1] < h[m][1] or (h[l][1] == h[m][1] and h[l][2] < h[m][2])) then m = l end
      if r <= n and (h[r][1] < h[m][1] or (h[r][1] == h[m][1] and h[r][2] < h[m][2])) then m = r end
      if m == i then break end
      h[i], h[m] = h[m], h[i]
      i = m
    end
  end
  return top
end

-- ---------------------------------------------------------------------------
-- Plain Lua: one libcurl multi handle.

local Plain = {}
Plain.__index = Plain

--- Inside a task: sleep `seconds` while the others run (`wake` may end the
-- sleep early).
function Plain.sleep(_, seconds)
  coroutine.yield(SLEEP, seconds)
end

--- Inside a task: one exchange of `req`, over the batch's multi handle (a
-- client's own transport table is called in line).
function Plain.send(_, transport, req)
  if transport ~= nil then return retry.perform(transport, req) end
  local res, err = coroutine.yield(SEND, req)
  if res == RAISE then error(err, 0) end
  return res, err
end

-- A worker coroutine runs one item after another (a coroutine is made again
-- only after an item raised): fn(a, b) is a call's method(client, args) or
-- a task's fn().
local DONE = setmetatable({}, { __name = "envclone.batch.done" })
local function worker(fn, a, b)
  while true do
    fn, a, b = coroutine.yield(DONE, fn(a, b))
  end
end

local function run_plain(self, results)
  local total, max = self._n, self._max
  local items = self._items
  local call_options = call.call_options
  local multi = core.multi{ max_connections = max }
  local sched = setmetatable({}, Plain)
  -- coroutines to resume, and with what (parallel arrays, used as a queue)
  local rq_co, rq_1, rq_2, rq_3, rhead, rtail = {}, {}, {}, {}, 1, 0
  -- requests waiting for a slot on the wire
  local sq_co, sq_req, shead, stail = {}, {}, 1, 0
  local timers, seq = {}, 0
  local asleep = {} -- task -> its entry in timers
  -- tasks that yielded on their own (a bare coroutine.yield): resumed once
  -- the loop has polled the wire
  local yielded, n_yielded = {}, 0
  -- A transfer's id: a call started without a task has its item's index;
  -- a task's request, an id above `total`, found in `sender`.
  local sender, n_inflight, next_id = {}, 0, total
  local item_of = {}   -- worker -> index of the item it runs
  local idle, n_idle = {}, 0
  local next_item = 1
  local run_ready -- (below)

  local function push_ready(co, x, y, z)
    rtail = rtail + 1
    rq_co[rtail], rq_1[rtail], rq_2[rtail], rq_3[rtail] = co, x, y, z
  end

  -- Ends the sleep of task `co` now (envclone.limiter: the waiter whose
  -- turn has come); nothing if it is not sleeping.
  function sched.wake(_, co)
    local e = asleep[co]
    if e then
      asleep[co] = nil
      e[3] = false -- its timer stays in the heap, ignored
      push_ready(co)
    end
  end

  -- Drops item i: the batch holds no reference to a started task or a
  -- finished call.
  local function drop(i)
    local k = 4 * i
    items[k - 3], items[k - 2], items[k - 1], items[k] = nil, nil, nil, nil
  end

  -- Runs fn(a, b) for item i on an idle worker (or a new one).
  local function spawn(i, fn, a, b)
    local co
    if n_idle > 0 then
      co = idle[n_idle]
      idle[n_idle] = nil
      n_idle = n_idle - 1
    else
      co = coroutine.create(worker)
      runtime.attach(co, sched)
    end
    item_of[co] = i
    push_ready(co, fn, a, b)
  end

  -- A call whose first attempt may skip the Lua layer (as outside a
  -- batch: see call.fast_handle) goes straight onto the multi handle,
  -- with no task and no request object (`m:fill`); only when it fails does
  -- a task take over, with the retry loop. Anything else runs as a task.
  local handle_of = {} -- client -> its core handle when its calls may start so, else false

  -- Starts items while the wire has room for what they will send (items
  -- that sleep -- waiters, back-off, rate limits -- make room for others):
  -- runs of plain calls in one `m:fill`. Where it stops: a client not seen
  -- yet is looked at once and fill tries again; an invalid call is
  -- recorded (nothing was sent); anything else becomes a task, which
  -- raises or validates as a single call does (per-call options such as
  -- wait or retry, a closed client, arguments that are not a table).
  local function start_items()
    while next_item <= total and rhead > rtail do
      local room = max - n_inflight - (stail - shead + 1)
      if room <= 0 then return end
      local from = next_item
      local nxt, err = multi:fill(items, from, total, room, handle_of, call_options)
      n_inflight = n_inflight + (nxt - from)
      next_item = nxt
      if nxt <= total and nxt - from < room then
        local k = 4 * nxt
        local fn, client, args, op_start = items[k - 3], items[k - 2], items[k - 1], items[k]
        if err == nil and op_start and handle_of[client] == nil then
          handle_of[client] = call.fast_handle(client)
        else
          next_item = nxt + 1
          drop(nxt)
          if err ~= nil then
            record(self, results, nxt, true, nil, err)
          else
            spawn(nxt, fn, client, args)
            run_ready()
          end
        end
      end
    end
  end

  -- A call started without a task ended: recorded, or handed to a task
  -- that runs the retry loop from its failed first attempt.
  local function finished_call(i, res, err, req)
    local k = 4 * i
    local client, args, op_start = items[k - 2], items[k - 1], items[k]
    drop(i)
    if res ~= nil or req == nil then
      record(self, results, i, true, res, err)
    else
      local op = row_of_start[op_start]
      spawn(i, function()
        return call.run(client, op, args, nil, err, req)
      end)
    end
  end

  -- Takes every finished transfer out. Without on_progress to call, the
  -- successes of plain calls are recorded by `m:drain` itself.
  local on_progress = self._on_progress
  local function collect()
    while true do
      local id, res, err, req
      if on_progress then
        id, res, err, req = multi:next()
      else
        local count
        count, id, res, err, req = multi:drain(results, items)
        if count > 0 then
          n_inflight = n_inflight - count
          results.succeeded = results.succeeded + count
          self._done = self._done + count
        end
      end
      if id == nil then return end
      n_inflight = n_inflight - 1
      if id <= total then
        finished_call(id, res, err, req)
      else
        push_ready(sender[id], res, err)
        sender[id] = nil
      end
    end
  end

  local function step(co, ok, tag, x, y)
    if not ok then
      -- the item raised: its worker is dead
      local i = item_of[co]
      item_of[co] = nil
      record(self, results, i, false, tag)
    elseif tag == SEND then
      stail = stail + 1
      sq_co[stail], sq_req[stail] = co, x
    elseif tag == DONE then
      local i = item_of[co]
      item_of[co] = nil
      n_idle = n_idle + 1
      idle[n_idle] = co
      record(self, results, i, true, x, y)
    elseif tag == SLEEP then
      seq = seq + 1
      local e = { runtime.now() + x, seq, co }
      asleep[co] = e
      heap_push(timers, e)
    else
      -- the task's own coroutine.yield: "let the others run". Resumed, with
      -- nothing, after the loop has polled the wire once (resumed at once,
      -- a task waiting this way for an answer would spin and the answer
      -- never come)
      n_yielded = n_yielded + 1
      yielded[n_yielded] = co
    end
  end

  -- Resumes the ready coroutines, in order, until none is left (a step may
  -- make others ready: they run in the same pass).
  function run_ready()
    while rhead <= rtail do
      local co = rq_co[rhead]
      local x, y, z = rq_1[rhead], rq_2[rhead], rq_3[rhead]
      rq_co[rhead], rq_1[rhead], rq_2[rhead], rq_3[rhead] = nil, nil, nil, nil
      rhead = rhead + 1
      if x == nil and y == nil and z == nil then
        step(co, coroutine.resume(co)) -- a timer's or a bare yield's end: resumed with nothing
      else
        step(co, coroutine.resume(co, x, y, z))
      end
    end
  end

  while self._done < total do
    start_items()
    while n_inflight < max and shead <= stail do
      local co, req = sq_co[shead], sq_req[shead]
      sq_co[shead], sq_req[shead] = nil, nil
      shead = shead + 1
      next_id = next_id + 1
      local ok, added, err = pcall(multi.add, multi, req, next_id)
      if not ok then
        push_ready(co, RAISE, added)
      elseif added then
        sender[next_id] = co
        n_inflight = n_inflight + 1
      else
        push_ready(co, nil, err)
      end
    end
    if rhead > rtail and self._done < total then
      local wait = 3600
      if n_yielded > 0 then
        wait = 0 -- a task yielded to the scheduler: poll, do not sleep
      elseif timers[1] then
        wait = math.max(0, timers[1][1] - runtime.now())
      end
      if n_inflight > 0 then
        if multi:poll(wait) > 0 then collect() end
      elseif n_yielded > 0 then -- luacheck: ignore 542
        -- nothing on the wire to poll
      elseif timers[1] then
        core.sleep(wait)
      elseif next_item > total then
        error("envclone.batch: internal error: no task can run") -- every task waits on nothing
      end
      if timers[1] then
        local now = runtime.now()
        while timers[1] and timers[1][1] <= now do
          local co = heap_pop(timers)[3]
          if co then
            asleep[co] = nil
            push_ready(co)
          end
        end
      end
      for y = 1, n_yielded do
        push_ready(yielded[y])
        yielded[y] = nil
      end
      n_yielded = 0
    end
    run_ready()
  end
  multi:close()
end

-- ---------------------------------------------------------------------------
-- Inside nginx: one ngx.thread per task, cosockets, a semaphore for
-- max_in_flight.

local Nginx = {}
Nginx.__index = Nginx

--- Inside a task: ngx.sleep.
function Nginx.sleep(_, seconds)
  runtime.ngx().sleep(seconds)
end

--- Inside a task: one exchange, once a slot is free.
function Nginx.send(self, transport, req)
  while true do
    local ok, err = self.sem:wait(60)
    if ok then break end
    if err ~= "timeout" then error("envclone.batch: semaphore: " .. tostring(err)) end
  end
  local ok, res, err
  if transport == nil then
    ok, res, err = pcall(req.send, req) -- transport = "curl" chosen inside nginx: blocking
  else
    ok, res, err = pcall(retry.perform, transport, req)
  end
  self.sem:post(1)
  if not ok then error(res, 0) end
  return res, err
end

local function run_nginx(self, results)
  local ngx = runtime.ngx()
  local semaphore = require("ngx.semaphore")
  local sched = setmetatable({ sem = semaphore.new(self._max) }, Nginx)
  local threads = {}
  local items = self._items
  -- Items are recorded (and on_progress called) here, in the coroutine that
  -- runs b:run(), in the order they finish: an error raised by on_progress
  -- then leaves b:run() as in plain Lua (raised inside a thread, nginx would
  -- only log it and the batch would go on).
  local finished, head, tail = {}, 1, 0
  local ended = semaphore.new(0)
  for i = 1, self._n do
    local k = 4 * i
    local fn, a, b = items[k - 3], items[k - 2], items[k - 1]
    threads[i] = ngx.thread.spawn(function()
      runtime.attach(coroutine.running(), sched)
      -- LuaJIT yields across pcall: the task's calls still go to nginx
      local ok, x, y = pcall(fn, a, b)
      tail = tail + 1
      finished[tail] = { i, ok, x, y }
      ended:post(1)
    end)
  end
  while self._done < self._n do
    if head > tail then
      local ok, err = ended:wait(60)
      if not ok and err ~= "timeout" then error("envclone.batch: semaphore: " .. tostring(err)) end
    end
    while head <= tail do
      local f = finished[head]
      finished[head] = nil
      head = head + 1
      local ok, err = pcall(record, self, results, f[1], f[2], f[3], f[4])
      if not ok then
        -- the batch is dropped, as in plain Lua: no item runs on
        for j = 1, #threads do ngx.thread.kill(threads[j]) end
        error(err, 0)
      end
    end
  end
  for i = 1, #threads do
    ngx.thread.wait(threads[i])
  end
end

--- Runs every item; returns the results in the order added: `results[i] =
-- { ok = true, value = <first result>, extra = <second result> }` or
-- `{ ok = false, err = <error object> }` (a task that raised something other
-- than an envclone error gets one with `kind = "task"`), and
-- `results.succeeded`, `results.failed`. One failure never stops the others.
-- @treturn table results
function Batch:run()
  if getmetatable(self) ~= Batch then
    error("envclone.batch: call run with ':' (b:run())", 2)
  end
  if self._state ~= "new" then
    error("envclone.batch: run() has already started", 2)
  end
  self._state = "running"
  self._done = 0
  local results = { succeeded = 0, failed = 0 }
  if runtime.in_openresty() then
    run_nginx(self, results)
  else
    run_plain(self, results)
  end
  self._state = "done"
  self._items = {}
  return results
end

return batch
