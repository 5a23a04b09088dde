--- Sets: a declared group of objects across vendors (preview environments
-- of one pull request), planned, applied and destroyed as one, re-runnable
-- without duplicates.
--
--     local s = assert(envclone.set({
--       name = "pr-123",
--       objects = {
--         web = { vendor = "qovery", operation = "clone_application",
--                 args = { applicationId = APP, environment_id = ENV, name = "web-{set}" } },
--         cms = { vendor = "kontent", operation = "clone_environment",
--                 args = { environment_id = KENV, name = "{set}" } },
--         cms_name = { vendor = "kontent", operation = "rename_environment",
--                 args = { environment_id = "{cms.id}", name = "Preview {set}" } },
--       } }, { client_options = { qovery = { token = T }, kontent = { api_key = K } },
--              state = "pr-123.state.json" }))
--     local r = s:apply()     -- r.objects.web.status == "created" | "adopted" | ...
--     s:destroy()
--
-- doc/sets.md is the manual (the set file, its templates, the state file,
-- each status); doc/set.schema.json the set file's JSON Schema. Everything
-- in a set is checked before anything is sent: unknown vendors, operations
-- and fields (the operation table's `fields`), dependency cycles, template
-- variables with no value, two objects with one natural key. An object runs
-- once every object it depends on (`after`, and every `{obj.field}` it
-- names) is done, all of them as tasks of one `envclone.batch` (so within
-- each vendor's limits, and concurrently where independent).
--
-- Vendors differ here in data only: a create row's `lookup` (how to find
-- the object by its key), its `waiter`, and the `teardown` table below
-- (which delete row removes what a create made, and with which arguments).
-- @module envclone.set
local core = require("envclone.core")
local call = require("envclone.call")
local runtime = require("envclone.runtime")
local template = require("envclone.set.template")
local state_mod = require("envclone.set.state")

local set = {}

local Set = {}
Set.__index = Set

--- What removes what a create made: the vendor's delete row (`delete`),
-- its arguments taken from the create's (`args`: delete argument -> create
-- argument), and the argument that takes the new object's id (`id_arg`);
-- and `read`, the vendor's read by that id, which tells whether an object
-- known only from the state file still exists.
-- Data, checked against the operation table when this module loads. A
-- delete row with a `waiter` (Qovery) is called with `wait = true`.
-- @table teardown
set.teardown = {
  ["versori.clone_environment"] = { delete = "delete_environment",
    args = { organisation_id = "organisation_id", project_id = "project_id" }, id_arg = "environment_id" },
  ["versori.create_connection_version"] = { delete = "delete_connection_version",
    args = { organisation_id = "organisation_id", connection_id = "connection_id", version = "name" } },
  ["qovery.clone_application"] = { delete = "delete_application", id_arg = "applicationId",
    read = "get_application" },
  ["kontent.clone_environment"] = { delete = "delete_environment", id_arg = "environment_id",
    read = "get_environment" },
  ["droplit.create_environment"] = { delete = "delete_environment", id_arg = "id", read = "get_environment" },
}

--- Updates that change a created object's key: the update's argument
-- holding the object's id (`id_arg`, a `{object.id}` template) and the one
-- holding its new key (`key_arg`). A create renamed by such an update is
-- looked up under both keys (a Kontent rename after its clone: the
-- environment is found again by its new name), so a re-run adopts it and
-- destroy finds it.
-- @table renames
set.renames = {
  ["kontent.rename_environment"] = { id_arg = "environment_id", key_arg = "name" },
}

--- Client options a set file's `client` member may hold: none of them a
-- credential (those come from the environment or the caller) nor where
-- credentials go (`base_url`, `proxy`: a set file from a pull request must
-- not send a team's tokens elsewhere).
-- @table client_keys
set.client_keys = { subscription_id = true, timeout = true, connect_timeout = true, rate_limit = true,
  reconcile = true, retry = true, http_version = true, user_agent = true, max_response_size = true }

-- Per-call options an object's args may hold (the set decides if_exists).
local arg_options = { wait = "boolean", wait_timeout = "number", wait_interval = "number", wait_grace = "number" }

-- Result fields never copied into values or the state file (a Kontent clone
-- answers with the new environment's Management API key).
local SECRET_FIELD = { "key", "token", "secret", "password", "cookie" }

local rows = call.rows

-- the teardown table checked against the operation table: a drift is a bug here
for name, t in pairs(set.teardown) do
  local vendor = name:match("^(%w+)%.")
  local del = rows[vendor .. "." .. t.delete]
  assert(del and del.deletes, "envclone.set: teardown of " .. name .. ": no delete row " .. t.delete)
  assert(rows[name] and rows[name].creates, "envclone.set: teardown of " .. name .. ": not a create row")
  assert(t.read == nil or rows[vendor .. "." .. t.read], "envclone.set: teardown of " .. name .. ": no row " ..
    tostring(t.read))
end

local vendors = {}
for _, op in ipairs(core.operations) do vendors[op.vendor] = true end

local function sorted_keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out, function(a, b) return tostring(a) < tostring(b) end)
  return out
end

local function is_array(t)
  return type(t) == "table" and (getmetatable(t) == core.array_mt or (t[1] ~= nil and next(t, #t) == nil))
end

-- A validation error naming the file, the object and the field.
local function invalid(self, message, object, field)
  local where = self.file or "set"
  if object then where = where .. ": objects." .. object end
  if field then where = where .. "." .. field end
  local e = core.error{ kind = "validation", message = where .. ": " .. message }
  e.file, e.object, e.field, e.sent, e.maybe_applied = self.file, object, field, false, false
  return e
end


--- The set name's identifier form: `{set_id}` (every character but
-- A-Z, a-z, 0-9 and _ left out: "pr-123" -> "pr123").
-- @tparam string name
-- @treturn string
function set.id_of(name)
  return (name:gsub("[^%w_]", ""))
end

-- Checks one object of the spec; returns the compiled object or nil, err.
local function compile_object(self, id, o, vars)
  if type(o) ~= "table" or is_array(o) then return nil, invalid(self, "must be an object", id) end
  for k in pairs(o) do
    if k ~= "vendor" and k ~= "operation" and k ~= "args" and k ~= "after" and k ~= "client" then
      return nil, invalid(self, "unknown member (vendor, operation, args, after, client)", id, tostring(k))
    end
  end
  if type(o.vendor) ~= "string" or not vendors[o.vendor] then
    local names = sorted_keys(vendors)
    return nil, invalid(self, "unknown vendor '" .. tostring(o.vendor) .. "' (one of " .. table.concat(names, ", ")
      .. ")", id, "vendor")
  end
  local row = type(o.operation) == "string" and rows[o.vendor .. "." .. o.operation]
  if not row then
    return nil, invalid(self, "unknown operation '" .. tostring(o.operation) .. "' of " .. o.vendor, id,
      "operation")
  end
  local kind = row.creates and "create" or (row.method ~= "GET" and not row.deletes and "update")
  if not kind then
    return nil, invalid(self, o.vendor .. "." .. row.name .. " " .. (row.deletes and "deletes" or "only reads")
      .. "; a set declares creates and updates (destroy runs the deletes)", id, "operation")
  end
  local args = o.args
  if args == nil or args == core.null then args = {} end
  if type(args) ~= "table" or (next(args) ~= nil and is_array(args)) then
    return nil, invalid(self, "must be an object", id, "args")
  end
  local fields = {}
  for _, f in ipairs(row.fields) do fields[f.name] = f end
  local refs = {}
  for _, k in ipairs(sorted_keys(args)) do
    local v = args[k]
    if not fields[k] and not arg_options[k] then
      local names = {}
      for _, f in ipairs(row.fields) do names[#names + 1] = f.name end
      return nil, invalid(self, "unknown field of " .. o.vendor .. "." .. row.name .. " (" .. table.concat(names, ", ")
        .. "; and wait, wait_timeout, wait_interval, wait_grace)", id, "args." .. tostring(k))
    end
    if arg_options[k] and type(v) ~= arg_options[k] then
      return nil, invalid(self, "must be a " .. arg_options[k], id, "args." .. k)
    end
    if k == "wait" and v and not row.waiter then
      return nil, invalid(self, o.vendor .. "." .. row.name .. " has no waiter", id, "args.wait")
    end
    local bad = template.scan(v, refs)
    if bad then
      return nil, invalid(self, "unknown template variable {" .. bad .. "} (set, set_id, <object>.<field>)", id,
        "args." .. k)
    end
    local _, missing = template.render(v, vars, setmetatable({}, { __index = function() return {} end }))
    -- only {set} and {set_id} are known here: a missing object value is checked below
    if missing and not missing:find(".", 1, true) then
      return nil, invalid(self, "template variable {" .. missing .. "} has no value", id, "args." .. k)
    end
  end
  local after = o.after
  if after == nil or after == core.null then after = {} end
  if type(after) ~= "table" or (next(after) ~= nil and not is_array(after)) then
    return nil, invalid(self, "must be an array of object ids", id, "after")
  end
  local deps, dep_list = {}, {}
  for i, d in ipairs(after) do
    if type(d) ~= "string" then return nil, invalid(self, "must be an object id", id, "after[" .. i .. "]") end
    if not deps[d] then deps[d] = true; dep_list[#dep_list + 1] = d end
  end
  local referenced = {}
  for _, r in ipairs(refs) do
    for _, word in ipairs(SECRET_FIELD) do
      if r.field:lower():find(word, 1, true) then
        return nil, invalid(self, "{" .. r.var .. "}: a template cannot carry a secret (a field named *" .. word
          .. "*)", id, "args")
      end
    end
    referenced[#referenced + 1] = r
    if not deps[r.object] then deps[r.object] = true; dep_list[#dep_list + 1] = r.object end
  end
  local client = o.client
  if client == nil or client == core.null then client = {} end
  if type(client) ~= "table" or (next(client) ~= nil and is_array(client)) then
    return nil, invalid(self, "must be an object", id, "client")
  end
  for k in pairs(client) do
    if not set.client_keys[k] then
      return nil, invalid(self, "not allowed in a set file: credentials come from the environment or the "
        .. "credentials file, and where they are sent from the caller (allowed: "
        .. table.concat(sorted_keys(set.client_keys), ", ") .. ")", id, "client." .. tostring(k))
    end
  end
  table.sort(dep_list)
  return { id = id, vendor = o.vendor, row = row, kind = kind, args = args, deps = deps, dep_list = dep_list,
    refs = referenced, client = client, teardown = set.teardown[o.vendor .. "." .. row.name] }
end

-- The static natural key of a create (its lookup's read arguments and key),
-- when nothing in it waits for another object; nil otherwise.
local function static_key(self, o)
  local l = o.row.lookup
  if not l then return nil end
  local parts = { o.vendor, l.read }
  local names = sorted_keys(l.args or {})
  local function value(arg)
    local v = o.args[arg]
    local r, missing = template.render(v, self.vars, {})
    if missing or type(r) == "table" then return nil end
    return r
  end
  for _, to in ipairs(names) do
    local v = value(l.args[to])
    if v == nil then return nil end
    parts[#parts + 1] = to .. "=" .. tostring(v)
  end
  if l.group_arg then
    local g = value(l.group_arg)
    if g == nil then return nil end
    parts[#parts + 1] = l.group_arg .. "=" .. tostring(g)
  end
  local key = value(l.key_arg)
  if type(key) ~= "string" then return nil end
  parts[#parts + 1] = l.key .. "=" .. require("envclone.reconcile").key_form(l, key)
  return table.concat(parts, " ")
end

-- Kahn's algorithm over the objects; the order is stable (ids sorted).
local function topo_order(self)
  local indeg, users = {}, {}
  for id, o in pairs(self.objects) do
    indeg[id] = #o.dep_list
    for _, d in ipairs(o.dep_list) do
      users[d] = users[d] or {}
      table.insert(users[d], id)
    end
  end
  local ready, order = {}, {}
  for _, id in ipairs(sorted_keys(self.objects)) do
    if indeg[id] == 0 then ready[#ready + 1] = id end
  end
  while #ready > 0 do
    table.sort(ready, function(a, b) return a > b end)
    local id = table.remove(ready)
    order[#order + 1] = id
    for _, u in ipairs(users[id] or {}) do
      indeg[u] = indeg[u] - 1
      if indeg[u] == 0 then ready[#ready + 1] = u end
    end
  end
  if #order < #sorted_keys(self.objects) then
    -- name one cycle: walk dependencies from an object left over until one repeats
    local left
    for _, id in ipairs(sorted_keys(self.objects)) do if indeg[id] > 0 then left = id break end end
    local seen, path, at = {}, {}, left
    while not seen[at] do
      seen[at] = #path + 1
      path[#path + 1] = at
      for _, d in ipairs(self.objects[at].dep_list) do
        if indeg[d] > 0 then at = d break end
      end
    end
    local cycle = {}
    for i = seen[at], #path do cycle[#cycle + 1] = path[i] end
    cycle[#cycle + 1] = at
    return nil, invalid(self, "a dependency cycle: " .. table.concat(cycle, " -> ") .. " (after, or {object.field})",
      left, "after")
  end
  for id, list in pairs(users) do table.sort(list); self.objects[id].users = list end
  return order
end

--- Checks a set and makes it ready to run; nothing is sent.
-- @tparam table spec `{ name = "pr-123", objects = { [id] = { vendor =,
--   operation =, args =, after = { ids }, client = { non-secret options } } } }`
--   (the set file's content: doc/sets.md)
-- @tparam[opt] table opts `name` (the set's name, over `spec.name`), `file`
--   (the set file's path, named in errors), `state` (the state file's path,
--   or false: none, refused when an object has no lookup), `client_options`
--   (vendor -> client options: credentials, base_url, ...; an object's
--   `client` is laid over them), `clients` (vendor -> a client to use for
--   the objects with no `client` member), `lock_timeout` (seconds a run
--   waits for another run of the set, 600; 0: refuse at once),
--   `max_in_flight` (16)
-- @tparam table lib the envclone module (its client constructors and
--   `batch`: `envclone.set` passes it; this module never requires it)
-- @return the set, or nil and an error (kind "validation", with `file`,
--   `object`, `field`)
-- @raise when `spec` or `opts` is not a table (a programmer error)
function set.new(spec, opts, lib)
  if type(spec) ~= "table" then error("envclone.set: the set must be a table, got " .. type(spec), 3) end
  if opts ~= nil and type(opts) ~= "table" then error("envclone.set: options must be a table", 3) end
  opts = opts or {}
  local self = setmetatable({ file = opts.file, opts = opts, lib = lib }, Set)
  for k in pairs(spec) do
    if k ~= "name" and k ~= "objects" and k ~= "$schema" and k ~= "description" then
      return nil, invalid(self, "unknown member '" .. tostring(k) .. "' (name, objects, description)")
    end
  end
  local name = opts.name
  if name == nil and spec.name ~= core.null then name = spec.name end
  if type(name) ~= "string" or name == "" or #name > 200 or name:find("[%c]") then
    return nil, invalid(self, "the set needs a name: 1 to 200 characters, no control characters (the file's "
      .. "'name', or --set)", nil, nil)
  end
  local sid = set.id_of(name)
  if sid == "" then return nil, invalid(self, "the set name '" .. name .. "' has no letter, digit or _") end
  self.name, self.set_id = name, sid
  self.vars = { set = name, set_id = sid }
  local objects = spec.objects
  if type(objects) ~= "table" or is_array(objects) or next(objects) == nil then
    return nil, invalid(self, "'objects' must be an object of one or more objects by id")
  end
  self.objects = {}
  for _, id in ipairs(sorted_keys(objects)) do
    if type(id) ~= "string" or not id:match("^[%a_][%w_%-]*$") or #id > 64 then
      return nil, invalid(self, "an object id is 1-64 of A-Z, a-z, 0-9, _ and -, not starting with a digit or -",
        tostring(id))
    end
    local o, err = compile_object(self, id, objects[id], self.vars)
    if not o then return nil, err end
    self.objects[id] = o
  end
  for _, id in ipairs(sorted_keys(self.objects)) do
    local o = self.objects[id]
    for _, d in ipairs(o.dep_list) do
      if not self.objects[d] then
        local via = o.deps[d] and "after"
        for _, r in ipairs(o.refs) do if r.object == d then via = "args: {" .. r.var .. "}" end end
        return nil, invalid(self, "names object '" .. d .. "', which the set does not have (" .. via .. ")", id,
          "after")
      end
    end
    -- an object's values hold what its dependents' templates read
    for _, r in ipairs(o.refs) do
      local target = self.objects[r.object]
      target.fields = target.fields or {}
      target.fields[r.field] = true
    end
  end
  for _, id in ipairs(sorted_keys(self.objects)) do
    local u = self.objects[id]
    local r = set.renames[u.vendor .. "." .. u.row.name]
    local v = r and u.args[r.id_arg]
    local target = type(v) == "string" and v:match("^{([%a_][%w_%-]*)%.[%w_]+}$")
    if target and self.objects[target] and self.objects[target].row.lookup then
      local t = self.objects[target]
      t.renamed_by = t.renamed_by or {}
      t.renamed_by[#t.renamed_by + 1] = id
    end
  end
  local order, oerr = topo_order(self)
  if not order then return nil, oerr end
  self.order = order
  local keys = {}
  for _, id in ipairs(order) do
    local o = self.objects[id]
    local key = o.kind == "create" and static_key(self, o)
    if key then
      if keys[key] then
        return nil, invalid(self, "has the same natural key as object '" .. keys[key] .. "' (" .. key
          .. "): both would be one object", id, "args." .. o.row.lookup.key_arg)
      end
      keys[key] = id
    end
  end
  self.lock_timeout = opts.lock_timeout or 600
  self.state_path = opts.state
  return self
end

--- Reads a set file (JSON) into a spec table.
-- @tparam string path "-" for stdin
-- @return the spec, or nil and an error (kind "validation", `file`)
function set.load(path)
  local text
  if path == "-" then
    text = io.stdin:read("*a")
  else
    local f = io.open(path, "rb")
    if not f then
      local e = core.error{ kind = "validation", message = path .. ": cannot read the set file" }
      e.file, e.sent = path, false
      return nil, e
    end
    text = f:read("*a")
    f:close()
  end
  local spec, err = core.json_decode(text or "")
  if spec == nil or type(spec) ~= "table" or is_array(spec) then
    local why = spec == nil and ("not valid JSON: " .. tostring(err):gsub("^envclone%.json_decode: ", ""))
      or "must hold a JSON object ({ \"name\": ..., \"objects\": { ... } })"
    local e = core.error{ kind = "validation", message = path .. ": " .. why }
    e.file, e.sent = path, false
    return nil, e
  end
  return spec
end

-- Running: clients, lookups, the state, the graph of tasks.

local function lookup_usable(client, row, args)
  if not row.lookup then return false, row.vendor .. "." .. row.name .. " has no lookup by key" end
  local why = require("envclone.reconcile").why_not(row, args, call.handle(client))
  return why == nil, why
end

-- The object a create's result stands for (Versori's clone answers the
-- whole project: the new environment is the list item with the key).
local function object_of(row, res, args)
  if not row.lookup then return res end
  return require("envclone.reconcile").made_object(row.lookup, res, args)
end

local function id_field(row)
  return row.lookup and row.lookup.id or (row.waiter and row.waiter.id_result) or "id"
end

-- What dependents read of object `o`'s result (`fields`), and its id.
local function values_of(o, obj)
  local v = {}
  if type(obj) ~= "table" then return v end
  v.id = obj[id_field(o.row)]
  for f in pairs(o.fields or {}) do
    local x = template.get_path(obj, f)
    if type(x) ~= "table" and type(x) ~= "userdata" then v[f] = x end
  end
  return v
end

-- The arguments of an update as one canonical text (keys sorted: pairs'
-- order differs from one process to the next), to tell "as applied".
local function digest(v)
  if type(v) ~= "table" then return core.json_encode(v) or "" end
  local parts = {}
  if is_array(v) then
    for _, x in ipairs(v) do parts[#parts + 1] = digest(x) end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  for _, k in ipairs(sorted_keys(v)) do parts[#parts + 1] = core.json_encode(tostring(k)) .. ":" .. digest(v[k]) end
  return "{" .. table.concat(parts, ",") .. "}"
end

-- the client of object `o` (made once per vendor and `client` member)
local function client_for(self, o)
  local opts = self.opts
  local given = opts.clients and opts.clients[o.vendor]
  if given and next(o.client) == nil then return given end
  local base = opts.client_options and opts.client_options[o.vendor]
  if base == nil and given == nil then
    return nil, invalid(self, "no client options for " .. o.vendor .. " (its credentials)", o.id, "vendor")
  end
  local merged = {}
  for k, v in pairs(base or {}) do merged[k] = v end
  for k, v in pairs(o.client) do merged[k] = v end
  local cache_key = o.vendor .. " " .. digest(o.client)
  local cache = self.client_cache
  if cache[cache_key] then return cache[cache_key] end
  local ok, c = pcall(self.lib[o.vendor], merged)
  if not ok then
    return nil, invalid(self, (tostring(c):gsub("^[^\n]-:%d+: ", "")), o.id, "client")
  end
  cache[cache_key] = c
  self.made_clients[#self.made_clients + 1] = c
  return c
end

-- Arguments of `o` with every template filled in (`values`: by object id),
-- and the call options split off: args, opts; or nil, error.
local function render_args(self, o, values)
  local out, missing = template.render(o.args, self.vars, values)
  if missing then
    local obj, field = missing:match("^([^.]+)%.(.*)$")
    local why = obj and values[obj] ~= nil and ("the result of object '" .. obj .. "' has no field '" .. field .. "'")
      or "its object is not made"
    return nil, invalid(self, "template variable {" .. missing .. "} has no value (" .. why .. ")", o.id, "args")
  end
  local own, copts = {}, {}
  for k, v in pairs(out) do
    if arg_options[k] then copts[k] = v else own[k] = v end
  end
  return own, copts
end

-- Checks `o`'s arguments as the C core does before sending (nothing is sent).
local function check_request(self, o, client, args)
  local req, err = o.row.request(call.handle(client), args)
  if req then req:release() return nil end
  err.object, err.file = o.id, self.file
  err.message = (self.file or "set") .. ": objects." .. o.id .. (err.field and (".args." .. err.field) or "") .. ": "
    .. tostring(err.message)
  return err
end

-- The matches of `o`'s key (unless `renamed_only`: the create's own
-- lookup reads that one), and of the keys its renames give it (set.renames).
-- Returns matches, how many came from a renamed key; or nil, err.
local function find_all(self, o, client, args, renamed_only)
  local reconcile = require("envclone.reconcile")
  local l = o.row.lookup
  local matches = {}
  if not renamed_only then
    local m, err = reconcile.find(client, call.handle(client), o.row, args)
    if not m then return nil, err end
    matches = m
  end
  local seen, renamed = {}, 0
  for _, m in ipairs(matches) do seen[tostring(m[l.id])] = true end
  for _, uid in ipairs(o.renamed_by or {}) do
    local u = self.objects[uid]
    local r = set.renames[u.vendor .. "." .. u.row.name]
    local key = template.render(u.args[r.key_arg], self.vars, {})
    if type(key) == "string" and key ~= args[l.key_arg] then
      local a2 = {}
      for k, v in pairs(args) do a2[k] = v end
      a2[l.key_arg] = key
      local more, merr = reconcile.find(client, call.handle(client), o.row, a2)
      if not more then return nil, merr end
      for _, m in ipairs(more) do
        if not seen[tostring(m[l.id])] then
          seen[tostring(m[l.id])] = true
          matches[#matches + 1] = m
          renamed = renamed + 1
        end
      end
    end
  end
  return matches, renamed
end

-- Whether the object recorded in `entry` (a state-only object) still
-- exists: true, false (the vendor's read by id answers 404), or nil and the
-- read's error. True where the vendor has no such read (set.teardown).
local function still_there(o, client, entry)
  local t = o.teardown
  if not (t and t.read and t.id_arg and entry.id ~= nil) then return true end
  local res, err = client[t.read](client, { [t.id_arg] = entry.id })
  if res ~= nil then return true end
  if err.reason == "not_found" then return false end
  return nil, err
end

-- Looks `o` up by key: "exists" with the object, "absent", or "unknown"
-- with why (no lookup, several matches, the read failed).
local function resolve(self, o, client, args)
  local usable, why = lookup_usable(client, o.row, args)
  local entry = self.state:get(o.id)
  if usable then
    local matches, aerr = find_all(self, o, client, args)
    if not matches then return "unknown", "the lookup failed: " .. tostring(aerr), aerr end
    if #matches > 1 then return "unknown", #matches .. " objects have its key; not choosing one" end
    if #matches == 1 then return "exists", nil, nil, matches[1] end
    return "absent"
  end
  if entry and entry.status == "created" then
    local there, rerr = still_there(o, client, entry)
    if there == nil then
      return "unknown", "the read of " .. tostring(entry.id) .. " failed: " .. tostring(rerr), rerr
    end
    if not there then return "absent", "recorded in the state file, and gone since (404)" end
    return "exists", "from the state file (" .. why .. ")", nil, nil, entry
  elseif entry and entry.status == "pending" then
    return "unknown", "a create was started and its outcome not recorded, and " .. why
      .. ": it may exist (apply with recreate_unknown to make another)"
  end
  return "absent", entry and entry.status == "deleted" and "deleted by destroy" or nil
end

-- Runs fn(id) for each id of `order` as tasks of one batch, each once the
-- objects `waits(id)` returns have a result. Returns id -> result.
local function run_graph(lib, jobs, max_in_flight)
  local b = lib.batch{ max_in_flight = max_in_flight or 16 }
  for _, job in ipairs(jobs) do
    b:add(function()
      for _, d in ipairs(job.waits) do
        while job.done[d] == nil do runtime.sleep(0.01) end
      end
      local ok, r
      if runtime.pcall_yields then
        ok, r = pcall(job.fn)
      else
        ok, r = true, job.fn()
      end
      if not ok then
        local err = r
        if getmetatable(err) ~= core.error_mt then err = core.error{ kind = "task", message = tostring(r) } end
        r = { status = "failed", error = err }
      end
      job.done[job.id] = r
      -- the caller's progress hook: an error there must not lose the result
      if job.on_done then pcall(job.on_done, job.id, r) end
      return true
    end)
  end
  local ok, res = pcall(b.run, b)
  local signal
  if not ok then
    if type(res) ~= "table" or res.kind ~= "interrupted" then error(res, 0) end
    signal = res.signal
  end
  for _, job in ipairs(jobs) do
    if job.done[job.id] == nil then
      job.done[job.id] = { status = "failed", error = signal
        and runtime.interrupted_error(signal, { sent = false }, "not run: interrupted by " .. signal)
        or core.error{ kind = "task", message = "not run" } }
    end
  end
  return signal
end

-- The summary of a run: counts by status, ok.
local FAILING = { failed = true, unknown = true, skipped = true, refused = true }
local function summarize(self, results, action, started, signal)
  local counts, ok = {}, true
  for _, id in ipairs(self.order) do
    local r = results[id]
    counts[r.status] = (counts[r.status] or 0) + 1
    if FAILING[r.status] then ok = false end
  end
  return { set = self.name, action = action, ok = ok and not signal, objects = results, order = self.order,
    counts = counts, elapsed = runtime.now() - started, interrupted = signal, state = self.state_path or nil }
end

-- Before a run: the clients, and the state (locked unless `read_only`).
-- Returns true, or nil and an error; nothing is sent.
local function prepare(self, read_only)
  self.client_cache, self.made_clients = {}, {}
  self.clients = {}
  local needs_state
  for _, id in ipairs(self.order) do
    local o = self.objects[id]
    local c, err = client_for(self, o)
    if not c then return nil, err end
    self.clients[id] = c
    if o.kind == "create" then
      -- a key that waits for another object's value: only its template can tell
      local args = render_args(self, o, setmetatable({}, { __index = function() return { id = "x" } end }))
      local usable, why = lookup_usable(c, o.row, args or o.args)
      if not usable then needs_state = (needs_state and (needs_state .. "; ") or "") .. id .. ": " .. why end
    end
  end
  if self.state_path == false or self.state_path == nil then
    if needs_state and not read_only then
      return nil, invalid(self, "needs a state file (objects " .. needs_state .. "; the state file is the only "
        .. "record of what was made): give opts.state / --state")
    end
    self.state = state_mod.memory(self.name)
    return true
  end
  if not read_only then
    local ok, why = state_mod.writable(self.state_path)
    if not ok then
      local e = invalid(self, "the state file cannot be written (" .. why .. ")"
        .. (needs_state and ("; it is the only record of " .. needs_state) or ""))
      e.reason = "state_file"
      return nil, e
    end
    local lock, lerr = state_mod.lock(self.state_path, self.lock_timeout)
    if not lock then return nil, lerr end
    self.lock = lock
  end
  local st, serr = state_mod.read(self.state_path, self.name)
  if not st then
    if self.lock then self.lock:unlock() self.lock = nil end
    return nil, serr
  end
  self.state = st
  return true
end

local function finish(self)
  if self.lock then self.lock:unlock() self.lock = nil end
  for _, c in ipairs(self.made_clients or {}) do c:close() end
  self.made_clients, self.client_cache = {}, {}
end

-- values of objects (by id) for the templates of this run: object id -> { id =, <field> = }
local function new_values() return {} end

-- plan

local function plan_one(self, o, values, destroy)
  if destroy and o.kind == "update" then return { status = "kept", why = "an update: nothing to undo" } end
  local client = self.clients[o.id]
  local args, copts = render_args(self, o, values)
  if not args then
    -- its dependency is not made yet: it will be, and this one after it
    return { status = destroy and "already_gone" or (o.kind == "update" and "update" or "create"),
      why = "depends on an object not made yet" }
  end
  local err = check_request(self, o, client, args)
  if err then return { status = "failed", error = err } end
  local entry = self.state:get(o.id)
  if o.kind == "update" then
    if entry and entry.status == "applied" and entry.digest == digest(args) then
      return { status = "unchanged" }
    end
    return { status = "update" }
  end
  local found, why, ferr, match, sentry = resolve(self, o, client, args)
  local r = { why = why, error = ferr, key = o.row.lookup and args[o.row.lookup.key_arg] }
  if found == "exists" then
    values[o.id] = match and values_of(o, match) or sentry.values or { id = sentry.id }
    r.object_id = values[o.id].id
    r.status = destroy and "delete" or "exists"
  elseif found == "absent" then
    r.status = destroy and "already_gone" or "create"
  else
    r.status = "unknown"
  end
  r.args, r.call_options = args, copts
  return r
end

local function graph_jobs(self, fn, reverse)
  local done, jobs = {}, {}
  for _, id in ipairs(self.order) do
    local o = self.objects[id]
    local waits = reverse and (o.users or {}) or o.dep_list
    jobs[#jobs + 1] = { id = id, waits = waits, done = done, fn = function() return fn(o, done) end }
  end
  return jobs, done
end

--- Reads only: what apply (or, with `destroy = true`, destroy) would do,
-- per object: `create`, `exists` (found by key, or recorded in the state
-- file; adopted as is), `update`/`unchanged` (an update row), `delete`,
-- `already_gone`, `kept` (destroy leaves an update alone), or `unknown`
-- with `why` (no lookup and a pending state entry, several matches, a read
-- that failed).
-- @tparam[opt] table opts `destroy`
-- @return `{ set =, action = "plan", ok =, objects = { [id] = { status =,
--   why =, object_id =, key = } }, order = { ids }, counts = { [status] = n } }`,
--   or nil and an error (nothing sent)
function Set:plan(opts)
  opts = opts or {}
  local started = runtime.now()
  local ok, err = prepare(self, true)
  if not ok then finish(self) return nil, err end
  local values = new_values()
  local jobs, done = graph_jobs(self, function(o) return plan_one(self, o, values, opts.destroy) end)
  local signal = run_graph(self.lib, jobs, self.opts.max_in_flight)
  finish(self)
  for _, r in pairs(done) do r.args, r.call_options = nil, nil end
  local s = summarize(self, done, "plan", started, signal)
  s.ok = not signal and not (s.counts.failed or s.counts.unknown)
  return s
end

-- apply

local function fail_result(err, extra)
  local r = { status = "failed", error = err }
  for k, v in pairs(extra or {}) do r[k] = v end
  return r
end

local function save_or_fail(self, id, entry)
  local ok, err = self.state:put(id, entry)
  if not ok then return err end
end

local function apply_create(self, o, values, aopts)
  local client = self.clients[o.id]
  local args, copts = render_args(self, o, values)
  if not args then return fail_result(copts) end
  local err = check_request(self, o, client, args)
  if err then return fail_result(err) end
  local row, l = o.row, o.row.lookup
  local usable, why = lookup_usable(client, row, args)
  local entry = self.state:get(o.id)
  local key = l and args[l.key_arg] or nil
  local w = row.waiter
  local want_wait = w ~= nil and copts.wait ~= false
  if not usable and entry and entry.status == "created" then
    -- recorded, but deleted since by someone else: made again below
    local there, rerr = still_there(o, client, entry)
    if there == nil then return fail_result(rerr, { object_id = entry.id, key = key }) end
    if not there then entry = nil end
  end
  if not usable then
    if entry and entry.status == "created" then
      values[o.id] = entry.values or { id = entry.id }
      if want_wait and not entry.ready then
        -- a run that ended during the wait: wait again for the recorded id
        local st, werr = client[w.name](client, { [w.id_arg] = entry.id, timeout = copts.wait_timeout,
          interval = copts.wait_interval, grace = copts.wait_grace })
        if not st then return fail_result(werr, { object_id = entry.id }) end
        entry.ready = true
        local serr = save_or_fail(self, o.id, entry)
        if serr then return fail_result(serr, { object_id = entry.id }) end
      end
      return { status = "unchanged", object_id = entry.id, why = "recorded in the state file (" .. why .. ")",
        key = key }
    end
    if entry and entry.status == "pending" and not aopts.recreate_unknown then
      return { status = "unknown", key = key, why = "a create was started and its outcome not recorded, and " .. why
        .. ": it may exist; refusing to make a second (recreate_unknown / --recreate-unknown to make one)" }
    end
  end
  -- "pending" before the create: a run killed from here on is reconciled
  -- by the next one (by key, or reported unknown where there is none)
  local serr = save_or_fail(self, o.id, { status = "pending", vendor = o.vendor, operation = row.name, key = key,
    previous = entry and entry.status or nil })
  if serr then return fail_result(serr) end
  if usable and o.renamed_by then
    -- renamed by a later object of the set: found under its new key, it is adopted here
    local matches, renamed = find_all(self, o, client, args, true)
    if not matches then return fail_result(renamed, { key = key }) end
    if renamed > 0 then
      if #matches > 1 then
        return fail_result(invalid(self, #matches .. " objects have its key or its renamed key; not choosing one",
          o.id), { key = key })
      end
      local v = values_of(o, matches[1])
      values[o.id] = v
      local e2 = save_or_fail(self, o.id, { status = "created", vendor = o.vendor, operation = row.name, key = key,
        id = v.id, values = v, ready = want_wait or nil })
      if e2 then return fail_result(e2, { object_id = v.id, key = key }) end
      return { status = "adopted", object_id = v.id, key = key, why = "found under the key its rename gave it",
        value = matches[1] }
    end
  end
  local cargs = {}
  for k, v in pairs(args) do cargs[k] = v end
  if usable then cargs.if_exists = "adopt" end
  if want_wait then
    cargs.wait, cargs.wait_timeout, cargs.wait_interval, cargs.wait_grace = true, copts.wait_timeout,
      copts.wait_interval, copts.wait_grace
  end
  local res, cerr = client[row.name](client, cargs)
  if res == nil then
    local created = type(cerr) == "table" and cerr.created
    if created then
      -- made, only the wait failed: recorded, and waited for again next time
      local id = select(2, next(created))
      values[o.id] = { id = id }
      local e2 = save_or_fail(self, o.id, { status = "created", vendor = o.vendor, operation = row.name, key = key,
        id = id, values = { id = id }, ready = false })
      return fail_result(e2 or cerr, { object_id = id, key = key })
    end
    if cerr.maybe_applied then
      -- may exist: stays pending (looked up next time, or reported unknown)
      return fail_result(cerr, { key = key })
    end
    -- surely not made: the entry is what it was
    local e2 = save_or_fail(self, o.id, entry)
    return fail_result(e2 or cerr, { key = key })
  end
  local obj = object_of(row, res, args)
  local v = values_of(o, obj)
  values[o.id] = v
  local e2 = save_or_fail(self, o.id, { status = "created", vendor = o.vendor, operation = row.name, key = key,
    id = v.id, values = v, ready = want_wait or nil })
  if e2 then return fail_result(e2, { object_id = v.id, key = key }) end
  local status = res.adopted and "adopted" or res.reconciled and "reconciled" or "created"
  return { status = status, object_id = v.id, key = key, value = res }
end

local function apply_update(self, o, values)
  local client = self.clients[o.id]
  local args, copts = render_args(self, o, values)
  if not args then return fail_result(copts) end
  local err = check_request(self, o, client, args)
  if err then return fail_result(err) end
  local entry = self.state:get(o.id)
  local d = digest(args)
  if entry and entry.status == "applied" and entry.digest == d then
    values[o.id] = entry.values or {}
    return { status = "unchanged" }
  end
  local res, cerr = client[o.row.name](client, args)
  if res == nil then return fail_result(cerr) end
  local v = values_of(o, res)
  values[o.id] = v
  local e2 = save_or_fail(self, o.id, { status = "applied", vendor = o.vendor, operation = o.row.name, digest = d,
    values = v })
  if e2 then return fail_result(e2) end
  return { status = "updated", value = res }
end

-- The jobs of one set's apply (to run alone or with other sets' in one batch).
local function apply_jobs(self, aopts)
  local values = new_values()
  return graph_jobs(self, function(o, done)
    for _, d in ipairs(o.dep_list) do
      local s = done[d].status
      if FAILING[s] then
        return { status = "skipped", why = "object '" .. d .. "' it depends on is " .. s }
      end
    end
    if o.kind == "create" then return apply_create(self, o, values, aopts) end
    return apply_update(self, o, values)
  end)
end

-- destroy

local REFUSALS = { production_not_deletable = true, published = true, forbidden = true, conflict = true }

local function destroy_one(self, o, planned, done)
  local p = planned[o.id]
  for _, u in ipairs(o.users or {}) do
    local s = done[u].status
    if s ~= "deleted" and s ~= "already_gone" and s ~= "kept" then
      return { status = "skipped", why = "object '" .. u .. "' that depends on it is " .. s, object_id = p.object_id }
    end
  end
  if p.status ~= "delete" then
    if p.status == "already_gone" then
      local entry = self.state:get(o.id)
      if entry and entry.status ~= "deleted" then
        local e = save_or_fail(self, o.id, { status = "deleted", vendor = o.vendor, operation = o.row.name,
          key = entry.key, id = entry.id })
        if e then return fail_result(e) end
      end
    end
    return { status = p.status, why = p.why, error = p.error, key = p.key }
  end
  local client = self.clients[o.id]
  local t = o.teardown
  if not t then
    return { status = "unknown", why = "no teardown for " .. o.vendor .. "." .. o.row.name .. " (set.teardown)" }
  end
  local row = rows[o.vendor .. "." .. t.delete]
  local dargs = {}
  for to, from in pairs(t.args or {}) do dargs[to] = p.args[from] end
  if t.id_arg then dargs[t.id_arg] = p.object_id end
  if row.waiter then
    -- the object's own wait options serve its deletion's wait too
    local co = p.call_options or {}
    dargs.wait, dargs.wait_timeout, dargs.wait_interval = true, co.wait_timeout, co.wait_interval
  end
  local res, err = client[row.name](client, dargs)
  if res == nil then
    local reason = err.reason
    local refused = err.kind == "http" and (REFUSALS[reason] or err.status == 403 or err.status == 409
      or err.status == 422)
    return { status = refused and "refused" or "failed", error = err, object_id = p.object_id, key = p.key }
  end
  local e = save_or_fail(self, o.id, { status = "deleted", vendor = o.vendor, operation = o.row.name, key = p.key,
    id = p.object_id })
  if e then return fail_result(e, { object_id = p.object_id }) end
  return { status = res.already_gone and "already_gone" or "deleted", object_id = p.object_id, key = p.key,
    state = res.state }
end

-- entry points

-- Runs `action` ("apply" or "destroy") of every set of `sets` in one batch.
local function run_sets(sets, action, aopts)
  aopts = aopts or {}
  local started = runtime.now()
  local out, ready, jobs = {}, {}, {}
  for i, s in ipairs(sets) do
    local ok, err = prepare(s, false)
    if not ok then
      finish(s)
      out[i] = { set = s.name, action = action, ok = false, error = err, objects = {}, order = s.order, counts = {} }
    else
      ready[#ready + 1] = i
    end
  end
  local dones, planned = {}, {}
  if action == "destroy" then
    -- first the objects' ids, in dependency order (a key may need another's value)
    local pjobs = {}
    for _, i in ipairs(ready) do
      local s = sets[i]
      local values = new_values()
      local js, done = graph_jobs(s, function(o) return plan_one(s, o, values, true) end)
      planned[i] = done
      for _, j in ipairs(js) do pjobs[#pjobs + 1] = j end
    end
    local signal = run_graph(sets[1].lib, pjobs, aopts.max_in_flight or sets[1].opts.max_in_flight)
    if signal then
      for _, i in ipairs(ready) do
        finish(sets[i])
        out[i] = summarize(sets[i], planned[i], action, started, signal)
      end
      return out
    end
  end
  for _, i in ipairs(ready) do
    local s = sets[i]
    local js, done
    if action == "apply" then
      js, done = apply_jobs(s, aopts)
    else
      js, done = graph_jobs(s, function(o, d) return destroy_one(s, o, planned[i], d) end, true)
    end
    dones[i] = done
    for _, j in ipairs(js) do
      if aopts.on_object then j.on_done = function(id, r) aopts.on_object(s.name, id, r) end end
      jobs[#jobs + 1] = j
    end
  end
  local signal = run_graph(sets[1].lib, jobs, aopts.max_in_flight or (sets[1] and sets[1].opts.max_in_flight))
  for _, i in ipairs(ready) do
    finish(sets[i])
    out[i] = summarize(sets[i], dones[i], action, started, signal)
  end
  return out
end

--- Creates what is missing, adopts what exists by key (`if_exists =
-- "adopt"`), waits for readiness where the row has a waiter (Kontent
-- cloning), and records each object in the state file ("pending" before
-- its create, the id after). Objects whose dependencies failed are
-- `skipped`.
-- @tparam[opt] table opts `recreate_unknown` (make an object whose earlier
--   create's outcome is unknown and cannot be looked up: it may then exist
--   twice), `max_in_flight`, `on_object(set_name, object_id, result)` (called
--   as each object ends; what it raises is ignored)
-- @return `{ set =, action = "apply", ok =, objects = { [id] = { status =
--   "created" | "adopted" | "reconciled" | "unchanged" | "updated" |
--   "unknown" | "skipped" | "failed", object_id =, key =, why =, error =,
--   value = (the call's result) } }, order =, counts =, elapsed = (s),
--   interrupted = (the signal, when one stopped it) }`, or nil and an error
--   when nothing could start (the state file, its lock: kind "conflict",
--   reason "locked"; nothing sent)
function Set:apply(opts)
  local r = run_sets({ self }, "apply", opts)[1]
  if r.error then return nil, r.error end
  return r
end

--- Deletes what the set made, in reverse dependency order, each with the
-- vendor's delete row (`set.teardown`), waiting for background deletions
-- (Qovery); already gone counts as done; a refusal (Kontent's production
-- environment) is `refused` and the others go on. An object another object
-- still depends on (one not deleted) is `skipped`.
-- @tparam[opt] table opts `max_in_flight`, `on_object` (as for `apply`)
-- @return as `apply`, statuses "deleted" | "already_gone" | "kept" |
--   "refused" | "unknown" | "skipped" | "failed"; or nil and an error
function Set:destroy(opts)
  local r = run_sets({ self }, "destroy", opts)[1]
  if r.error then return nil, r.error end
  return r
end

--- Applies (or destroys) several sets at once: every object of every set
-- a task of one `envclone.batch`, so they share each vendor's limits.
-- @tparam {table,...} sets made by `set.new`
-- @tparam string action "apply" or "destroy"
-- @tparam[opt] table opts as for `Set:apply`
-- @treturn {table,...} one result per set, in order (a set that could not
--   start has `ok = false` and `error`)
function set.run_all(sets, action, opts)
  if action ~= "apply" and action ~= "destroy" then
    error("envclone.set.run_all: action must be \"apply\" or \"destroy\"", 2)
  end
  return run_sets(sets, action, opts)
end

return set
