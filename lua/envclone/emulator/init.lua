--- Local emulator of the four vendors' endpoints that envclone talks to.
--
-- One process, one port, every vendor under its own prefixes (`prefixes` below):
--
--    Versori  http://127.0.0.1:PORT/versori/api/v2
--    Qovery   http://127.0.0.1:PORT/qovery
--    Kontent  http://127.0.0.1:PORT/kontent/v2
--    Droplit  http://127.0.0.1:PORT/droplit/v0
--
-- The emulator is stateful (a clone shows up in later reads, Kontent cloning goes
-- `in_progress` then `done`), enforces each vendor's auth scheme, answers with each
-- vendor's own error bodies, counts what it received and applied, reports the
-- concurrency it saw, and can inject faults (429/503 with Retry-After, dropped
-- connections, slow, truncated or malformed answers). Control endpoints live
-- under `/_emulator/` (envclone.emulator.control).
--
-- Layout: this file is the core (vendor discovery, routing, counters);
-- `main` is the command line, `server` the HTTP loop, `faults` the fault plans,
-- `control` the control API, `json` the encoder, and `vendors/<name>.lua`
-- hold each vendor's routes, seed data, rules and error bodies. A vendor
-- module is a table with `name`, `bases` (base name -> URL prefix), `credentials`,
-- `seed`, `routes` ({method, template, operation, handler[, base = name]}),
-- `new_state()`, `error(ctx, status, message)` and optionally `config`,
-- `begin(ctx)`, `finish(ctx, resp)`, `limit_key(ctx)`, `admit(emu, ctx, key)`,
-- `state_view(emu, state)`. Adding a vendor = adding its module and its
-- name to `vendor_names`.
--
-- Pure Lua 5.4 + luasocket + lua-cjson.
-- @module envclone.emulator

local socket = require("socket")
local json = require("envclone.emulator.json")
local util = require("envclone.emulator.util")
local faults = require("envclone.emulator.faults")
local control = require("envclone.emulator.control")
local server = require("envclone.emulator.server")

local M = {}

local NULL = json.null
local object = json.object

local MAX_LOG_ENTRIES = 200
local MAX_LOGGED_BODY = 64 * 1024
local MAX_OBJECTS = 100000                -- objects created per process (between resets)

--- The vendors, in the order they are listed (modules `envclone.emulator.vendors.<name>`).
M.vendor_names = { "versori", "qovery", "kontent", "droplit" }

--- Vendor modules by name.
M.vendors = {}

--- Credentials the emulator accepts, per vendor.
-- @table credentials
M.credentials = {}

--- Identifiers of the objects present after start and after `POST /_emulator/reset`.
-- @table seed
M.seed = {}

--- URL prefix of each vendor base on the emulator (append to `http://HOST:PORT`):
-- one per vendor under the vendor's name (`versori`, `qovery`, `kontent`,
-- `droplit`), plus any further API base a vendor splits off (`versori_connect`).
-- @table prefixes
M.prefixes = {}

--- Fault kinds understood by the fault plan.
M.fault_kinds = faults.kinds

--- Names of all emulated operations ("vendor.method").
M.operations = {}

local OPERATION_SET = {}
local BASES = {}      -- { prefix =, vendor =, base = }, longest prefix first
local ROUTES = {}     -- by base name: list of routes
local SETTINGS = {}   -- config key -> setting (from the vendors' `config`)
local SETTING_LIST = {}

local function split_path(path)
  local segments = {}
  for seg in path:gmatch("[^/]+") do segments[#segments + 1] = seg end
  return segments
end

local function percent_decode(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

for _, name in ipairs(M.vendor_names) do
  local v = require("envclone.emulator.vendors." .. name)
  assert(v.name == name and v.bases[name], "vendor module " .. name)
  M.vendors[name] = v
  M.credentials[name] = v.credentials
  M.seed[name] = v.seed
  for base, prefix in pairs(v.bases) do
    M.prefixes[base] = prefix
    BASES[#BASES + 1] = { prefix = prefix, vendor = v, base = base }
    ROUTES[base] = ROUTES[base] or {}
  end
  for _, r in ipairs(v.routes) do
    local route = {
      vendor = v, method = r[1], segments = split_path(r[2]), name = r[3], handler = r[4],
      base = r.base or name, op = name .. "." .. r[3],
    }
    assert(route.handler and ROUTES[route.base], route.op)
    table.insert(ROUTES[route.base], route)
    if not OPERATION_SET[route.op] then
      OPERATION_SET[route.op] = true
      M.operations[#M.operations + 1] = route.op
    end
  end
  for _, s in ipairs(v.config or {}) do
    SETTINGS[s.key] = s
    SETTING_LIST[#SETTING_LIST + 1] = s
  end
end
table.sort(BASES, function(a, b) return #a.prefix > #b.prefix end)

--- Encodes a Lua value as JSON (see envclone.emulator.json).
M.encode_json = json.encode
--- Marks a table as a JSON array (so that it encodes as `[]` when empty).
M.json_array = json.array
--- Marks a table as a JSON object (so that it encodes as `{}` when empty).
M.json_object = json.object
--- The JSON kind of a raw JSON text.
M.json_kind = json.kind
--- Maps each top-level member name of a JSON object text to its raw value text.
M.raw_members = json.raw_members

--- Validates and normalises a fault plan.
-- @tparam string raw the plan's JSON text
-- @treturn[1] table plan
-- @treturn[2] nil
-- @treturn[2] string message
function M.parse_fault_plan(raw)
  return faults.parse(raw, OPERATION_SET)
end

-- Returns vendor module, base name, path rest (after the prefix); or nil.
local function split_vendor(path)
  for _, b in ipairs(BASES) do
    local prefix = b.prefix
    if path == prefix or path:sub(1, #prefix + 1) == prefix .. "/" then
      return b.vendor, b.base, path:sub(#prefix + 1)
    end
  end
  return nil
end

-- Returns the decoded parameters, the raw (still percent-encoded) ones and the number of
-- literal segments matched; or nil. Handlers that split a segment themselves (Droplit's
-- `{ecosystemId};{alias}`, each side percent-encoded on its own) read the raw one.
local function match_segments(template, segments)
  if #template ~= #segments then return nil end
  local params, raw, literals = {}, {}, 0
  for i, t in ipairs(template) do
    local seg = segments[i]
    if t:sub(1, 1) == ":" then
      params[t:sub(2)] = percent_decode(seg)
      raw[t:sub(2)] = seg
    elseif t ~= seg then
      return nil
    else
      literals = literals + 1
    end
  end
  return params, raw, literals
end

-- Returns route, params, raw params; or nil, allowed-methods list (empty when no path
-- matches). When several routes match, the one with the most literal segments wins:
-- Versori's `.../environments/clone` beats `.../environments/:environment_id`.
local function match_route(base, rest, method)
  local segments = split_path(rest)
  local allowed, best, best_params, best_raw, best_literals = {}, nil, nil, nil, -1
  for _, r in ipairs(ROUTES[base]) do
    local params, raw, literals = match_segments(r.segments, segments)
    if params then
      if r.method == method then
        if literals > best_literals then
          best, best_params, best_raw, best_literals = r, params, raw, literals
        end
      elseif not allowed[r.method] then
        allowed[r.method] = true
        allowed[#allowed + 1] = r.method
      end
    end
  end
  if best then return best, best_params, best_raw end
  return nil, allowed
end

---------------------------------------------------------------------------
-- The emulator object
---------------------------------------------------------------------------

local Emulator = {}
Emulator.__index = Emulator
server.install(Emulator)

--- Creates an emulator (state + request handling + server), not yet listening.
-- @tparam[opt] table opts each vendor setting by key (`kontent_clone_seconds`,
--   default 2; `kontent_clone_outcome`, "done", "failed" or "canceled" (a state Kontent does not
--   document); see `settings()`),
--   `faults` (a fault plan's JSON text), `quiet` (no per-request log on stderr),
--   `clock` (function returning seconds, default `socket.gettime`)
-- @treturn[1] table the emulator
-- @treturn[2] nil
-- @treturn[2] string error (an invalid setting or fault plan)
function M.new(opts)
  opts = opts or {}
  local self = setmetatable({}, Emulator)
  self.clock = opts.clock or socket.gettime
  self.quiet = opts.quiet
  self.vendors = M.vendors
  self.settings = SETTINGS
  self.initial_config = {}
  for key, s in pairs(SETTINGS) do
    local v = opts[key]
    if v == nil then
      v = s.default
    else
      local checked, err = s.check(v)
      if checked == nil then return nil, err end
      v = checked
    end
    self.initial_config[key] = v
  end
  if opts.faults then
    local plan, err = M.parse_fault_plan(opts.faults)
    if not plan then return nil, "invalid fault plan: " .. err end
    self.initial_faults = opts.faults
  end
  self.tasks = {}
  self.connections = 0
  self.stopping = false
  self:reset()
  return self
end

--- The vendors' settings: list of `{ key, default, kind, help, check }`.
function M.settings()
  return SETTING_LIST
end

--- Restarts the concurrency maxima from the current values.
function Emulator:reset_concurrency()
  local c = self.concurrency
  if not c then
    c = { in_flight = 0, per_key = {}, vendor_connections = 0 }
    self.concurrency = c
  end
  c.max_connections = c.vendor_connections
  c.max_in_flight = c.in_flight
  c.max_per_key = {}
  for vendor, keys in pairs(c.per_key) do
    for key, n in pairs(keys) do
      if n > 0 then
        c.max_per_key[vendor] = c.max_per_key[vendor] or {}
        c.max_per_key[vendor][key] = n
      end
    end
  end
end

--- Restores state, counters, request log, faults, config and concurrency maxima to their start values.
function Emulator:reset()
  self.config = {}
  for k, v in pairs(self.initial_config) do self.config[k] = v end
  self.state = { objects = 0 }
  for name, v in pairs(M.vendors) do self.state[name] = v.new_state(self) end
  self.stats = {
    requests = 0,
    by_operation = {},
    applied = { creates = 0, by_operation = {} },
    created_names = {},
    faults = {},          -- fault kind -> how many requests got it
  }
  self.log = {}
  self.log_seq = 0
  self.faults = self.initial_faults and M.parse_fault_plan(self.initial_faults) or nil
  self:reset_concurrency()
end

--- Validates a fault plan (JSON text) against this emulator's operations.
function Emulator.parse_fault_plan(_, raw)
  return M.parse_fault_plan(raw)
end

--- Records a change applied to the state (called by the vendor handlers).
-- @tparam string op "vendor.method"
-- @tparam[opt] string name the created object's name (counted in `created_names`)
-- @tparam boolean is_create
function Emulator:applied(op, name, is_create)
  util.increment(self.stats.applied.by_operation, op)
  if is_create then
    self.stats.applied.creates = self.stats.applied.creates + 1
    self.state.objects = self.state.objects + 1
    if name then util.increment(self.stats.created_names, op .. ":" .. name) end
  end
end

--- Whether the bound on created objects is reached (handlers then answer 503).
function Emulator:capacity_reached()
  return self.state.objects >= MAX_OBJECTS
end

---------------------------------------------------------------------------
-- Request handling (transport-independent)
---------------------------------------------------------------------------

function Emulator:log_request(req)
  self.log_seq = self.log_seq + 1
  local headers = object()
  for k, v in pairs(req.headers) do headers[k] = v end
  local body = req.body or ""
  local entry = object{
    seq = self.log_seq,
    time = self.clock(),
    method = req.method,
    path = req.path,
    query = req.query or "",
    headers = headers,
    body = #body > MAX_LOGGED_BODY and body:sub(1, MAX_LOGGED_BODY) or body,
    body_truncated = #body > MAX_LOGGED_BODY or nil,
    operation = NULL,
    fault = NULL,
    status = NULL,
  }
  table.insert(self.log, entry)
  if #self.log > MAX_LOG_ENTRIES then table.remove(self.log, 1) end
  return entry
end

-- A vendor's generic error (or the control API's shape outside every vendor).
local function vendor_error(vendor, ctx, status, message)
  if vendor then return vendor.error(ctx, status, message) end
  return control.error(status, message)
end

local function list_prefixes()
  local out = {}
  for _, name in ipairs(M.vendor_names) do
    for _, prefix in pairs(M.vendors[name].bases) do out[#out + 1] = prefix end
  end
  table.sort(out)
  return table.concat(out, ", ")
end

-- Counts a vendor request in flight (overall and per the vendor's limit key).
function Emulator:track(vendor, key)
  local c = self.concurrency
  c.in_flight = c.in_flight + 1
  if c.in_flight > c.max_in_flight then c.max_in_flight = c.in_flight end
  local track = { vendor = vendor.name, key = key }
  if key then
    local per = c.per_key[vendor.name] or {}
    c.per_key[vendor.name] = per
    per[key] = (per[key] or 0) + 1
    local max = c.max_per_key[vendor.name] or {}
    c.max_per_key[vendor.name] = max
    if per[key] > (max[key] or 0) then max[key] = per[key] end
  end
  return track
end

--- Called by the server once a response is delivered (or abandoned).
function Emulator:finished(resp)
  local t = resp.tracked
  if not t then return end
  resp.tracked = nil
  local c = self.concurrency
  c.in_flight = math.max(0, c.in_flight - 1)
  local per = t.key and c.per_key[t.vendor]
  if per and per[t.key] then
    per[t.key] = per[t.key] - 1
    if per[t.key] <= 0 then per[t.key] = nil end
  end
end

-- Counts a connection once it carries a vendor request (control calls do not count).
function Emulator:vendor_connection(conn)
  if not conn or conn.vendor then return end
  conn.vendor = true
  local c = self.concurrency
  c.vendor_connections = c.vendor_connections + 1
  if c.vendor_connections > c.max_connections then c.max_connections = c.vendor_connections end
end

--- Called by the server when a connection ends: releases what it still held.
function Emulator:connection_closed(conn)
  if not conn then return end
  if conn.pending then
    self:finished(conn.pending)
    conn.pending = nil
  end
  if conn.vendor then
    conn.vendor = nil
    local c = self.concurrency
    c.vendor_connections = math.max(0, c.vendor_connections - 1)
  end
end

--- Handles one parsed request and returns the response description.
-- Vendor requests are counted and logged, faults are picked and the change is
-- applied here, synchronously; the transport then honours `delay`/`fault`.
-- @tparam table req `method`, `path` (no query), `query` (string or nil),
--   `headers` (lower-case names), `body` (string)
-- @treturn table `status`, `json` (value to encode) or `body` (string), `headers`,
--   `fault` (kind or nil), `delay`, `slow_seconds`, `shutdown`, `operation`
function Emulator:handle(req)
  if req.path == "/_emulator" or req.path:sub(1, 11) == "/_emulator/" then
    return control.handle(self, req)
  end
  local vendor, base, rest = split_vendor(req.path)
  if not vendor then
    return control.error(404, "no such path; vendors live under " .. list_prefixes())
  end
  self.stats.requests = self.stats.requests + 1
  self:vendor_connection(req.conn)
  local entry = self:log_request(req)
  local ctx = { vendor = vendor.name, base = base, req = req, state = self.state[vendor.name] }
  if vendor.begin then vendor.begin(ctx) end
  local route, params, raw_params = match_route(base, rest, req.method)
  local resp, fault, rule, tracked
  if not route then
    if #params > 0 then
      resp = vendor.error(ctx, 405, "method " .. req.method .. " not allowed here")
      resp.headers = { ["Allow"] = table.concat(params, ", ") }
    else
      resp = vendor.error(ctx, 404, "no such endpoint: " .. req.path)
    end
  else
    ctx.op, ctx.params, ctx.raw_params = route.op, params, raw_params
    entry.operation = route.op
    util.increment(self.stats.by_operation, route.op)
    local key = vendor.limit_key and vendor.limit_key(ctx)
    tracked = self:track(vendor, key)
    resp = vendor.admit and vendor.admit(self, ctx, key)
    if not resp then
      fault, rule = faults.pick(self.faults, route.op)
      if fault then util.increment(self.stats.faults, fault) end
      if fault == "404" then
        resp = vendor.error(ctx, 404, "not found")
      elseif fault == "429" or fault == "503" then
        local status = tonumber(fault)
        resp = vendor.error(ctx, status, status == 429 and "too many requests" or "service unavailable")
        resp.headers = resp.headers or {}
        resp.headers["Retry-After"] = tostring(rule.retry_after)
      elseif fault == "close_before" then
        resp = { status = 0 }
      else
        local ok, result = pcall(route.handler, self, ctx)
        if ok then
          resp = result
        else
          io.stderr:write("envclone emulator: handler error: ", tostring(result), "\n")
          resp = vendor.error(ctx, 500, "internal emulator error")
        end
      end
    end
  end
  if vendor.finish then vendor.finish(ctx, resp) end
  if fault == "applied_502" then
    -- the handler ran (its change stays applied); what comes back is a proxy's answer
    resp = faults.bad_gateway()
  end
  resp.tracked = tracked
  resp.operation = ctx.op
  resp.fault = fault
  resp.delay = self.faults and self.faults.delay or 0
  resp.slow_seconds = rule and rule.slow_seconds or 0
  entry.fault = fault or NULL
  entry.status = (fault == "close_before" or fault == "close_after") and NULL or resp.status
  return resp
end

--- An error answered by the HTTP layer itself (then the connection is closed),
-- in the shape of the vendor the path belongs to.
function Emulator.protocol_error(_, status, message, path)
  local vendor, base
  if path then vendor, base = split_vendor(path) end
  local ctx = { vendor = vendor and vendor.name, base = base }
  if vendor and vendor.begin then vendor.begin(ctx) end
  local resp = vendor_error(vendor, ctx, status, message)
  if vendor and vendor.finish then vendor.finish(ctx, resp) end
  resp.close = true
  resp.vendor = vendor and vendor.name
  return resp
end

--- Counts a request the HTTP layer refused, when it was aimed at a vendor.
function Emulator:rejected(resp)
  if resp.vendor then self.stats.requests = self.stats.requests + 1 end
end

--- Serialises a response description's body.
function Emulator.render_body(_, resp)
  if resp.body then return resp.body end
  if resp.json ~= nil then return json.encode(resp.json) end
  return ""
end

return M
