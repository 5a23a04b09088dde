--- The batch runner in plain Lua: one libcurl multi handle (`core.multi`),
-- filled and drained by the C core for calls that may start without a
-- task (`m:fill`, `m:drain`), and a loop that resumes the tasks (one
-- coroutine per item that needs one), their timers and their sends.
-- `envclone.batch` is the entry; this is its loop outside nginx.
-- @module envclone.batch.plain
local core = require("envclone.core")
local runtime = require("envclone.runtime")
local retry = require("envclone.retry")
local call = require("envclone.call")
local heap = require("envclone.heap")

local plain = {}

-- What a task yields to the loop (private values: a task's own yields are
-- told apart from envclone's).
local SLEEP, SEND = setmetatable({}, { __name = "envclone.batch.sleep" }),
  setmetatable({}, { __name = "envclone.batch.send" })
-- What the loop resumes a task with when its request could not be put on
-- the wire because putting it raised (its client was closed meanwhile):
-- the task raises it, where a single call would have.
local RAISE = setmetatable({}, { __name = "envclone.batch.raise" })

-- The rows of `core.operations` by start function.
local row_of_start = {}
for _, op in ipairs(core.operations) do
  row_of_start[op.start] = op
end

local Plain = {}
Plain.__index = Plain

--- Inside a task: sleep `seconds` while the others run (`wake` may end the
-- sleep early).
function Plain.sleep(_, seconds)
  -- an interrupt ends the sleep with its error (see plain.run)
  local tag, err = coroutine.yield(SLEEP, seconds)
  if tag == RAISE then error(err, 0) end
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

--- Runs every item of batch `self` on one libcurl multi handle, recording
-- each outcome with `record(self, results, i, ok, a, b)`.
--
-- Interrupts (a signal caught by `core.catch_signals`, seen through
-- `core.interrupted`): the first stops starting items; tasks asleep (a
-- waiter, a back-off, a rate-limit wait) or waiting for a slot on the wire
-- end there with the interrupt's error, and the transfers on the wire run
-- to their end (or their timeout): an item cut off records
-- `runtime.interrupted_item` of its error. A second signal abandons the
-- transfers on the wire (their items: kind "interrupted", `sent` and
-- `maybe_applied` true). Items never started are left out of `results`.
-- @tparam table self the batch (`_items`, `_n`, `_max`, `_on_progress`, `_done`)
-- @tparam table results
-- @tparam function record
-- @treturn ?string the signal ("SIGINT") when interrupted, else nil
function plain.run(self, results, record)
  local total, max = self._n, self._max
  local items = self._items
  local call_options = call.call_options
  local multi = core.multi{ max_connections = max }
  local sched = setmetatable({}, Plain)
  -- The items stay 4 slots each in one array (`_items`): the C core reads
  -- that layout (m:fill, m:drain), so a 5000-call batch of plain calls
  -- allocates no table per item. The two queues below stay parallel
  -- arrays for the same reason: a record per push would be a table made
  -- on every resume of every task.
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
  -- Interrupts: the signal acted on (nil: none), how many were pending
  -- then, the items that had put on the wire a request that may act (not
  -- `safe`: item -> true) and those that had put any (a call started
  -- without a task is on the wire while its slots are in `items`)
  local signal, acted, item_sent, item_wire = nil, 0, {}, {}
  local interrupted = core.interrupted

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
    elseif signal then
      -- interrupted: no retry starts; the failure as it is
      req:release()
      record(self, results, i, true, nil, err)
    else
      item_wire[i] = true
      if not req.safe then item_sent[i] = true end
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
      if signal then tag = runtime.interrupted_item(tag, signal, item_sent[i]) end
      record(self, results, i, false, tag)
    elseif signal and (tag == SEND or tag == SLEEP) then
      -- interrupted: nothing more goes on the wire, no task sleeps on
      push_ready(co, RAISE, runtime.interrupted_error(signal, tag == SEND and { sent = false } or nil))
    elseif tag == SEND then
      stail = stail + 1
      sq_co[stail], sq_req[stail] = co, x
    elseif tag == DONE then
      local i = item_of[co]
      item_of[co] = nil
      n_idle = n_idle + 1
      idle[n_idle] = co
      if signal and x == nil then y = runtime.interrupted_item(y, signal, item_sent[i]) end
      record(self, results, i, true, x, y)
    elseif tag == SLEEP then
      seq = seq + 1
      local e = { runtime.now() + x, seq, co }
      asleep[co] = e
      heap.push(timers, e)
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

  -- The first interrupt: tasks asleep or waiting for a slot raise it.
  local function stop()
    for co, e in pairs(asleep) do
      asleep[co] = nil
      e[3] = false
      push_ready(co, RAISE, runtime.interrupted_error(signal))
    end
    for k = #timers, 1, -1 do timers[k] = nil end
    while shead <= stail do
      push_ready(sq_co[shead], RAISE, runtime.interrupted_error(signal, { sent = false }))
      sq_co[shead], sq_req[shead] = nil, nil
      shead = shead + 1
    end
  end

  while true do
    local sig, count = interrupted()
    if sig and count > acted then
      if signal then
        -- a second signal: the transfers on the wire are abandoned
        for i = 1, next_item - 1 do
          if results[i] == nil then
            local on_wire = items[4 * i - 3] ~= nil -- started without a task, not finished
            local op = on_wire and row_of_start[items[4 * i]] or nil
            local acts = item_sent[i] or (on_wire and not (op and (op.method == "GET" or op.method == "HEAD")))
            record(self, results, i, true, nil, runtime.interrupted_error(signal,
              { sent = on_wire or item_wire[i] == true, maybe_applied = acts == true },
              "abandoned on a second signal"))
          end
        end
        break
      end
      signal, acted = sig, 1
      stop()
    end
    if self._done >= (signal and next_item - 1 or total) then break end
    if not signal then start_items() end
    while n_inflight < max and shead <= stail do
      local co, req = sq_co[shead], sq_req[shead]
      sq_co[shead], sq_req[shead] = nil, nil
      shead = shead + 1
      next_id = next_id + 1
      local ok, added, err = pcall(multi.add, multi, req, next_id)
      if not ok then
        push_ready(co, RAISE, added)
      elseif added then
        local i = item_of[co]
        item_wire[i] = true
        if not req.safe then item_sent[i] = true end
        sender[next_id] = co
        n_inflight = n_inflight + 1
      else
        push_ready(co, nil, err)
      end
    end
    if rhead > rtail and self._done < (signal and next_item - 1 or total) then
      local wait = 3600
      if n_yielded > 0 then
        wait = 0 -- a task yielded to the scheduler: poll, do not sleep
      elseif timers[1] then
        wait = math.max(0, timers[1][1] - runtime.now())
      end
      if n_inflight > 0 then
        if multi:poll(wait, acted) > 0 then collect() end
      elseif n_yielded > 0 then -- luacheck: ignore 542
        -- nothing on the wire to poll
      elseif timers[1] then
        core.sleep(wait)
      elseif next_item > total or signal then
        error("envclone.batch: internal error: no task can run") -- every task waits on nothing
      end
      if timers[1] then
        local now = runtime.now()
        while timers[1] and timers[1][1] <= now do
          local co = heap.pop(timers)[3]
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
  return signal
end

return plain
