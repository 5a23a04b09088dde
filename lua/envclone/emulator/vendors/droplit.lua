--- Droplit.io in the emulator: environment create. Seed page 004.
--
-- Sources: the seed page (POST /v0/api/environments/: 201; 400 Body Parameters Missing,
-- No Query String Allowed, Alias Exists, Alias Invalid, Metadata Format Invalid; 404
-- Ecosystem Missing; each "defined by the standard error structure" as invalid parameters,
-- invalid body or missing parameters), https://docs.droplit.io/reference/aliases and
-- https://docs.droplit.io/reference/identifiers (alias and id format, uniqueness),
-- https://docs.droplit.io/reference/rest-api-standard-responses (400 carries an error object).
-- @module envclone.emulator.vendors.droplit

local json = require("envclone.emulator.json")
local util = require("envclone.emulator.util")

local object, array = json.object, json.array

local V = { name = "droplit" }

V.bases = { droplit = "/droplit/v0" }

V.credentials = { token = "emu-droplit-token" }

V.seed = {
  ecosystem_id = "E5cdeSeedEcosystem01",
  other_ecosystem_id = "E5cdeSeedEcosystem02",   -- aliases are scoped per ecosystem
}

local TYPES = {
  [400] = "invalidParameters", [401] = "unauthorized", [404] = "missingParameters",
  [405] = "invalidParameters", [413] = "invalidBody", [429] = "tooManyRequests",
  [503] = "serviceUnavailable",
}

local function err(status, etype, name, parameter, message)
  return { status = status, json = object{ errors = array{ object{
    type = etype, name = name, parameter = parameter, message = message } } } }
end

--- The generic error in Droplit's shape.
function V.error(_, status, message)
  return err(status, TYPES[status] or "invalidParameters", util.REASONS[status] or "Error", nil, message)
end

function V.new_state()
  return {
    ecosystems = { [V.seed.ecosystem_id] = true, [V.seed.other_ecosystem_id] = true },
    environments = {},
    aliases = {},   -- "ECOSYSTEM_ID;ALIAS" (Droplit's scoped reference) -> environment id
  }
end

-- "Aliases must meet the following requirements: Between 1 and 24 characters; Only contain
-- the characters: a-z, A-Z, 0-9, _; No spaces ... Aliases are case sensitive."
-- (docs.droplit.io/reference/aliases; ids follow the same rule: reference/identifiers)
local function valid_alias(alias)
  return type(alias) == "string" and #alias >= 1 and #alias <= 24 and not alias:find("[^%w_]")
end

local function new_id()
  return "E" .. util.random_chars(util.ALNUM, 20)
end

local function create_environment(emu, ctx)
  local req = ctx.req
  if req.headers["authorization"] ~= V.credentials.token then
    return err(401, "unauthorized", "Unauthorized", "authorization",
      "A valid token is required in the authorization header.")
  end
  if req.query and req.query ~= "" then
    local param = req.query:match("^([^&=]*)") or ""
    return err(400, "invalidParameters", "No Query String Allowed", param,
      "No query string is allowed when calling this endpoint.")
  end
  local ctype = (req.headers["content-type"] or ""):match("^%s*([^;%s]+)")
  if not ctype or ctype:lower() ~= "application/json" then
    return err(400, "invalidParameters", "Body Parameters Missing", "ecosystemId",
      "Body parameters are missing; the content-type header must be application/json.")
  end
  local body, members = json.decode_object(req.body)
  if not body then
    -- Emulator choice: a body that is not a JSON object is an invalid body.
    return err(400, "invalidBody", "Body Parameters Missing", "ecosystemId", members)
  end
  local eco = body.ecosystemId
  if type(eco) ~= "string" or eco == "" then
    return err(400, "invalidParameters", "Body Parameters Missing", "ecosystemId",
      "The body parameter ecosystemId is required.")
  end
  if members.meta ~= nil and json.kind(members.meta) ~= "object" then
    return err(400, "invalidParameters", "Metadata Format Invalid", "meta",
      "meta must be a JSON object.")
  end
  local alias = body.alias
  if members.alias ~= nil and not valid_alias(alias) then
    return err(400, "invalidParameters", "Alias Invalid", "alias",
      "An alias is 1 to 24 characters of a-z, A-Z, 0-9 and _.")
  end
  local ds = ctx.state
  if not ds.ecosystems[eco] then
    return err(404, "missingParameters", "Ecosystem Missing", "ecosystemId",
      "The ecosystem " .. eco .. " does not exist.")
  end
  -- "For environments, the alias is unique within the parent ecosystem." (reference/aliases)
  local scoped = alias and (eco .. ";" .. alias)
  if scoped and ds.aliases[scoped] then
    return err(400, "invalidBody", "Alias Exists", "alias",
      "An object with the alias '" .. alias .. "' already exists.")
  end
  if emu:capacity_reached() then
    return err(503, "serviceUnavailable", "Service Unavailable", nil,
      "Emulator capacity reached; reset it.")
  end
  local env = {
    id = new_id(),
    ecosystemId = eco,
    alias = alias,
    meta = members.meta and json.raw(members.meta) or object(),
    createdAt = os.date("!%Y-%m-%d %H:%M:%S", math.floor(emu.clock())),
    metadata_prefix = req.headers["x-system-metadata-prefix"] or "$",
  }
  ds.environments[env.id] = env
  if scoped then ds.aliases[scoped] = env.id end
  emu:applied(ctx.op, alias, true)
  return { status = 201, json = object{
    createdAt = env.createdAt, ecosystemId = eco, id = env.id, meta = env.meta, alias = alias,
  } }
end

local function percent_decode(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- The environment a path's `:id` names: an id, or `{ecosystemId};{alias}` ("Because aliases are
-- only unique within their parent scope, the parent scope must be specified ... separated from
-- the alias with a semicolon": https://docs.droplit.io/reference/aliases and
-- reference/identifiers). The `;` is literal on the wire; each side is percent-decoded on its own,
-- so an encoded `%3B` belongs to a field. GUESS: the docs' example is a device, not an environment.
local function find_environment(ctx)
  local req, ds = ctx.req, ctx.state
  if req.headers["authorization"] ~= V.credentials.token then
    return nil, err(401, "unauthorized", "Unauthorized", "authorization",
      "A valid token is required in the authorization header.")
  end
  local raw = ctx.raw_params.id
  local eco, alias = raw:match("^([^;]*);(.*)$")
  local env
  if eco then
    local id = ds.aliases[percent_decode(eco) .. ";" .. percent_decode(alias)]
    env = id and ds.environments[id]
  else
    env = ds.environments[percent_decode(raw)]
  end
  if not env then
    -- "Environment Not Found" (https://docs.droplit.io/reference/environments-info), in the
    -- standard error structure this emulator uses for every Droplit error
    return nil, err(404, "missingParameters", "Environment Not Found", "id",
      "The environment " .. percent_decode(raw) .. " was not found.")
  end
  return env
end

-- Environments: Info (https://docs.droplit.io/reference/environments-info):
-- 200 {createdAt, ecosystemId, id, meta}. Emulator choice: `alias` too when it has one, as this
-- emulator's create answer carries it (the Info page lists no alias: a client matching on it is
-- relying on a GUESS; a 200 to the `{ecosystemId};{alias}` read is itself the match).
local function get_environment(_, ctx)
  local env, answer = find_environment(ctx)
  if not env then return answer end
  return { status = 200, json = object{
    createdAt = env.createdAt, ecosystemId = env.ecosystemId, id = env.id, meta = env.meta, alias = env.alias } }
end

-- GUESS, unverified: no environments-delete page; by analogy with
-- https://docs.droplit.io/reference/devices-delete, `DELETE /api/environments/{id}` answers 200
-- (Emulator choice: with an empty JSON object) and 404 "Environment Not Found" once it is gone.
-- The alias is free again afterwards.
local function delete_environment(emu, ctx)
  local env, answer = find_environment(ctx)
  if not env then return answer end
  local ds = ctx.state
  ds.environments[env.id] = nil
  if env.alias then ds.aliases[env.ecosystemId .. ";" .. env.alias] = nil end
  emu:applied(ctx.op, nil, false)
  return { status = 200, json = object() }
end

V.routes = {
  { "POST", "api/environments", "create_environment", create_environment },
  { "GET", "api/environments/:id", "get_environment", get_environment },
  { "DELETE", "api/environments/:id", "delete_environment", delete_environment },
}

function V.state_view(_, state)
  local envs = object()
  for id, env in pairs(state.environments) do
    envs[id] = object{ id = env.id, ecosystemId = env.ecosystemId, alias = env.alias, meta = env.meta,
      createdAt = env.createdAt, metadata_prefix = env.metadata_prefix }
  end
  return object{ environments = envs }
end

--- Objects for counting (`GET /_emulator/objects`): per ecosystem, aliases -> count, the
-- environments without an alias, and the count.
function V.objects_view(_, state)
  local ecos = object()
  for eco in pairs(state.ecosystems) do ecos[eco] = object{ count = 0, aliases = object(), without_alias = 0 } end
  for _, env in pairs(state.environments) do
    local e = ecos[env.ecosystemId]
    e.count = e.count + 1
    if env.alias then util.increment(e.aliases, env.alias) else e.without_alias = e.without_alias + 1 end
  end
  return object{ ecosystems = ecos }
end

return V
