--- Fault plans of the emulator: which requests get a 429/503, a dropped
-- connection, a slow, truncated or malformed answer.
--
-- A plan (JSON, `PUT /_emulator/faults` or `--faults`):
--    { "seed": 7, "delay": 0.1,
--      "rules": [ { "operation": "kontent.clone_environment" | "*",
--                   "queue": ["429", "close_after"], "rate": 0.3, "kinds": ["503", "slow"],
--                   "retry_after": 1, "slow_seconds": 3 } ] }
-- Rules are tried in order; a rule's queue is used before its rate; the first
-- fault found wins. The rate draws from a seeded PRNG of its own, so a plan
-- replays identically.
-- @module envclone.emulator.faults

local json = require("envclone.emulator.json")

local M = {}

local NULL = json.null
local MAX_FAULT_SECONDS = 120             -- cap for delay / slow_seconds
local MAX_QUEUE = 10000                   -- cap for a fault rule's queue

--- Fault kinds understood by the fault plan.
-- "404": the vendor's not-found answer, as a resource a moment too new to
-- be visible gives (Kontent's cloning state right after a clone).
-- "close_before": the connection drops before the handler runs (nothing applied).
-- Two kinds are "applied, then lost": the handler runs and its change stays (a create
-- creates), but its answer never reaches the client --
-- "close_after" drops the connection instead of answering;
-- "applied_502" answers 502 Bad Gateway with a proxy's plain HTML body (not the
-- vendor's JSON), as a proxy does when the upstream's answer is lost on the way.
M.kinds = { "429", "503", "404", "close_before", "close_after", "applied_502", "slow", "truncated",
  "malformed" }

--- The answer of the "applied_502" fault: what a reverse proxy (nginx's page) sends
-- when the upstream's answer is lost. Not the vendor's error shape, on purpose.
-- @treturn table a response description (`status`, `body`, `headers`)
function M.bad_gateway()
  return {
    status = 502,
    body = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
      .. "<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n",
    headers = { ["Content-Type"] = "text/html" },
  }
end

local KIND_SET = {}
for _, k in ipairs(M.kinds) do KIND_SET[k] = true end

-- splitmix64: a fault PRNG separate from math.random, so ids never disturb the sequence.
local function new_rng(seed)
  local state = math.tointeger(seed) or 0
  local function next64()
    state = state + 0x9e3779b97f4a7c15
    local z = state
    z = (z ~ (z >> 30)) * 0xbf58476d1ce4e5b9
    z = (z ~ (z >> 27)) * 0x94d049bb133111eb
    return z ~ (z >> 31)
  end
  return function() return (next64() >> 11) * (1.0 / 9007199254740992.0) end
end

local function check_kinds(list, raw, what)
  if list == nil or list == NULL then return json.array() end
  if json.kind(raw) ~= "array" then return nil, what .. " must be an array" end
  if #list > MAX_QUEUE then return nil, what .. " is too long" end
  local out = json.array()
  for _, k in ipairs(list) do
    if type(k) == "number" then k = tostring(math.tointeger(k) or k) end
    if not KIND_SET[k] then return nil, what .. ": unknown fault kind '" .. tostring(k) .. "'" end
    out[#out + 1] = k
  end
  return out
end

local function number_in(v, lo, hi, default)
  if v == nil or v == NULL then return default end
  if type(v) ~= "number" or v ~= v or v < lo or v > hi then return nil end
  return v
end

local function parse_rule(rule, rm, where, operations)
  if type(rule) ~= "table" or not rm then return nil, where .. " must be an object" end
  local r = {}
  r.operation = rule.operation
  if r.operation == nil or r.operation == NULL then r.operation = "*" end
  if r.operation ~= "*" and not operations[r.operation] then
    return nil, where .. ": unknown operation '" .. tostring(r.operation) .. "'"
  end
  r.rate = number_in(rule.rate, 0, 1, 0)
  if not r.rate then return nil, where .. ": rate must be a number in [0, 1]" end
  local err
  r.kinds, err = check_kinds(rule.kinds, rm.kinds, where .. ".kinds")
  if not r.kinds then return nil, err end
  if r.rate > 0 and #r.kinds == 0 then return nil, where .. ": rate > 0 needs kinds" end
  r.queue, err = check_kinds(rule.queue, rm.queue, where .. ".queue")
  if not r.queue then return nil, err end
  r.retry_after = number_in(rule.retry_after, 0, 3600, 1)
  if not r.retry_after or not math.tointeger(r.retry_after) then
    return nil, where .. ": retry_after must be an integer number of seconds"
  end
  r.retry_after = math.tointeger(r.retry_after)
  r.slow_seconds = number_in(rule.slow_seconds, 0, MAX_FAULT_SECONDS, 3)
  if not r.slow_seconds then
    return nil, where .. ": slow_seconds must be in [0, " .. MAX_FAULT_SECONDS .. "]"
  end
  return json.object(r)
end

--- Validates and normalises a fault plan.
-- @tparam string raw the plan's JSON text
-- @tparam table operations set of known operation names ("vendor.method" -> true)
-- @treturn[1] table plan
-- @treturn[2] nil
-- @treturn[2] string message
function M.parse(raw, operations)
  local plan, members = json.decode_object(raw)
  if not plan then return nil, members end
  local out = { rules = json.array() }
  out.seed = plan.seed
  if out.seed == nil or out.seed == NULL then
    out.seed = os.time()
  elseif type(out.seed) ~= "number" or not math.tointeger(out.seed) then
    return nil, "seed must be an integer"
  end
  out.seed = math.tointeger(out.seed)
  out.delay = number_in(plan.delay, 0, MAX_FAULT_SECONDS, 0)
  if not out.delay then return nil, "delay must be a number of seconds in [0, " .. MAX_FAULT_SECONDS .. "]" end
  local rules = plan.rules
  if rules ~= nil and rules ~= NULL then
    if json.kind(members.rules) ~= "array" then return nil, "rules must be an array" end
    local raw_rules = json.raw_elements(members.rules) or {}
    for i, rule in ipairs(rules) do
      local rm = raw_rules[i] and json.raw_members(raw_rules[i])
      local r, err = parse_rule(rule, rm, "rules[" .. i .. "]", operations)
      if not r then return nil, err end
      out.rules[#out.rules + 1] = r
    end
  end
  out.rng = new_rng(out.seed)
  return out
end

--- Picks the fault for one request of operation op.
-- @tparam table plan a parsed plan, or nil
-- @tparam string op "vendor.method"
-- @treturn[1] string the fault kind
-- @treturn[1] table the rule that chose it
-- @treturn[2] nil when no fault applies
function M.pick(plan, op)
  if not plan then return nil end
  for _, rule in ipairs(plan.rules) do
    if rule.operation == "*" or rule.operation == op then
      if #rule.queue > 0 then return table.remove(rule.queue, 1), rule end
      if rule.rate > 0 and plan.rng() < rule.rate then
        local k = math.min(#rule.kinds, 1 + math.floor(plan.rng() * #rule.kinds))
        return rule.kinds[k], rule
      end
    end
  end
  return nil
end

--- The plan as JSON-encodable view (or null).
function M.view(plan)
  if not plan then return NULL end
  return json.object{ seed = plan.seed, delay = plan.delay, rules = plan.rules }
end

return M
