-- Prints doc/set.schema.json, the JSON Schema of a set file (envclone.set),
-- made from the operation table: every vendor, the operations a set may
-- declare (creates and updates), each one's fields. spec/set_spec.lua
-- checks the committed file is this script's output, so they cannot drift.
--
--   lua5.4 scripts/set_schema.lua > doc/set.schema.json
-- (with LUA_PATH / LUA_CPATH reaching lua/ and the built envclone.core)
local core = require("envclone.core")
local set = require("envclone.set")

local NULL = {}

-- JSON with sorted keys and two-space indents, arrays marked by `array = true`.
local function encode(v, indent)
  indent = indent or ""
  local t = type(v)
  if v == NULL then return "null" end
  if t == "string" then return core.json_encode(v) end
  if t == "number" or t == "boolean" then return tostring(v) end
  local inner = indent .. "  "
  if getmetatable(v) == core.array_mt then
    if #v == 0 then return "[]" end
    local parts = {}
    for _, x in ipairs(v) do parts[#parts + 1] = inner .. encode(x, inner) end
    return "[\n" .. table.concat(parts, ",\n") .. "\n" .. indent .. "]"
  end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    -- "$schema", "$id", "title", "description" first: a reader meets them first
    local rank = { ["$schema"] = 1, title = 2, description = 3, type = 4 }
    local ra, rb = rank[a] or 9, rank[b] or 9
    if ra ~= rb then return ra < rb end
    return a < b
  end)
  if #keys == 0 then return "{}" end
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = inner .. core.json_encode(k) .. ": " .. encode(v[k], inner) end
  return "{\n" .. table.concat(parts, ",\n") .. "\n" .. indent .. "}"
end

local function array(t) return setmetatable(t or {}, core.array_mt) end

-- a whole-string template stands for a value of any type
local TEMPLATE = { type = "string", pattern = "^\\{[A-Za-z0-9_.-]+\\}$",
  description = "a template whose value is used as is ({object.field})" }

local function field_schema(f)
  local s
  if f.type == "string" then
    s = { type = "string" }
    if f.max_len and not f.format then s.maxLength = f.max_len end
  elseif f.type == "boolean" then s = { type = "boolean" }
  elseif f.type == "integer" then s = { type = "integer" }
  elseif f.type == "number" then s = { type = "number" }
  elseif f.type == "array of strings" then s = { type = "array", items = { type = "string" } }
  else s = { type = "object" } end
  if f.type ~= "string" then s = { anyOf = array{ s, TEMPLATE } } end
  s.description = f.description
  return s
end

local vendors, defs, pairs_any, conds = {}, {}, array(), array()
local by_vendor = {}
for _, op in ipairs(core.operations) do
  local kind = op.creates or (op.method ~= "GET" and not op.deletes)
  if kind then
    by_vendor[op.vendor] = by_vendor[op.vendor] or array()
    table.insert(by_vendor[op.vendor], op.name)
    local props, required = {}, array()
    for _, f in ipairs(op.fields) do
      props[f.name] = field_schema(f)
      if f.required then required[#required + 1] = f.name end
    end
    if op.waiter then
      props.wait = { type = "boolean", description = "wait for " .. op.waiter.name .. " (default true in a set)" }
    end
    for _, w in ipairs{ "wait_timeout", "wait_interval", "wait_grace" } do
      props[w] = { type = "number", minimum = 0, description = "seconds (" .. w .. " of the call)" }
    end
    local name = op.vendor .. "." .. op.name
    defs[name] = { type = "object", additionalProperties = false, properties = props,
      required = #required > 0 and required or nil,
      description = op.vendor .. " " .. op.name .. " (" .. op.method .. " " .. op.path .. ")"
        .. (op.creates and "; destroy removes it" or "; an update, left as is by destroy") }
    conds[#conds + 1] = {
      ["if"] = { properties = { vendor = { const = op.vendor }, operation = { const = op.name } },
        required = array{ "vendor", "operation" } },
      ["then"] = { properties = { args = { ["$ref"] = "#/$defs/" .. name } } } }
  end
end
for v, list in pairs(by_vendor) do
  vendors[#vendors + 1] = v
  table.sort(list)
  pairs_any[#pairs_any + 1] = { properties = { vendor = { const = v }, operation = { enum = list } } }
end
table.sort(vendors)
table.sort(pairs_any, function(a, b) return a.properties.vendor.const < b.properties.vendor.const end)
table.sort(conds, function(a, b)
  local pa, pb = a["if"].properties, b["if"].properties
  return pa.vendor.const .. "." .. pa.operation.const < pb.vendor.const .. "." .. pb.operation.const
end)

local client_props = {}
local client_kinds = { subscription_id = "string", timeout = "number", connect_timeout = "number",
  rate_limit = { "object", "boolean" }, reconcile = { "object", "boolean" }, retry = { "object", "boolean" },
  http_version = "string", user_agent = "string", max_response_size = "integer" }
for k in pairs(set.client_keys) do
  local kind = client_kinds[k] or "string"
  client_props[k] = { type = type(kind) == "table" and array(kind) or kind }
end

defs.object = { type = "object", additionalProperties = false, required = array{ "vendor", "operation" },
  description = "One object of the set: the operation that makes (or updates) it, its arguments, and what it "
    .. "waits for.",
  properties = {
    vendor = { enum = array(vendors) },
    operation = { type = "string", description = "the library's operation name (snake_case)" },
    args = { type = "object", description = "the operation's fields; strings may hold templates: {set}, {set_id}, "
      .. "{object.field}" },
    after = { type = "array", items = { type = "string" }, uniqueItems = true,
      description = "objects this one waits for (besides those its templates name)" },
    client = { type = "object", additionalProperties = false, properties = client_props,
      description = "non-secret client options; credentials come from the environment or the credentials file" },
  },
  anyOf = pairs_any, allOf = conds }

local schema = {
  ["$schema"] = "https://json-schema.org/draft/2020-12/schema",
  title = "envclone set file",
  description = "A set of objects across vendors planned, applied and destroyed as one (doc/sets.md). Generated "
    .. "by scripts/set_schema.lua from the operation table.",
  type = "object", additionalProperties = false, required = array{ "objects" },
  properties = {
    ["$schema"] = { type = "string" },
    name = { type = "string", minLength = 1, maxLength = 200,
      description = "the set's name ({set}); --set NAME gives it instead" },
    description = { type = "string" },
    objects = { type = "object", minProperties = 1,
      propertyNames = { pattern = "^[A-Za-z_][A-Za-z0-9_-]{0,63}$" },
      additionalProperties = { ["$ref"] = "#/$defs/object" } },
  },
  ["$defs"] = defs,
}

io.write(encode(schema), "\n")
