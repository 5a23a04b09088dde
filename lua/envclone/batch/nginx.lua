--- The batch runner inside nginx: one ngx.thread per item, cosockets, a
-- semaphore for max_in_flight. `envclone.batch` is the entry; this is its
-- loop inside OpenResty.
-- @module envclone.batch.nginx
local runtime = require("envclone.runtime")
local retry = require("envclone.retry")

local nginx = {}

local Nginx = {}
Nginx.__index = Nginx

--- Inside a task: ngx.sleep (a pending interrupt, see `core.catch_signals`,
-- raises its error after it).
function Nginx.sleep(_, seconds)
  runtime.ngx().sleep(seconds)
  runtime.check_interrupt()
end

--- Inside a task: one exchange, once a slot is free.
function Nginx.send(self, transport, req)
  while true do
    local ok, err = self.sem:wait(60)
    if ok then break end
    if err ~= "timeout" then error("envclone.batch: semaphore: " .. tostring(err)) end
  end
  -- interrupted: nothing more goes on the wire
  local iok, ierr = pcall(runtime.check_interrupt)
  if not iok then
    self.sem:post(1)
    error(ierr, 0)
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

--- Runs every item of batch `self` inside nginx (one ngx.thread per item),
-- recording each outcome with `record(self, results, i, ok, a, b)`.
-- @tparam table self the batch
-- @tparam table results
-- @tparam function record
-- @treturn ?string the signal when a caught one was pending at the end
--   (its items, not started, raised kind "interrupted" when they came to send)
function nginx.run(self, results, record)
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
  return (require("envclone.core").interrupted())
end

return nginx
