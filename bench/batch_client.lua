-- bench/batch_client.lua - envclone batches for bench/batch.sh.
--
--   lua5.4 bench/batch_client.lua get N PORT K [PREFIX]
--     one batch of N get_cloning_state calls, K in flight (after a 200-call
--     batch that is not timed); prints
--     RESULT client=envclone-batch op=get n=<N> wall=<seconds> cpu=<seconds>
--     (PREFIX, default /kontent/v2: the server's location, e.g. /slow/kontent/v2)
--   lua5.4 bench/batch_client.lua post N PORT K
--     one batch of N clone_environment calls (creates: a fresh connection
--     each), K in flight, with no batch before it (bench/https.sh counts its
--     TLS handshakes at nginx); prints the RESULT line with op=post
--   lua5.4 bench/batch_client.lua rss N PORT K BATCHES
--     BATCHES batches of N calls each; prints the resident set size inside the
--     first batch (after 10% and 100% of its calls) and after each later batch:
--     RSS calls=<calls so far> kb=<VmRSS>
--
-- The client is the public one (`envclone.kontent{...}` with retry = false
-- and rate_limit = false: Kontent's 10 calls/s per environment would measure
-- the limiter); every answer is checked.
--
-- For bench/https.sh: BENCH_BASE_URL (the client's base_url, instead of
-- http://127.0.0.1:PORT..PREFIX), BENCH_CA_FILE (ca_file) and
-- BENCH_HTTP_VERSION (http_version); unset, nothing changes.
local envclone = require("envclone")
local core = require("envclone.core")

local mode, n, port, k = arg[1], tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[4])
local batches = mode == "rss" and tonumber(arg[5]) or nil
local prefix = mode == "get" and arg[5] or "/kontent/v2"
assert(mode and n and port and k, "usage: batch_client.lua get|post|rss N PORT K [BATCHES]")
local ENV = "8d20758c-d74c-4f59-ae04-ee928c0816b7"
local client = envclone.kontent{ api_key = "bench-api-key",
  base_url = os.getenv("BENCH_BASE_URL") or "http://127.0.0.1:" .. port .. prefix,
  retry = false, rate_limit = false, ca_file = os.getenv("BENCH_CA_FILE"),
  http_version = os.getenv("BENCH_HTTP_VERSION") }

local function rss_kb()
  local f = assert(io.open("/proc/self/status"))
  local kb = f:read("*a"):match("VmRSS:%s*(%d+)")
  f:close()
  return tonumber(kb)
end

local function one_batch(count, on_progress)
  local b = envclone.batch{ max_in_flight = k, on_progress = on_progress }
  for _ = 1, count do b:add(client, "get_cloning_state", { environment_id = ENV }) end
  local results = b:run()
  for i = 1, count do
    local r = results[i]
    if not (r.ok and r.value.cloning_state == "done") then
      error("call " .. i .. " failed: " .. tostring(r.err))
    end
  end
end

if mode == "post" then
  local b = envclone.batch{ max_in_flight = k }
  for _ = 1, n do
    b:add(client, "clone_environment", { environment_id = ENV, name = "Develop",
      roles_to_activate = envclone.array{},
      copy_data_options = { content_items_assets = true, content_item_version_history = false } })
  end
  local w0, c0 = core.now(), os.clock()
  local results = b:run()
  local w1, c1 = core.now(), os.clock()
  for i = 1, n do
    local r = results[i]
    if not (r.ok and r.value.id) then error("call " .. i .. " failed: " .. tostring(r.err)) end
  end
  io.write(string.format("RESULT client=envclone-batch op=post n=%d wall=%.6f cpu=%.6f\n", n, w1 - w0, c1 - c0))
  os.exit(0)
end

one_batch(200)
collectgarbage()
if mode == "get" then
  local w0, c0 = core.now(), os.clock()
  one_batch(n)
  local w1, c1 = core.now(), os.clock()
  io.write(string.format("RESULT client=envclone-batch op=get n=%d wall=%.6f cpu=%.6f\n", n, w1 - w0, c1 - c0))
elseif mode == "rss" then
  local marks = { [math.floor(n / 10)] = true, [n] = true }
  one_batch(n, function(done)
    if marks[done] then io.write(string.format("RSS calls=%d kb=%d\n", done, rss_kb())) end
  end)
  for b = 2, batches or 10 do
    one_batch(n)
    io.write(string.format("RSS calls=%d kb=%d\n", b * n, rss_kb()))
  end
else
  error("unknown mode " .. tostring(mode))
end
