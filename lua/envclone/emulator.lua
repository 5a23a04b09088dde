--- Local emulator of the four vendors' endpoints that envclone talks to.
--
-- One process, one port, four vendors, each under its own prefix:
--
--    Versori  http://127.0.0.1:PORT/versori/api/v2
--    Qovery   http://127.0.0.1:PORT/qovery
--    Kontent  http://127.0.0.1:PORT/kontent/v2
--    Droplit  http://127.0.0.1:PORT/droplit/v0
--
-- The emulator is stateful (a clone shows up in later reads, Kontent cloning goes
-- `in_progress` then `done`), enforces each vendor's auth scheme, answers with each
-- vendor's own error bodies, counts what it received and applied, and can inject
-- faults (429/503 with Retry-After, dropped connections, slow, truncated or
-- malformed answers). Control endpoints live under `/_emulator/`.
--
-- It is pure Lua 5.4 + luasocket + lua-cjson: a single-threaded `socket.select`
-- loop with one coroutine per connection, so a delayed answer on one connection
-- never blocks another.
--
-- Decisions where the vendor pages are vague are marked "Emulator choice" below.
--
-- @module envclone.emulator

local socket = require("socket")
local cjson_safe = require("cjson.safe")

local M = {}

local NULL = cjson_safe.null

--- A private cjson instance: bounded nesting, no NaN/Infinity/hex numbers.
local json = cjson_safe.new()
json.decode_max_depth(64)
json.decode_invalid_numbers(false)

-- Limits (every buffer, loop and wait in the server is bounded by one of these).
local MAX_HEAD_BYTES = 64 * 1024          -- request line + headers
local MAX_BODY_BYTES = 1024 * 1024        -- request body
local IDLE_TIMEOUT = 30                   -- seconds: idle keep-alive, slow request, slow write
local MAX_CONNECTIONS = 256               -- select() is limited to FD_SETSIZE (1024)
local MAX_REQUESTS_PER_CONNECTION = 100000
local MAX_ACCEPTS_PER_STEP = 64
local MAX_LOG_ENTRIES = 200
local MAX_LOGGED_BODY = 64 * 1024
local MAX_OBJECTS = 100000                -- objects created per process (between resets)
local MAX_FAULT_SECONDS = 120             -- cap for delay / slow_seconds
local MAX_QUEUE = 10000                   -- cap for a fault rule's queue

--- Credentials the emulator accepts, per vendor.
-- @table credentials
M.credentials = {
  versori = { token = "emu-versori-token", cookie = "session=emu-versori-cookie" },
  qovery = { token = "emu-qovery-token" },
  kontent = { api_key = "emu-kontent-key" },
  droplit = { token = "emu-droplit-token" },
}

--- Identifiers of the objects present after start and after `POST /_emulator/reset`.
-- @table seed
M.seed = {
  versori = {
    organisation_id = "01HZY8K2V6Q4N3M5T7W9X0ABCD",
    project_id = "01HZY8K2V6Q4N3M5T7W9X0EFGH",
    project_name = "Demo project",
    environments = { "production", "staging" },
    execution_pool = "default",
    connection_id = "01HZY8K2V6Q4N3M5T7W9X0JKMN",
    version = "v1",
  },
  qovery = {
    application_id = "3c90c3cc-0d44-4b50-8888-8dd25736052a",
    application_name = "web",
    environment_id = "5b1c2e9a-3f4d-4e6a-9b8c-7d6e5f4a3b2c",
  },
  kontent = {
    environment_id = "8d20758c-d74c-4f59-ae04-ee928c0816b7",
    project_name = "Sample project",
    environment_name = "Production",
    role_id = "ee483b59-5a24-4010-b277-ae224c34bc71",
  },
  droplit = {
    ecosystem_id = "E5cdeSeedEcosystem01",
  },
}

--- URL prefix of each vendor on the emulator (append to `http://HOST:PORT`).
-- @table prefixes
M.prefixes = {
  versori = "/versori/api/v2",
  qovery = "/qovery",
  kontent = "/kontent/v2",
  droplit = "/droplit/v0",
}

--- Fault kinds understood by the fault plan.
M.fault_kinds = { "429", "503", "close_before", "close_after", "slow", "truncated", "malformed" }

local FAULT_KIND_SET = {}
for _, k in ipairs(M.fault_kinds) do FAULT_KIND_SET[k] = true end

local SEED_TIME = "2024-01-15T09:30:00Z"

---------------------------------------------------------------------------
-- JSON encoding (keeps [] and {} apart, emits null, echoes raw JSON)
---------------------------------------------------------------------------

local ARRAY_MT = { __name = "envclone.emulator.array" }
local OBJECT_MT = { __name = "envclone.emulator.object" }
local RAW_MT = { __name = "envclone.emulator.raw_json" }

local function array(t) return setmetatable(t or {}, ARRAY_MT) end
local function object(t) return setmetatable(t or {}, OBJECT_MT) end
local function raw_json(text) return setmetatable({ text }, RAW_MT) end

local ESCAPES = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}

local function escape_string(s)
  local escaped = s:gsub('[%c"\\]', function(c)
    return ESCAPES[c] or string.format("\\u%04x", c:byte())
  end)
  return '"' .. escaped .. '"'
end

local function is_sequence(t)
  local n, count = #t, 0
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 or k > n then return false end
    count = count + 1
  end
  return count == n
end

local function encode_number(v)
  if math.type(v) == "integer" then return string.format("%d", v) end
  if v ~= v or v == math.huge or v == -math.huge then return "null" end
  local i = math.tointeger(v)
  if i and math.abs(v) < 2 ^ 53 then return string.format("%d", i) end
  local s = string.format("%.14g", v)
  if tonumber(s) ~= v then s = string.format("%.17g", v) end
  return s
end

local function encode_value(v, out, depth)
  if depth > 64 then error("JSON nesting too deep", 0) end
  local tv = type(v)
  if v == nil or v == NULL then
    out[#out + 1] = "null"
  elseif tv == "boolean" then
    out[#out + 1] = tostring(v)
  elseif tv == "number" then
    out[#out + 1] = encode_number(v)
  elseif tv == "string" then
    out[#out + 1] = escape_string(v)
  elseif tv == "table" then
    local mt = getmetatable(v)
    if mt == RAW_MT then
      out[#out + 1] = v[1]
    elseif mt == ARRAY_MT or (mt ~= OBJECT_MT and next(v) ~= nil and is_sequence(v)) then
      out[#out + 1] = "["
      for i = 1, #v do
        if i > 1 then out[#out + 1] = "," end
        encode_value(v[i], out, depth + 1)
      end
      out[#out + 1] = "]"
    else
      local keys = {}
      for k in pairs(v) do keys[#keys + 1] = { tostring(k), k } end
      table.sort(keys, function(a, b) return a[1] < b[1] end)
      out[#out + 1] = "{"
      for i, pair in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        out[#out + 1] = escape_string(pair[1])
        out[#out + 1] = ":"
        encode_value(v[pair[2]], out, depth + 1)
      end
      out[#out + 1] = "}"
    end
  else
    error("cannot encode a " .. tv .. " as JSON", 0)
  end
end

--- Encodes a Lua value as JSON.
-- Tables made by the emulator's `array()` / `object()` keep their kind even when
-- empty; other empty tables encode as `{}`; `cjson.null` encodes as `null`; keys
-- are sorted so output is deterministic.
-- @param v the value
-- @treturn string JSON text
function M.encode_json(v)
  local out = {}
  encode_value(v, out, 0)
  return table.concat(out)
end

--- Marks a table as a JSON array (so that it encodes as `[]` when empty).
-- @tparam[opt] table t
-- @treturn table t
M.json_array = array

--- Marks a table as a JSON object (so that it encodes as `{}` when empty).
-- @tparam[opt] table t
-- @treturn table t
M.json_object = object

---------------------------------------------------------------------------
-- Raw JSON inspection: tells arrays from objects, which cjson cannot
---------------------------------------------------------------------------

-- Index of the quote closing the string that opens at i.
local function skip_string(text, i)
  local j, n = i + 1, #text
  while j <= n do
    local k = text:find('["\\]', j)
    if not k then return n end
    if text:byte(k) == 92 then j = k + 2 else return k end
  end
  return n
end

-- Index of the last character of the JSON value that starts at i.
local function skip_value(text, i)
  local c = text:sub(i, i)
  if c == '"' then return skip_string(text, i) end
  if c == "{" or c == "[" then
    local depth, j, n = 0, i, #text
    while j <= n do
      local k = text:find('[%[%]{}"]', j)
      if not k then return n end
      local ch = text:sub(k, k)
      if ch == '"' then
        j = skip_string(text, k) + 1
      else
        depth = depth + ((ch == "{" or ch == "[") and 1 or -1)
        if depth == 0 then return k end
        j = k + 1
      end
    end
    return n
  end
  local k = text:find("[%s,%]}]", i)
  return (k or #text + 1) - 1
end

--- The JSON kind of a raw JSON text, from its first non-space character.
-- @tparam string text raw JSON
-- @treturn string "object", "array", "string", "boolean", "null", "number" or "empty"
local function json_kind(text)
  local c = text and text:match("^%s*(%S)")
  if c == nil then return "empty" end
  if c == "{" then return "object" end
  if c == "[" then return "array" end
  if c == '"' then return "string" end
  if c == "t" or c == "f" then return "boolean" end
  if c == "n" then return "null" end
  return "number"
end
M.json_kind = json_kind

--- Maps each top-level member name of a (valid) JSON object text to its raw value text.
-- @tparam string text JSON already validated by cjson
-- @treturn[1] table name -> raw text
-- @treturn[2] nil when the text is not an object
local function raw_members(text)
  local i = text:find("%S")
  if not i or text:sub(i, i) ~= "{" then return nil end
  local members, n = {}, #text
  i = i + 1
  while i <= n do
    i = text:find("%S", i)
    if not i then break end
    local c = text:sub(i, i)
    if c == "}" then break end
    if c == "," then
      i = i + 1
    elseif c == '"' then
      local key_end = skip_string(text, i)
      local key = json.decode(text:sub(i, key_end))
      local colon = text:find(":", key_end + 1, true)
      local vstart = colon and text:find("%S", colon + 1)
      if not vstart then break end
      local vend = skip_value(text, vstart)
      if vend < vstart then break end
      if type(key) == "string" then members[key] = text:sub(vstart, vend) end
      i = vend + 1
    else
      break
    end
  end
  return members
end
M.raw_members = raw_members

--- Lists the raw texts of the elements of a (valid) JSON array text.
-- @tparam string text JSON already validated by cjson
-- @treturn[1] table list of raw element texts
-- @treturn[2] nil when the text is not an array
local function raw_elements(text)
  local i = text and text:find("%S")
  if not i or text:sub(i, i) ~= "[" then return nil end
  local out, n = {}, #text
  i = i + 1
  while i <= n do
    i = text:find("%S", i)
    if not i then break end
    local c = text:sub(i, i)
    if c == "]" then break end
    if c == "," then
      i = i + 1
    else
      local e = skip_value(text, i)
      if e < i then break end
      out[#out + 1] = text:sub(i, e)
      i = e + 1
    end
  end
  return out
end

--- Decodes a request body that must be a JSON object.
-- @treturn[1] table decoded object
-- @treturn[1] table raw member texts (see raw_members)
-- @treturn[2] nil
-- @treturn[2] string message
local function decode_object(body)
  if body == nil or not body:find("%S") then return nil, "request body is empty" end
  local value, err = json.decode(body)
  if value == nil then return nil, "request body is not valid JSON: " .. tostring(err) end
  if json_kind(body) ~= "object" then return nil, "request body must be a JSON object" end
  return value, raw_members(body)
end

---------------------------------------------------------------------------
-- Small helpers: time, ids, copies, validation
---------------------------------------------------------------------------

local function iso_time(t)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t))
end

local CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
local ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

local function random_chars(alphabet, n)
  local out = {}
  for i = 1, n do
    local k = math.random(#alphabet)
    out[i] = alphabet:sub(k, k)
  end
  return table.concat(out)
end

--- A new ULID (48-bit millisecond time + 80 random bits, Crockford base32).
local function new_ulid(now)
  local ms = math.floor(now * 1000)
  local out = {}
  for i = 10, 1, -1 do
    local k = ms % 32
    out[i] = CROCKFORD:sub(k + 1, k + 1)
    ms = ms // 32
  end
  return table.concat(out) .. random_chars(CROCKFORD, 16)
end

--- A new random (version 4) UUID.
local function new_uuid()
  return string.format("%08x-%04x-4%03x-%x%03x-%012x",
    math.random(0, 0xffffffff), math.random(0, 0xffff), math.random(0, 0xfff),
    math.random(8, 11), math.random(0, 0xfff), math.random(0, 0xffffffffffff))
end

local function new_hex(n)
  return random_chars("0123456789abcdef", n)
end

local function is_uuid(s)
  return type(s) == "string"
    and s:match("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$") ~= nil
end

local function deep_copy(v, depth)
  depth = depth or 0
  if type(v) ~= "table" or depth > 64 then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = deep_copy(x, depth + 1) end
  return setmetatable(out, getmetatable(v))
end

local function count_chars(s)
  return utf8.len(s)
end

local function bearer(req)
  local h = req.headers["authorization"]
  return h and h:match("^[Bb][Ee][Aa][Rr][Ee][Rr] +(.-)%s*$")
end

local function increment(t, key)
  t[key] = (t[key] or 0) + 1
end

-- Checks body fields against a list of {name, type, required}; null counts as absent.
local function check_fields(body, fields)
  for _, f in ipairs(fields) do
    local name, want, required = f[1], f[2], f[3]
    local v = body[name]
    if v == nil or v == NULL then
      if required then return name, "field '" .. name .. "' is required" end
    elseif type(v) ~= want then
      return name, "field '" .. name .. "' must be a " .. want
    elseif required and want == "string" and v == "" then
      return name, "field '" .. name .. "' must not be empty"
    end
  end
  return nil
end

---------------------------------------------------------------------------
-- Vendor error bodies
---------------------------------------------------------------------------

local REASONS = {
  [100] = "Continue", [200] = "OK", [201] = "Created", [204] = "No Content",
  [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [409] = "Conflict", [411] = "Length Required",
  [413] = "Payload Too Large", [429] = "Too Many Requests", [431] = "Request Header Fields Too Large",
  [500] = "Internal Server Error", [503] = "Service Unavailable", [505] = "HTTP Version Not Supported",
}

local VERSORI_CODES = {
  [400] = "invalid_request", [401] = "unauthorized", [404] = "not_found",
  [405] = "method_not_allowed", [409] = "conflict", [411] = "length_required",
  [413] = "payload_too_large", [429] = "rate_limited", [431] = "headers_too_large",
  [500] = "internal_error", [503] = "service_unavailable",
}

-- Emulator choice: Kontent codes 5 (validation), 7 (auth), 100 (not found);
-- other statuses use the HTTP status as error_code.
local KONTENT_CODES = { [400] = 5, [401] = 7, [404] = 100 }

local DROPLIT_TYPES = {
  [400] = "invalidParameters", [401] = "unauthorized", [404] = "missingParameters",
  [405] = "invalidParameters", [413] = "invalidBody", [429] = "tooManyRequests",
  [503] = "serviceUnavailable",
}

local function upper_snake(s)
  return (s:upper():gsub("[^%w]+", "_"))
end

local function versori_error(status, code, message)
  return { status = status, json = object{ code = code, message = message } }
end

local function qovery_error(status, message)
  return { status = status, json = object{
    status = status, error = upper_snake(REASONS[status] or "Error"), message = message } }
end

local function kontent_error(ctx, status, code, message)
  return { status = status, json = object{
    request_id = ctx.request_id, error_code = code, message = message } }
end

local function droplit_error(status, etype, name, parameter, message)
  return { status = status, json = object{ errors = array{ object{
    type = etype, name = name, parameter = parameter, message = message } } } }
end

--- A generic error in the vendor's own shape (used for 404/405/429/503, parse errors...).
local function vendor_error(vendor, ctx, status, message)
  if vendor == "versori" then
    return versori_error(status, VERSORI_CODES[status] or "error", message)
  elseif vendor == "qovery" then
    return qovery_error(status, message)
  elseif vendor == "kontent" then
    return kontent_error(ctx, status, KONTENT_CODES[status] or status, message)
  elseif vendor == "droplit" then
    return droplit_error(status, DROPLIT_TYPES[status] or "invalidParameters",
      REASONS[status] or "Error", nil, message)
  end
  return { status = status, json = object{
    error = (REASONS[status] or "error"):lower():gsub(" ", "_"), message = message } }
end

---------------------------------------------------------------------------
-- Seed state
---------------------------------------------------------------------------

local function versori_environment(id, name, pool, created)
  return object{
    id = id, name = name, status = "active", createdAt = created, updatedAt = created,
    executionPool = pool, files = array(), labels = object(),
  }
end

local function seed_state()
  local s = M.seed
  local state = { objects = 0 }

  local vs = s.versori
  local project = object{
    id = vs.project_id,
    name = vs.project_name,
    environments = array{
      versori_environment("01HZY8K2V6Q4N3M5T7W9X0PRDN", "production", vs.execution_pool, SEED_TIME),
      versori_environment("01HZY8K2V6Q4N3M5T7W9X0STGE", "staging", vs.execution_pool, SEED_TIME),
    },
    currentFiles = object{ files = array(), labels = object() },
    createdAt = SEED_TIME,
    updatedAt = SEED_TIME,
    settings = object{
      acceptCodeChangesAutomatically = false, testingMockWithAI = false,
      planningChatVersion = "v1", chatStoredInDB = true,
    },
    metadata = object{ sentimentHistory = array() },
    dynamicVariablesSchema = object(),
  }
  local connection = {
    id = vs.connection_id,
    versions = {
      object{ id = "01HZY8K2V6Q4N3M5T7W9X0V1AA", name = vs.version, description = "",
        isLatest = true, isDefault = true, createdAt = SEED_TIME, updatedAt = SEED_TIME,
        publishedAt = SEED_TIME },
    },
  }
  state.versori = { orgs = { [vs.organisation_id] = {
    projects = { [vs.project_id] = project },
    connections = { [vs.connection_id] = connection },
  } } }

  local qs = s.qovery
  state.qovery = {
    environments = { [qs.environment_id] = { id = qs.environment_id } },
    applications = { [qs.application_id] = object{
      id = qs.application_id, created_at = SEED_TIME, updated_at = SEED_TIME,
      environment = object{ id = qs.environment_id },
      name = qs.application_name, description = "",
      healthchecks = object(),
      icon_uri = "app://qovery-console/application",
      service_type = "APPLICATION",
      storage = array(),
      git_repository = object{
        provider = "GITHUB", owner = "envclone", url = "https://github.com/envclone/web.git",
        name = "envclone/web", has_access = true, branch = "main", root_path = "/",
      },
      maximum_cpu = 16000, maximum_memory = 16384, maximun_gpu = 0,
      build_mode = "DOCKER", dockerfile_path = "Dockerfile",
      cpu = 500, memory = 512, gpu = 0,
      min_running_instances = 1, max_running_instances = 1,
      auto_preview = true, auto_deploy = true,
      ports = array(), arguments = array(),
      annotations_groups = array(), labels_groups = array(),
      docker_target_build_stage = NULL,
    } },
  }

  local ks = s.kontent
  state.kontent = { environments = { [ks.environment_id] = {
    id = ks.environment_id, project = ks.project_name, name = ks.environment_name,
    is_production = true,
  } } }

  state.droplit = {
    ecosystems = { [s.droplit.ecosystem_id] = true },
    environments = {},
    aliases = {},
  }
  return state
end

---------------------------------------------------------------------------
-- The emulator object
---------------------------------------------------------------------------

local Emulator = {}
Emulator.__index = Emulator

--- Creates an emulator (state + request handling + server), not yet listening.
-- @tparam[opt] table opts `kontent_clone_seconds` (default 2), `kontent_clone_outcome`
--   ("done" or "failed"), `quiet` (no per-request log on stderr), `clock` (function
--   returning seconds, default `socket.gettime`)
-- @treturn table the emulator
function M.new(opts)
  opts = opts or {}
  local self = setmetatable({}, Emulator)
  self.clock = opts.clock or socket.gettime
  self.quiet = opts.quiet
  self.initial_config = {
    kontent_clone_seconds = opts.kontent_clone_seconds or 2,
    kontent_clone_outcome = opts.kontent_clone_outcome or "done",
  }
  self.tasks = {}
  self.connections = 0
  self.stopping = false
  self:reset()
  return self
end

--- Restores state, counters, request log, faults and config to their start values.
function Emulator:reset()
  self.config = {
    kontent_clone_seconds = self.initial_config.kontent_clone_seconds,
    kontent_clone_outcome = self.initial_config.kontent_clone_outcome,
  }
  self.state = seed_state()
  self.stats = {
    requests = 0,
    by_operation = {},
    applied = { creates = 0, by_operation = {} },
    created_names = {},
  }
  self.log = {}
  self.log_seq = 0
  self.faults = nil
end

-- Records a change applied to the state.
function Emulator:applied(op, name, is_create)
  increment(self.stats.applied.by_operation, op)
  if is_create then
    self.stats.applied.creates = self.stats.applied.creates + 1
    self.state.objects = self.state.objects + 1
    if name then increment(self.stats.created_names, op .. ":" .. name) end
  end
end

function Emulator:capacity_reached()
  return self.state.objects >= MAX_OBJECTS
end

---------------------------------------------------------------------------
-- Versori
---------------------------------------------------------------------------

local handlers = {}

local function find_by_name(list, name)
  for _, item in ipairs(list) do
    if item.name == name then return item end
  end
  return nil
end

function handlers.versori_clone_environment(self, ctx)
  local req, p = ctx.req, ctx.params
  if bearer(req) ~= M.credentials.versori.token then
    return versori_error(401, "unauthorized", "missing or invalid bearer token")
  end
  local org = self.state.versori.orgs[p.organisation_id]
  if not org then
    return versori_error(404, "organisation_not_found", "organisation " .. p.organisation_id .. " not found")
  end
  local project = org.projects[p.project_id]
  if not project then
    return versori_error(404, "project_not_found", "project " .. p.project_id .. " not found")
  end
  local body, err = decode_object(req.body)
  if not body then return versori_error(400, "invalid_request", err) end
  local _, msg = check_fields(body, {
    { "oldEnvName", "string", true }, { "newEnvName", "string", true },
    { "executionPool", "string" }, { "cloneSystems", "boolean" },
    { "copyStaticUserVariables", "boolean" },
  })
  if msg then return versori_error(400, "invalid_request", msg) end
  local source = find_by_name(project.environments, body.oldEnvName)
  if not source then
    return versori_error(404, "environment_not_found", "environment '" .. body.oldEnvName .. "' not found")
  end
  if find_by_name(project.environments, body.newEnvName) then
    return versori_error(409, "environment_exists", "environment '" .. body.newEnvName .. "' already exists")
  end
  if self:capacity_reached() then
    return versori_error(503, "service_unavailable", "emulator capacity reached; reset it")
  end
  local now = self.clock()
  local pool = body.executionPool
  if pool == nil or pool == NULL then pool = source.executionPool end
  local env = versori_environment(new_ulid(now), body.newEnvName, pool, iso_time(now))
  table.insert(project.environments, env)
  project.updatedAt = iso_time(now)
  self:applied(ctx.op, body.newEnvName, true)
  return { status = 200, json = project }
end

function handlers.versori_create_connection_version(self, ctx)
  local req, p = ctx.req, ctx.params
  if req.headers["cookie"] ~= M.credentials.versori.cookie then
    return versori_error(401, "unauthorized", "missing or invalid session cookie")
  end
  local org = self.state.versori.orgs[p.organisation_id]
  if not org then
    return versori_error(404, "organisation_not_found", "organisation " .. p.organisation_id .. " not found")
  end
  local conn = org.connections[p.connection_id]
  if not conn then
    return versori_error(404, "connection_not_found", "connection " .. p.connection_id .. " not found")
  end
  local body, err = decode_object(req.body)
  if not body then return versori_error(400, "invalid_request", err) end
  local _, msg = check_fields(body, { { "name", "string", true }, { "fromVersion", "string" } })
  if msg then return versori_error(400, "invalid_request", msg) end
  -- Emulator choice: the reserved words are matched exactly (lower case), as written on the page.
  if body.name == "default" or body.name == "latest" then
    return versori_error(400, "reserved_name", "the version name '" .. body.name .. "' is reserved")
  end
  if find_by_name(conn.versions, body.name) then
    return versori_error(409, "version_exists", "version '" .. body.name .. "' already exists")
  end
  local from = body.fromVersion
  if from ~= nil and from ~= NULL and not find_by_name(conn.versions, from) then
    return versori_error(404, "version_not_found", "version '" .. from .. "' not found")
  end
  if self:capacity_reached() then
    return versori_error(503, "service_unavailable", "emulator capacity reached; reset it")
  end
  local now = iso_time(self.clock())
  for _, v in ipairs(conn.versions) do v.isLatest = false end
  local version = object{
    id = new_ulid(self.clock()), name = body.name, description = "",
    isLatest = true, isDefault = false, createdAt = now, updatedAt = now, publishedAt = NULL,
  }
  table.insert(conn.versions, version)
  self:applied(ctx.op, body.name, true)
  return { status = 201, json = version }
end

---------------------------------------------------------------------------
-- Qovery
---------------------------------------------------------------------------

function handlers.qovery_clone_application(self, ctx)
  local req = ctx.req
  if bearer(req) ~= M.credentials.qovery.token then
    return qovery_error(401, "missing or invalid bearer token")
  end
  local qs = self.state.qovery
  local source = qs.applications[ctx.params.applicationId]
  if not source then
    return qovery_error(404, "application " .. ctx.params.applicationId .. " not found")
  end
  local body, err = decode_object(req.body)
  if not body then return qovery_error(400, err) end
  local _, msg = check_fields(body, { { "name", "string", true }, { "environment_id", "string", true } })
  if msg then return qovery_error(400, msg) end
  if not is_uuid(body.environment_id) then
    return qovery_error(400, "environment_id must be a uuid")
  end
  local env_id = body.environment_id:lower()
  if not qs.environments[env_id] then
    return qovery_error(400, "environment " .. body.environment_id .. " not found")
  end
  -- "name is case insensitive": names are unique per environment, ignoring case.
  local wanted = body.name:lower()
  for _, app in pairs(qs.applications) do
    if app.environment.id == env_id and app.name:lower() == wanted then
      return qovery_error(400, "an application named '" .. body.name .. "' already exists in environment " .. env_id)
    end
  end
  if self:capacity_reached() then
    return qovery_error(503, "emulator capacity reached; reset it")
  end
  local now = iso_time(self.clock())
  local app = deep_copy(source)
  app.id = new_uuid()
  app.name = body.name
  app.environment = object{ id = env_id }
  app.created_at = now
  app.updated_at = now
  qs.applications[app.id] = app
  self:applied(ctx.op, body.name, true)
  return { status = 201, json = app }
end

---------------------------------------------------------------------------
-- Kontent
---------------------------------------------------------------------------

-- Cloning state of a Kontent environment. Emulator choice: evaluated when read, with
-- the config in force at that moment; once `done`/`failed` has been seen it stays.
function Emulator:kontent_cloning_state(env)
  local c = env.cloning
  if not c then return "done" end
  if c.final then return c.final end
  local secs = self.config.kontent_clone_seconds
  if secs < 0 or self.clock() - c.started < secs then return "in_progress" end
  c.final = self.config.kontent_clone_outcome == "failed" and "failed" or "done"
  return c.final
end

local function kontent_view(env)
  return object{ id = env.id, name = env.project, environment = env.name, is_production = env.is_production }
end

-- Auth + environment lookup shared by all Kontent operations.
local function kontent_env(self, ctx)
  if bearer(ctx.req) ~= M.credentials.kontent.api_key then
    return nil, kontent_error(ctx, 401, 7,
      "Missing or invalid API key. Please include a valid Management API key in the Authorization header.")
  end
  local env = self.state.kontent.environments[ctx.params.environment_id]
  if not env then
    return nil, kontent_error(ctx, 404, 100,
      "The environment " .. ctx.params.environment_id .. " does not exist.")
  end
  return env
end

function handlers.kontent_clone_environment(self, ctx)
  local source, failure = kontent_env(self, ctx)
  if not source then return failure end
  local body, members = decode_object(ctx.req.body)
  if not body then return kontent_error(ctx, 400, 5, members) end
  local field, msg = check_fields(body, { { "name", "string", true } })
  if field then return kontent_error(ctx, 400, 5, msg) end
  local len = count_chars(body.name)
  if not len or len < 1 or len > 200 then
    return kontent_error(ctx, 400, 5, "The name must be 1 to 200 characters long.")
  end
  local roles = body.roles_to_activate
  if roles ~= nil and roles ~= NULL then
    if json_kind(members.roles_to_activate) ~= "array" then
      return kontent_error(ctx, 400, 5, "roles_to_activate must be an array of role IDs.")
    end
    for _, r in ipairs(roles) do
      if type(r) ~= "string" then
        return kontent_error(ctx, 400, 5, "roles_to_activate must contain role IDs (strings).")
      end
    end
  end
  local opts = body.copy_data_options
  if opts ~= nil and opts ~= NULL then
    if json_kind(members.copy_data_options) ~= "object" then
      return kontent_error(ctx, 400, 5, "copy_data_options must be an object.")
    end
    for _, k in ipairs{ "content_items_assets", "content_item_version_history" } do
      if opts[k] ~= nil and opts[k] ~= NULL and type(opts[k]) ~= "boolean" then
        return kontent_error(ctx, 400, 5, "copy_data_options." .. k .. " must be a boolean.")
      end
    end
  end
  if self:capacity_reached() then
    return kontent_error(ctx, 503, 503, "Emulator capacity reached; reset it.")
  end
  local env = {
    id = new_uuid(), project = source.project, name = body.name, is_production = false,
    cloning = { started = self.clock() },
  }
  self.state.kontent.environments[env.id] = env
  self:applied(ctx.op, body.name, true)
  return { status = 200, json = object{
    id = env.id,
    management_api_key = bearer(ctx.req),
    secured_delivery_api_key = NULL,
    delivery_preview_api_key = NULL,
  } }
end

function handlers.kontent_get_cloning_state(self, ctx)
  local env, failure = kontent_env(self, ctx)
  if not env then return failure end
  return { status = 200, json = object{ cloning_state = self:kontent_cloning_state(env) } }
end

function handlers.kontent_get_environment(self, ctx)
  local env, failure = kontent_env(self, ctx)
  if not env then return failure end
  return { status = 200, json = kontent_view(env) }
end

function handlers.kontent_mark_environment_as_production(self, ctx)
  local env, failure = kontent_env(self, ctx)
  if not env then return failure end
  local raw = ctx.req.body
  if raw and raw:find("%S") then
    local body, err = decode_object(raw)
    if not body then return kontent_error(ctx, 400, 5, err) end
    local _, msg = check_fields(body, { { "enable_webhooks", "boolean" } })
    if msg then return kontent_error(ctx, 400, 5, msg) end
  end
  if env.is_production then
    return kontent_error(ctx, 400, 232, "The environment " .. env.id .. " is already marked as production.")
  end
  for _, other in pairs(self.state.kontent.environments) do
    if other.project == env.project then other.is_production = false end
  end
  env.is_production = true
  self:applied(ctx.op, nil, false)
  return { status = 204 }
end

function handlers.kontent_rename_environment(self, ctx)
  local env, failure = kontent_env(self, ctx)
  if not env then return failure end
  local raw = ctx.req.body or ""
  local ops, err = json.decode(raw)
  if ops == nil then
    return kontent_error(ctx, 400, 5, "The request body is not valid JSON: " .. tostring(err))
  end
  if json_kind(raw) ~= "array" or #ops < 1 then
    return kontent_error(ctx, 400, 5, "The request body must be an array with at least one operation.")
  end
  local name
  for i, op in ipairs(ops) do
    if type(op) ~= "table" or op.op ~= "rename_environment" then
      return kontent_error(ctx, 400, 5, "Operation " .. i .. ": the only allowed op is rename_environment.")
    end
    local len = type(op.value) == "string" and count_chars(op.value)
    if not len or len < 1 or len > 200 then
      return kontent_error(ctx, 400, 5, "Operation " .. i .. ": value must be a string of 1 to 200 characters.")
    end
    name = op.value
  end
  env.name = name
  self:applied(ctx.op, nil, false)
  return { status = 200, json = kontent_view(env) }
end

function handlers.kontent_delete_environment(self, ctx)
  local env, failure = kontent_env(self, ctx)
  if not env then return failure end
  if env.is_production then
    return kontent_error(ctx, 400, 233, "The production environment can\u{2019}t be deleted.")
  end
  self.state.kontent.environments[env.id] = nil
  self:applied(ctx.op, nil, false)
  return { status = 204 }
end

---------------------------------------------------------------------------
-- Droplit
---------------------------------------------------------------------------

local function droplit_id()
  return "E" .. random_chars(ALNUM, 20)
end

function handlers.droplit_create_environment(self, ctx)
  local req = ctx.req
  if req.headers["authorization"] ~= M.credentials.droplit.token then
    return droplit_error(401, "unauthorized", "Unauthorized", "authorization",
      "A valid token is required in the authorization header.")
  end
  if req.query and req.query ~= "" then
    local param = req.query:match("^([^&=]*)") or ""
    return droplit_error(400, "invalidParameters", "No Query String Allowed", param,
      "No query string is allowed when calling this endpoint.")
  end
  local ctype = (req.headers["content-type"] or ""):match("^%s*([^;%s]+)")
  if not ctype or ctype:lower() ~= "application/json" then
    return droplit_error(400, "invalidParameters", "Body Parameters Missing", "ecosystemId",
      "Body parameters are missing; the content-type header must be application/json.")
  end
  local body, members = decode_object(req.body)
  if not body then
    -- Emulator choice: a body that is not a JSON object is an invalid body.
    return droplit_error(400, "invalidBody", "Body Parameters Missing", "ecosystemId", members)
  end
  local eco = body.ecosystemId
  if type(eco) ~= "string" or eco == "" then
    return droplit_error(400, "invalidParameters", "Body Parameters Missing", "ecosystemId",
      "The body parameter ecosystemId is required.")
  end
  if members.meta ~= nil and json_kind(members.meta) ~= "object" then
    return droplit_error(400, "invalidParameters", "Metadata Format Invalid", "meta",
      "meta must be a JSON object.")
  end
  local alias = body.alias
  if members.alias ~= nil then
    if type(alias) ~= "string" or #alias < 1 or #alias > 64 or alias:find("[^%w_%.%-]") then
      return droplit_error(400, "invalidParameters", "Alias Invalid", "alias",
        "The alias must be 1 to 64 characters of A-Z, a-z, 0-9, '_', '.' or '-'.")
    end
  end
  local ds = self.state.droplit
  if not ds.ecosystems[eco] then
    return droplit_error(404, "missingParameters", "Ecosystem Missing", "ecosystemId",
      "The ecosystem " .. eco .. " does not exist.")
  end
  if alias and ds.aliases[alias] then
    return droplit_error(400, "invalidBody", "Alias Exists", "alias",
      "An object with the alias '" .. alias .. "' already exists.")
  end
  if self:capacity_reached() then
    return droplit_error(503, "serviceUnavailable", "Service Unavailable", nil,
      "Emulator capacity reached; reset it.")
  end
  local env = {
    id = droplit_id(),
    ecosystemId = eco,
    alias = alias,
    meta = members.meta and raw_json(members.meta) or object(),
    createdAt = os.date("!%Y-%m-%d %H:%M:%S", math.floor(self.clock())),
    metadata_prefix = req.headers["x-system-metadata-prefix"] or "$",
  }
  ds.environments[env.id] = env
  if alias then ds.aliases[alias] = env.id end
  self:applied(ctx.op, alias, true)
  return { status = 201, json = object{
    createdAt = env.createdAt, ecosystemId = eco, id = env.id, meta = env.meta, alias = alias,
  } }
end

---------------------------------------------------------------------------
-- Routing
---------------------------------------------------------------------------

-- Path templates relative to each vendor's prefix; ":name" segments are parameters.
local ROUTES = {
  { "versori", "POST", "o/:organisation_id/projects/:project_id/environments/clone", "clone_environment" },
  { "versori", "POST", "o/:organisation_id/connections/:connection_id/versions", "create_connection_version" },
  { "qovery", "POST", "application/:applicationId/clone", "clone_application" },
  { "kontent", "POST", "projects/:environment_id/clone-environment", "clone_environment" },
  { "kontent", "GET", "projects/:environment_id/environment-cloning-state", "get_cloning_state" },
  { "kontent", "GET", "projects/:environment_id", "get_environment" },
  { "kontent", "PUT", "projects/:environment_id/mark-environment-as-production", "mark_environment_as_production" },
  { "kontent", "PATCH", "projects/:environment_id", "rename_environment" },
  { "kontent", "DELETE", "projects/:environment_id", "delete_environment" },
  { "droplit", "POST", "api/environments", "create_environment" },
}

local function split_path(path)
  local segments = {}
  for seg in path:gmatch("[^/]+") do segments[#segments + 1] = seg end
  return segments
end

local function percent_decode(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

for _, r in ipairs(ROUTES) do
  r.vendor, r.method, r.segments, r.name = r[1], r[2], split_path(r[3]), r[4]
  r.op = r.vendor .. "." .. r.name
  r.handler = handlers[r.vendor .. "_" .. r.name]
  assert(r.handler, r.op)
end

--- Names of all emulated operations ("vendor.method").
M.operations = {}
local OPERATION_SET = {}
for _, r in ipairs(ROUTES) do
  M.operations[#M.operations + 1] = r.op
  OPERATION_SET[r.op] = true
end

local function match_segments(template, segments)
  if #template ~= #segments then return nil end
  local params = {}
  for i, t in ipairs(template) do
    local seg = segments[i]
    if t:sub(1, 1) == ":" then
      params[t:sub(2)] = percent_decode(seg)
    elseif t ~= seg then
      return nil
    end
  end
  return params
end

-- Returns vendor, path rest (after the vendor prefix) or nil.
local function split_vendor(path)
  for vendor, prefix in pairs(M.prefixes) do
    if path == prefix or path:sub(1, #prefix + 1) == prefix .. "/" then
      return vendor, path:sub(#prefix + 1)
    end
  end
  return nil
end

-- Returns route, params; or nil, allowed-methods list (empty when no path matches).
local function match_route(vendor, rest, method)
  local segments = split_path(rest)
  local allowed = {}
  for _, r in ipairs(ROUTES) do
    if r.vendor == vendor then
      local params = match_segments(r.segments, segments)
      if params then
        if r.method == method then return r, params end
        allowed[#allowed + 1] = r.method
      end
    end
  end
  return nil, allowed
end

---------------------------------------------------------------------------
-- Faults
---------------------------------------------------------------------------

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
  if list == nil or list == NULL then return array() end
  if json_kind(raw) ~= "array" then return nil, what .. " must be an array" end
  if #list > MAX_QUEUE then return nil, what .. " is too long" end
  local out = array()
  for _, k in ipairs(list) do
    if type(k) == "number" then k = tostring(math.tointeger(k) or k) end
    if not FAULT_KIND_SET[k] then return nil, what .. ": unknown fault kind '" .. tostring(k) .. "'" end
    out[#out + 1] = k
  end
  return out
end

local function number_in(v, lo, hi, default)
  if v == nil or v == NULL then return default end
  if type(v) ~= "number" or v ~= v or v < lo or v > hi then return nil end
  return v
end

--- Validates and normalises a fault plan (as decoded from JSON).
-- @tparam string raw the plan's JSON text
-- @treturn[1] table plan
-- @treturn[2] nil
-- @treturn[2] string message
function M.parse_fault_plan(raw)
  local plan, members = decode_object(raw)
  if not plan then return nil, members end
  local out = { rules = array() }
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
    if json_kind(members.rules) ~= "array" then return nil, "rules must be an array" end
    local raw_rules = raw_elements(members.rules) or {}
    for i, rule in ipairs(rules) do
      local where = "rules[" .. i .. "]"
      local rm = raw_rules[i] and raw_members(raw_rules[i])
      if type(rule) ~= "table" or not rm then return nil, where .. " must be an object" end
      local r = {}
      r.operation = rule.operation
      if r.operation == nil or r.operation == NULL then r.operation = "*" end
      if r.operation ~= "*" and not OPERATION_SET[r.operation] then
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
      out.rules[#out.rules + 1] = object(r)
    end
  end
  out.rng = new_rng(out.seed)
  return out
end

-- Picks the fault for one request of operation op (or nil). Rules are tried in
-- order; a rule's queue is used before its rate; the first fault found wins.
function Emulator:pick_fault(op)
  local plan = self.faults
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

---------------------------------------------------------------------------
-- Control endpoints (/_emulator/...)
---------------------------------------------------------------------------

local function ok_json(status, value)
  return { status = status, json = value }
end

local function control_error(status, message)
  return vendor_error(nil, nil, status, message)
end

local function copy_counts(t)
  local out = object()
  for k, v in pairs(t) do out[k] = v end
  return out
end

function Emulator:stats_view()
  local s = self.stats
  return object{
    requests = s.requests,
    by_operation = copy_counts(s.by_operation),
    applied = object{ creates = s.applied.creates, by_operation = copy_counts(s.applied.by_operation) },
    created_names = copy_counts(s.created_names),
  }
end

function Emulator:config_view()
  return object{
    kontent_clone_seconds = self.config.kontent_clone_seconds,
    kontent_clone_outcome = self.config.kontent_clone_outcome,
  }
end

function Emulator:faults_view()
  local plan = self.faults
  if not plan then return NULL end
  return object{ seed = plan.seed, delay = plan.delay, rules = plan.rules }
end

function Emulator:state_view()
  local st = self.state
  local view = object{ versori = object(), qovery = object(), kontent = object(), droplit = object() }
  local orgs = object()
  for id, org in pairs(st.versori.orgs) do
    local conns = object()
    for cid, c in pairs(org.connections) do conns[cid] = object{ id = c.id, versions = array(c.versions) } end
    orgs[id] = object{ projects = copy_counts(org.projects), connections = conns }
  end
  view.versori.organisations = orgs
  view.qovery.applications = copy_counts(st.qovery.applications)
  local envs = object()
  for id, env in pairs(st.kontent.environments) do
    local v = kontent_view(env)
    v.cloning_state = self:kontent_cloning_state(env)
    envs[id] = v
  end
  view.kontent.environments = envs
  local denvs = object()
  for id, env in pairs(st.droplit.environments) do
    denvs[id] = object{ id = env.id, ecosystemId = env.ecosystemId, alias = env.alias, meta = env.meta,
      createdAt = env.createdAt, metadata_prefix = env.metadata_prefix }
  end
  view.droplit.environments = denvs
  return view
end

function Emulator:control(req)
  local name = req.path:match("^/_emulator/([%w_]+)/?$")
  local m = req.method
  if name == "stats" and m == "GET" then return ok_json(200, self:stats_view()) end
  if name == "requests" and m == "GET" then return ok_json(200, array(self.log)) end
  if name == "state" and m == "GET" then return ok_json(200, self:state_view()) end
  if name == "reset" and m == "POST" then
    self:reset()
    return ok_json(200, object{ ok = true })
  end
  if name == "config" and m == "GET" then return ok_json(200, self:config_view()) end
  if name == "config" and m == "PUT" then
    local body, err = decode_object(req.body)
    if not body then return control_error(400, err) end
    local secs = body.kontent_clone_seconds
    if secs ~= nil and secs ~= NULL then
      if type(secs) ~= "number" or secs ~= secs or secs > 86400 then
        return control_error(400, "kontent_clone_seconds must be a number (< 0: never finishes)")
      end
      self.config.kontent_clone_seconds = secs
    end
    local outcome = body.kontent_clone_outcome
    if outcome ~= nil and outcome ~= NULL then
      if outcome ~= "done" and outcome ~= "failed" then
        return control_error(400, "kontent_clone_outcome must be \"done\" or \"failed\"")
      end
      self.config.kontent_clone_outcome = outcome
    end
    return ok_json(200, self:config_view())
  end
  if name == "faults" and m == "GET" then return ok_json(200, self:faults_view()) end
  if name == "faults" and m == "PUT" then
    local plan, err = M.parse_fault_plan(req.body)
    if not plan then return control_error(400, "invalid fault plan: " .. err) end
    self.faults = plan
    return ok_json(200, self:faults_view())
  end
  if name == "faults" and m == "DELETE" then
    self.faults = nil
    return ok_json(200, object{ ok = true })
  end
  if name == "shutdown" and m == "POST" then
    local resp = ok_json(200, object{ ok = true })
    resp.shutdown = true
    return resp
  end
  local known = { stats = 1, requests = 1, state = 1, reset = 1, config = 1, faults = 1, shutdown = 1 }
  if name and known[name] then return control_error(405, "method not allowed") end
  return control_error(404, "no such control endpoint")
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

--- Handles one parsed request and returns the response description.
-- Vendor requests are counted and logged, faults are picked and the change is
-- applied here, synchronously; the transport then honours `delay`/`fault`.
-- @tparam table req `method`, `path` (no query), `query` (string or nil),
--   `headers` (lower-case names), `body` (string)
-- @treturn table `status`, `json` (value to encode) or `body` (string), `headers`,
--   `fault` (kind or nil), `delay`, `slow_seconds`, `shutdown`, `operation`
function Emulator:handle(req)
  if req.path == "/_emulator" or req.path:sub(1, 11) == "/_emulator/" then
    return self:control(req)
  end
  local vendor, rest = split_vendor(req.path)
  if not vendor then
    return control_error(404, "no such path; vendors live under " ..
      "/versori/api/v2, /qovery, /kontent/v2 and /droplit/v0")
  end
  self.stats.requests = self.stats.requests + 1
  local entry = self:log_request(req)
  local ctx = { vendor = vendor, req = req, request_id = vendor == "kontent" and new_hex(16) or nil }
  local route, params = match_route(vendor, rest, req.method)
  local resp, fault, rule
  if not route then
    if #params > 0 then
      resp = vendor_error(vendor, ctx, 405, "method " .. req.method .. " not allowed here")
      resp.headers = { ["Allow"] = table.concat(params, ", ") }
    else
      resp = vendor_error(vendor, ctx, 404, "no such endpoint: " .. req.path)
    end
  else
    ctx.op, ctx.params = route.op, params
    entry.operation = route.op
    increment(self.stats.by_operation, route.op)
    fault, rule = self:pick_fault(route.op)
    if fault == "429" or fault == "503" then
      local status = tonumber(fault)
      resp = vendor_error(vendor, ctx, status, status == 429 and "too many requests" or "service unavailable")
      resp.headers = { ["Retry-After"] = tostring(rule.retry_after) }
    elseif fault == "close_before" then
      resp = { status = 0 }
    else
      local ok, result = pcall(route.handler, self, ctx)
      if ok then
        resp = result
      else
        io.stderr:write("envclone emulator: handler error: ", tostring(result), "\n")
        resp = vendor_error(vendor, ctx, 500, "internal emulator error")
      end
    end
  end
  if ctx.request_id then
    resp.headers = resp.headers or {}
    resp.headers["X-Request-Id"] = ctx.request_id
  end
  resp.operation = ctx.op
  resp.fault = fault
  resp.delay = self.faults and self.faults.delay or 0
  resp.slow_seconds = rule and rule.slow_seconds or 0
  entry.fault = fault or NULL
  entry.status = (fault == "close_before" or fault == "close_after") and NULL or resp.status
  return resp
end

-- Serialises a response description: status, extra headers, body text.
local function render_body(resp)
  if resp.body then return resp.body end
  if resp.json ~= nil then return M.encode_json(resp.json) end
  return ""
end

---------------------------------------------------------------------------
-- HTTP server: select loop + one coroutine per connection
---------------------------------------------------------------------------

local function wait_for(kind, sock, deadline)
  return coroutine.yield(kind, sock, deadline)
end

local function sleep(seconds, clock)
  if seconds and seconds > 0 then wait_for("sleep", nil, clock() + seconds) end
end

-- Reads more bytes into conn.buf. Returns true, or nil and "closed"/"timeout"/error.
local function fill(conn, deadline, max)
  for _ = 1, 1e9 do
    local data, err, partial = conn.sock:receive(max or 65536)
    local chunk = data or partial
    if chunk and #chunk > 0 then
      conn.buf = conn.buf .. chunk
      return true
    end
    if err ~= "timeout" then return nil, err or "closed" end
    if wait_for("read", conn.sock, deadline) == "timeout" then return nil, "timeout" end
  end
  return nil, "timeout"
end

local function send_all(conn, data, deadline)
  local i, n = 1, #data
  for _ = 1, 1e9 do
    if i > n then return true end
    local last, err, partial = conn.sock:send(data, i)
    if last then
      i = last + 1
    elseif err == "timeout" then
      i = (partial or i - 1) + 1
      if i <= n and wait_for("write", conn.sock, deadline) == "timeout" then return nil, "timeout" end
    else
      return nil, err
    end
  end
  return nil, "timeout"
end

local function head_text(status, headers, body_len, keep_alive)
  local lines = { string.format("HTTP/1.1 %d %s", status, REASONS[status] or "Status") }
  lines[#lines + 1] = "Server: envclone-emulator"
  lines[#lines + 1] = "Date: " .. os.date("!%a, %d %b %Y %H:%M:%S GMT")
  if body_len > 0 then lines[#lines + 1] = "Content-Type: application/json; charset=utf-8" end
  lines[#lines + 1] = "Content-Length: " .. body_len
  lines[#lines + 1] = "Connection: " .. (keep_alive and "keep-alive" or "close")
  local names = {}
  for k in pairs(headers or {}) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do lines[#lines + 1] = k .. ": " .. headers[k] end
  return table.concat(lines, "\r\n") .. "\r\n\r\n"
end

-- An error answered by the HTTP layer itself (then the connection is closed).
local function protocol_error(status, message, path)
  local vendor = path and split_vendor(path)
  local ctx = { request_id = vendor == "kontent" and new_hex(16) or nil }
  local resp = vendor_error(vendor, ctx, status, message)
  if ctx.request_id then resp.headers = { ["X-Request-Id"] = ctx.request_id } end
  resp.close = true
  resp.vendor = vendor
  return resp
end

-- After answering an error early, stop sending and drain what the client still sends
-- (bounded), so that closing does not reset the connection before it reads the answer.
local function linger(conn, clock)
  conn.sock:shutdown("send")
  local deadline = clock() + 1
  for _ = 1, 64 do
    conn.buf = ""
    if not fill(conn, deadline) then return end
  end
end

-- Reads one request from conn. Returns req, or nil plus an optional error response.
local function read_request(conn, clock)
  local deadline = clock() + IDLE_TIMEOUT
  local head_end
  for _ = 1, 1e9 do
    conn.buf = conn.buf:gsub("^\r?\n", "", 4)
    head_end = conn.buf:find("\r\n\r\n", 1, true)
    if head_end then break end
    if #conn.buf > MAX_HEAD_BYTES then
      return nil, protocol_error(431, "request line and headers exceed 64 KiB")
    end
    if not fill(conn, deadline) then return nil end
  end
  if head_end + 3 > MAX_HEAD_BYTES then
    return nil, protocol_error(431, "request line and headers exceed 64 KiB")
  end
  local head = conn.buf:sub(1, head_end - 1)
  conn.buf = conn.buf:sub(head_end + 4)

  local request_line, rest = head:match("^([^\r\n]*)\r?\n?(.*)$")
  local method, target, major, minor = request_line:match("^(%u+) (%S+) HTTP/(%d)%.(%d)$")
  if not method then return nil, protocol_error(400, "malformed request line") end
  if major ~= "1" then return nil, protocol_error(505, "only HTTP/1.x is supported") end
  local headers, lengths = {}, {}
  for line in (rest .. "\r\n"):gmatch("(.-)\r\n") do
    if line ~= "" then
      local name, value = line:match("^([!#$%%&'*+%-.^_`|~%w]+):[ \t]*(.-)[ \t]*$")
      if not name then return nil, protocol_error(400, "malformed header line") end
      name = name:lower()
      if name == "content-length" then lengths[#lengths + 1] = value end
      headers[name] = headers[name] and (headers[name] .. ", " .. value) or value
    end
  end
  target = target:gsub("^[Hh][Tt][Tt][Pp][Ss]?://[^/]*", "")
  if target == "" then target = "/" end
  local path, query = target:match("^([^?]*)%??(.*)$")
  if not target:find("?", 1, true) then query = nil end

  if headers["transfer-encoding"] then
    return nil, protocol_error(411, "chunked request bodies are not supported; send Content-Length", path)
  end
  local length = 0
  for _, v in ipairs(lengths) do
    for part in v:gmatch("[^,]+") do
      local n = part:match("^%s*(%d+)%s*$")
      if not n or #n > 12 then return nil, protocol_error(400, "invalid Content-Length", path) end
      n = tonumber(n)
      if length ~= 0 and n ~= length then return nil, protocol_error(400, "conflicting Content-Length", path) end
      length = n
    end
  end
  if length > MAX_BODY_BYTES then
    return nil, protocol_error(413, "request body exceeds 1 MiB", path)
  end
  if length > 0 and #conn.buf < length and (headers["expect"] or ""):lower() == "100-continue" then
    if not send_all(conn, "HTTP/1.1 100 Continue\r\n\r\n", deadline) then return nil end
  end
  for _ = 1, 1e9 do
    if #conn.buf >= length then break end
    if not fill(conn, deadline, length - #conn.buf) then return nil end
  end
  local body = conn.buf:sub(1, length)
  conn.buf = conn.buf:sub(length + 1)

  local conn_hdr = (headers["connection"] or ""):lower()
  local keep_alive
  if minor == "0" then
    keep_alive = conn_hdr:find("keep-alive", 1, true) ~= nil
  else
    keep_alive = conn_hdr:find("close", 1, true) == nil
  end
  return {
    method = method, target = target, path = path, query = query,
    headers = headers, body = body, keep_alive = keep_alive,
  }
end

-- Sends resp on conn, honouring delay and faults. Returns true to keep the connection.
function Emulator:deliver(conn, req, resp)
  local clock = self.clock
  sleep(resp.delay, clock)
  local fault = resp.fault
  if fault == "close_before" or fault == "close_after" then return false end
  if fault == "slow" then sleep(resp.slow_seconds, clock) end
  local status = resp.status
  local body = render_body(resp)
  if fault == "malformed" then
    if body == "" then
      status, body = (status == 204 and 200 or status), '{"malformed":'
    else
      body = body:sub(1, #body // 2)
    end
  end
  local keep = req.keep_alive and not resp.close and not resp.shutdown and fault ~= "truncated"
  local head = head_text(status, resp.headers, #body, keep)
  local deadline = clock() + IDLE_TIMEOUT
  if fault == "truncated" then
    if #body > 0 then
      send_all(conn, head .. body:sub(1, #body // 2), deadline)
    else
      send_all(conn, head:sub(1, #head // 2), deadline)
    end
    return false
  end
  local ok = send_all(conn, head .. body, deadline)
  if resp.shutdown then self.stopping = true end
  return ok and keep
end

function Emulator:note(req, resp)
  if self.quiet then return end
  io.stderr:write(string.format("%s %s%s -> %s%s%s\n", req.method, req.path,
    req.query and ("?" .. req.query) or "",
    (resp.fault == "close_before" or resp.fault == "close_after") and "closed" or tostring(resp.status),
    resp.operation and (" " .. resp.operation) or "",
    resp.fault and (" [fault " .. resp.fault .. "]") or ""))
end

function Emulator:serve_connection(sock)
  local conn = { sock = sock, buf = "" }
  for _ = 1, MAX_REQUESTS_PER_CONNECTION do
    local req, failure = read_request(conn, self.clock)
    if not req then
      if failure then
        -- Rejected by the HTTP layer (413, 411, 431, 400): counted when aimed at a vendor.
        if failure.vendor then self.stats.requests = self.stats.requests + 1 end
        local body = render_body(failure)
        if send_all(conn, head_text(failure.status, failure.headers, #body, false) .. body,
            self.clock() + IDLE_TIMEOUT) then
          linger(conn, self.clock)
        end
      end
      break
    end
    local ok, resp = pcall(self.handle, self, req)
    if not ok then
      io.stderr:write("envclone emulator: error: ", tostring(resp), "\n")
      resp = protocol_error(500, "internal emulator error", req.path)
    end
    self:note(req, resp)
    if not self:deliver(conn, req, resp) then break end
  end
  sock:close()
end

--- Binds the listening socket.
-- @tparam[opt="127.0.0.1"] string host "127.0.0.1" or "::1" only
-- @tparam[opt=0] number port 0 picks a free port
-- @treturn[1] number the port
-- @treturn[2] nil
-- @treturn[2] string error
function Emulator:listen(host, port)
  host = host or "127.0.0.1"
  if host ~= "127.0.0.1" and host ~= "::1" then
    return nil, "refusing to listen on '" .. tostring(host) .. "': only 127.0.0.1 or ::1 are allowed"
  end
  port = tonumber(port or 0)
  if not port or port < 0 or port > 65535 or port ~= math.floor(port) then
    return nil, "invalid port"
  end
  local server, err = socket.bind(host, port, 128)
  if not server then return nil, "cannot listen on " .. host .. ":" .. port .. ": " .. tostring(err) end
  server:settimeout(0)
  local _, bound = server:getsockname()
  self.server = server
  self.host = host
  self.port = tonumber(bound)
  return self.port
end

--- The base URL of the listening emulator (`http://127.0.0.1:PORT`).
-- @treturn string
function Emulator:url()
  local h = self.host == "::1" and "[::1]" or self.host
  return "http://" .. h .. ":" .. tostring(self.port)
end

function Emulator:spawn(sock)
  local co = coroutine.create(function() self:serve_connection(sock) end)
  self.tasks[co] = { sock = sock }
  self.connections = self.connections + 1
  self:resume(co)
end

function Emulator:resume(co, ...)
  local task = self.tasks[co]
  local ok, kind, _, deadline = coroutine.resume(co, ...)
  if not ok then
    io.stderr:write("envclone emulator: connection error: ", tostring(kind), "\n")
    pcall(task.sock.close, task.sock)
  end
  if not ok or coroutine.status(co) == "dead" then
    self.tasks[co] = nil
    self.connections = self.connections - 1
    return
  end
  task.wait, task.deadline = kind, deadline
end

--- Runs one iteration of the server loop (accept, wait up to max_wait, resume).
-- @tparam[opt=1] number max_wait seconds
function Emulator:step(max_wait)
  local now = self.clock()
  local recvt, sendt = {}, {}
  local wait = max_wait or 1
  if self.server and self.connections < MAX_CONNECTIONS then recvt[1] = self.server end
  for _, t in pairs(self.tasks) do
    if t.wait == "read" then recvt[#recvt + 1] = t.sock
    elseif t.wait == "write" then sendt[#sendt + 1] = t.sock end
    if t.deadline then wait = math.min(wait, math.max(0, t.deadline - now)) end
  end
  local readable, writable = socket.select(recvt, sendt, wait)
  readable, writable = readable or {}, writable or {}
  if self.server and readable[self.server] then
    for _ = 1, MAX_ACCEPTS_PER_STEP do
      if self.connections >= MAX_CONNECTIONS then break end
      local client = self.server:accept()
      if not client then break end
      client:settimeout(0)
      client:setoption("tcp-nodelay", true)
      self:spawn(client)
    end
  end
  now = self.clock()
  local ready = {}
  for co, t in pairs(self.tasks) do
    if (t.wait == "read" and readable[t.sock]) or (t.wait == "write" and writable[t.sock]) then
      ready[#ready + 1] = { co, "ready" }
    elseif t.deadline and now >= t.deadline then
      ready[#ready + 1] = { co, "timeout" }
    end
  end
  for _, r in ipairs(ready) do
    if self.tasks[r[1]] then self:resume(r[1], r[2]) end
  end
end

--- Serves until `POST /_emulator/shutdown` (or until max_lifetime seconds passed).
-- @tparam[opt] number max_lifetime seconds
function Emulator:serve(max_lifetime)
  local stop_at = max_lifetime and (self.clock() + max_lifetime) or math.huge
  while not self.stopping and self.clock() < stop_at do
    self:step(1)
  end
  self:close()
end

--- Closes the listening socket and every open connection.
function Emulator:close()
  for co, t in pairs(self.tasks) do
    pcall(t.sock.close, t.sock)
    self.tasks[co] = nil
  end
  self.connections = 0
  if self.server then self.server:close() end
  self.server = nil
end

---------------------------------------------------------------------------
-- Command line
---------------------------------------------------------------------------

local USAGE = [[
usage: envclone-emulator [--host 127.0.0.1|::1] [--port N|0] [--port-file PATH]
                         [--kontent-clone-seconds S] [--kontent-clone-outcome done|failed]
                         [--max-lifetime S] [--quiet]

Serves the Versori, Qovery, Kontent and Droplit endpoints that envclone uses:
  Versori  http://HOST:PORT/versori/api/v2     Qovery   http://HOST:PORT/qovery
  Kontent  http://HOST:PORT/kontent/v2         Droplit  http://HOST:PORT/droplit/v0
Control: /_emulator/{stats,requests,state,reset,config,faults,shutdown}.
]]

--- Parses command-line arguments.
-- @tparam table args the script's `arg` table
-- @treturn[1] table options
-- @treturn[2] nil
-- @treturn[2] string error (or "help")
function M.parse_args(args)
  local opts = { host = "127.0.0.1", port = 0 }
  local takes = {
    host = "host", port = "port", ["port-file"] = "port_file",
    ["kontent-clone-seconds"] = "kontent_clone_seconds",
    ["kontent-clone-outcome"] = "kontent_clone_outcome",
    ["max-lifetime"] = "max_lifetime",
  }
  local i, n = 1, #args
  while i <= n do
    local a = args[i]
    local name, inline = a:match("^%-%-([%w%-]+)=(.*)$")
    name = name or a:match("^%-%-([%w%-]+)$")
    if a == "-h" or name == "help" then return nil, "help" end
    if name == "quiet" then
      opts.quiet = true
    elseif name and takes[name] then
      local v = inline
      if v == nil then
        i = i + 1
        v = args[i]
      end
      if v == nil then return nil, "--" .. name .. " needs a value" end
      opts[takes[name]] = v
    else
      return nil, "unknown argument: " .. tostring(a)
    end
    i = i + 1
  end
  for _, k in ipairs{ "port", "kontent_clone_seconds", "max_lifetime" } do
    if opts[k] ~= nil then
      local v = tonumber(opts[k])
      if not v then return nil, "--" .. k:gsub("_", "-") .. " must be a number" end
      opts[k] = v
    end
  end
  local outcome = opts.kontent_clone_outcome
  if outcome and outcome ~= "done" and outcome ~= "failed" then
    return nil, "--kontent-clone-outcome must be done or failed"
  end
  return opts
end

local function write_port_file(path, port)
  local tmp = path .. ".tmp" .. new_hex(8)
  local f, err = io.open(tmp, "w")
  if not f then return nil, err end
  f:write(tostring(port), "\n")
  f:close()
  local ok, rerr = os.rename(tmp, path)
  if not ok then
    os.remove(tmp)
    return nil, rerr
  end
  return true
end

--- Entry point of `bin/envclone-emulator`.
-- @tparam table args the script's `arg` table
-- @treturn number exit status
function M.main(args)
  local opts, err = M.parse_args(args or {})
  if not opts then
    if err == "help" then
      io.stdout:write(USAGE)
      return 0
    end
    io.stderr:write("envclone-emulator: ", err, "\n", USAGE)
    return 2
  end
  local emu = M.new{
    kontent_clone_seconds = opts.kontent_clone_seconds,
    kontent_clone_outcome = opts.kontent_clone_outcome,
    quiet = opts.quiet,
  }
  local port, lerr = emu:listen(opts.host, opts.port)
  if not port then
    io.stderr:write("envclone-emulator: ", lerr, "\n")
    return 1
  end
  if opts.port_file then
    local ok, werr = write_port_file(opts.port_file, port)
    if not ok then
      io.stderr:write("envclone-emulator: cannot write port file: ", tostring(werr), "\n")
      emu:close()
      return 1
    end
  end
  io.stdout:write("envclone emulator listening on ", emu:url(), "\n")
  io.stdout:flush()
  emu:serve(opts.max_lifetime)
  return 0
end

return M
