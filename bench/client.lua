-- bench/client.lua - the Lua clients of bench/run.sh.
--
--   lua5.4 bench/client.lua envclone  get|post N PORT
--   lua5.2 bench/client.lua luacurl   get|post N PORT   (Debian lua-curl: 5.1/5.2 only)
--   lua5.4 bench/client.lua luasocket get|post N PORT
--   lua5.4 bench/client.lua envclone-core get|post N PORT
--   lua5.4 bench/client.lua envclone-rss get N PORT     RSS after 2000 and after N calls
--   lua5.4 bench/client.lua cjson-decode get N PORT     lua-cjson decoding the GET answer N times
--
-- envclone-core is a diagnostic: the same call through the C function of
-- the operation (core.operations[i].call) without the Lua layer (retry
-- loop, per-call option split), to show what that layer costs.
--
-- Each does WARMUP untimed requests, then N timed sequential requests to
-- the loopback Kontent stand-in, checks every answer (decoded with
-- lua-cjson by the peers, by envclone itself), and prints
--   RESULT client=<name> op=<get|post> n=<N> wall=<seconds> cpu=<seconds>
-- cpu is os.clock(): this process's CPU time (user + system).
--
-- For bench/https.sh (envclone only; unset, nothing changes):
--   BENCH_BASE_URL      the client's base_url (default http://127.0.0.1:PORT/kontent/v2)
--   BENCH_CA_FILE       the client's ca_file
--   BENCH_HTTP_VERSION  the client's http_version ("auto", "1.1", "2")
--   BENCH_WARMUP        untimed requests first (default 50)
local which, op, n, port = arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4])
assert(which and (op == "get" or op == "post") and n and port,
  "usage: client.lua envclone|luacurl|luasocket get|post N PORT")

local socket = require("socket") -- only for socket.gettime(), a wall clock
local WARMUP = tonumber(os.getenv("BENCH_WARMUP")) or 50
local UUID = "8d20758c-d74c-4f59-ae04-ee928c0816b7"
local BASE = os.getenv("BENCH_BASE_URL") or "http://127.0.0.1:" .. port .. "/kontent/v2"
local URL = BASE .. "/projects/" .. UUID .. (op == "get" and "/environment-cloning-state" or "/clone-environment")
-- The same bytes envclone encodes from the argument table below.
local BODY = '{"name":"Develop","roles_to_activate":[],"copy_data_options":'
  .. '{"content_items_assets":true,"content_item_version_history":false}}'

local call -- function() -> true, or raises

if which == "cjson-decode" then
  -- the decode every Lua client must do on top of the C floor: the same
  -- answer nginx gives the GET, decoded by lua-cjson
  local cjson = require("cjson")
  local answer = '{"cloning_state":"done"}'
  call = function()
    if cjson.decode(answer).cloning_state ~= "done" then error("unexpected answer") end
  end

elseif which == "envclone" or which == "envclone-core" or which == "envclone-rss" then
  local envclone = require("envclone")
  -- rate_limit = false: Kontent's client-side limit (10 calls/s per
  -- environment) would measure the limiter, not the call path
  local k = envclone.kontent{ api_key = "bench-api-key", base_url = BASE, retry = false, rate_limit = false,
    ca_file = os.getenv("BENCH_CA_FILE"), http_version = os.getenv("BENCH_HTTP_VERSION") }
  if which == "envclone-core" then
    -- bypass the Lua layer: call the C closure of the operation directly
    local handle, ops = k._handle, {}
    for _, o in ipairs(envclone.operations) do
      if o.vendor == "kontent" then ops[o.name] = o.call end
    end
    local get, clone = ops.get_cloning_state, ops.clone_environment
    k = {
      get_cloning_state = function(_, args) return get(handle, args) end,
      clone_environment = function(_, args) return clone(handle, args) end,
    }
  end
  if op == "get" then
    call = function()
      local state, err = k:get_cloning_state{ environment_id = UUID }
      if not state or state.cloning_state ~= "done" then error(tostring(err)) end
    end
  else
    call = function()
      local env, err = k:clone_environment{
        environment_id = UUID, name = "Develop", roles_to_activate = envclone.array{},
        copy_data_options = { content_items_assets = true, content_item_version_history = false },
      }
      if not env or not env.id then error(tostring(err)) end
    end
  end

elseif which == "luacurl" then
  -- Debian's lua-curl 0.3.0 (luacurl, E. Tassi): one easy handle, reused,
  -- so libcurl keeps the connection alive. It has no getinfo, so the
  -- status is checked through the decoded body.
  local curl = require("curl")
  local cjson = require("cjson")
  local c = curl.easy_init()
  local chunks = {}
  c:setopt(curl.OPT_URL, URL)
  c:setopt(curl.OPT_NOSIGNAL, 1)
  c:setopt(curl.OPT_TIMEOUT, 30)
  c:setopt(curl.OPT_CONNECTTIMEOUT, 10)
  c:setopt(curl.OPT_WRITEFUNCTION, function(s, len) -- luacurl passes (data, length)
    chunks[#chunks + 1] = s
    return len
  end)
  local h = { "Authorization: Bearer k", "Accept: application/json", "User-Agent: luacurl", "Expect:" }
  if op == "post" then
    h[#h + 1] = "Content-Type: application/json"
    c:setopt(curl.OPT_POSTFIELDS, BODY)
  end
  c:setopt(curl.OPT_HTTPHEADER, h)
  local key = op == "get" and "cloning_state" or "id"
  call = function()
    chunks = {}
    local rc, msg = c:perform() -- the CURLcode, 0 on success
    if rc ~= 0 then error("luacurl: " .. tostring(msg)) end
    local doc = cjson.decode(table.concat(chunks))
    if not doc[key] then error("unexpected answer") end
  end

elseif which == "luasocket" then
  -- socket.http 3.x: no keep-alive (it sends "Connection: close" and opens
  -- a new TCP connection for every request).
  local http = require("socket.http")
  local ltn12 = require("ltn12")
  local cjson = require("cjson")
  local key = op == "get" and "cloning_state" or "id"
  call = function()
    local t = {}
    local headers = { authorization = "Bearer k", accept = "application/json", ["user-agent"] = "luasocket" }
    local req = { url = URL, method = op == "get" and "GET" or "POST", headers = headers, sink = ltn12.sink.table(t) }
    if op == "post" then
      headers["content-type"] = "application/json"
      headers["content-length"] = tostring(#BODY)
      req.source = ltn12.source.string(BODY)
    end
    local ok, status = http.request(req)
    if ok ~= 1 or status ~= 200 then error("luasocket: " .. tostring(status)) end
    local doc = cjson.decode(table.concat(t))
    if not doc[key] then error("unexpected answer") end
  end

else
  error("unknown client " .. tostring(which))
end

-- Resident memory of this process, KiB (Linux /proc).
local function rss_kib()
  local f = io.open("/proc/self/status")
  local text = f and f:read("*a") or ""
  if f then f:close() end
  return tonumber(text:match("VmRSS:%s*(%d+)")) or 0
end

if which == "envclone-rss" then
  -- memory must stay flat however many calls a process makes
  local at = {}
  for i = 1, n do
    call()
    if i == 2000 or i == n then at[i] = rss_kib() end
  end
  io.write(string.format("RSS client=envclone op=%s calls=%d at2k=%d atN=%d\n", op, n, at[2000] or 0, at[n]))
  os.exit(0)
end

for _ = 1, WARMUP do call() end
collectgarbage()
local w0, c0 = socket.gettime(), os.clock()
for _ = 1, n do call() end
local w1, c1 = socket.gettime(), os.clock()
io.write(string.format("RESULT client=%s op=%s n=%d wall=%.6f cpu=%.6f\n", which, op, n, w1 - w0, c1 - c0))
