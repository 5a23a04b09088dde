--- A set's state file: what apply made, for the objects that cannot be
-- found again by a key (Kontent without a Subscription API key, Droplit
-- without an alias), and a cache for the others.
--
-- JSON, replaced atomically on every change (`core.write_file_atomic`:
-- temporary file, fsync, rename), so it is valid JSON after a SIGKILL at
-- any instant. An entry is written `pending` before its create is sent and
-- gets the new object's id after, so a run killed between the two leaves
-- `pending`: the next run looks the object up by key, or, where no lookup
-- exists, reports it `unknown` (it may exist) instead of making a second.
-- A run holds an advisory lock (`core.lock_file`, flock) on `<path>.lock`
-- while it reads and writes: a second run of the same set waits for it
-- (bounded) or refuses, never doubles.
--
--     { "version": 1, "set": "pr-123",
--       "objects": { "web": { "status": "created", "vendor": "qovery",
--         "operation": "clone_application", "key": "web-pr-123", "id": "...",
--         "values": { "id": "..." }, "ready": true, "at": "2026-12-08T00:10:00Z" } } }
--
-- `status`: `pending` (a create was sent or about to be; its outcome was not
-- recorded), `created` (it exists: `id`), `applied` (an update, with
-- `digest`, its arguments as sent), `deleted` (destroy removed it; `id` kept,
-- so a second destroy can say `already_gone`).
-- @module envclone.set.state
local core = require("envclone.core")

local state = {}

local State = {}
State.__index = State

local VERSION = 1

local function state_error(path, message, fields)
  local e = core.error{ kind = "validation", message = path .. ": " .. message }
  e.file, e.sent, e.maybe_applied = path, false, false
  for k, v in pairs(fields or {}) do e[k] = v end
  return e
end

--- The default state file of a set file: `<set file>.<set name>.state.json`.
-- @tparam string set_file
-- @tparam string set_name
-- @treturn string
function state.default_path(set_file, set_name)
  return set_file .. "." .. set_name .. ".state.json"
end

--- Whether a state file could be written at `path` (its directory exists
-- and takes a new file): asked before anything is sent.
-- @tparam string path
-- @treturn[1] boolean true
-- @return[2] nil
-- @treturn[2] string why not
function state.writable(path)
  local probe = path .. ".probe"
  local ok, err = core.write_file_atomic(probe, "")
  if not ok then return nil, err end
  os.remove(probe)
  return true
end

--- Reads the state file at `path` (a missing file is an empty state).
-- @tparam string path
-- @tparam string set_name the set it must belong to
-- @return the state object, or nil and an error (kind "validation": not
--   JSON, not a state file, another set's)
function state.read(path, set_name)
  local doc = { version = VERSION, set = set_name, objects = {} }
  local f = io.open(path, "rb")
  if f then
    local text = f:read("*a")
    f:close()
    local decoded, err = core.json_decode(text or "")
    if decoded == nil then
      return nil, state_error(path, "the state file is not valid JSON: "
        .. tostring(err):gsub("^envclone%.json_decode: ", ""))
    end
    if type(decoded) ~= "table" or type(decoded.objects) ~= "table" or decoded.version ~= VERSION then
      return nil, state_error(path, "not an envclone state file (version " .. VERSION .. " with objects)")
    end
    if decoded.set ~= set_name then
      return nil, state_error(path, "the state file belongs to set '" .. tostring(decoded.set)
        .. "', not '" .. set_name .. "'")
    end
    doc = decoded
  end
  return setmetatable({ path = path, doc = doc }, State)
end

--- An empty state kept in memory only (no `state` file: every object has a lookup).
-- @tparam string set_name
function state.memory(set_name)
  return setmetatable({ doc = { version = VERSION, set = set_name, objects = {} } }, State)
end

--- Takes the lock of the state file at `path`, waiting `seconds` at most.
-- @tparam string path
-- @tparam number seconds
-- @return the lock, or nil and an error (kind "conflict", reason "locked"
--   when another run holds it)
function state.lock(path, seconds)
  local lock, why, what = core.lock_file(path .. ".lock", seconds)
  if lock then return lock end
  local e = core.error{ kind = what == "busy" and "conflict" or "validation",
    message = why .. (what == "busy" and string.format(" (waited %g s): another run of this set is going on",
      seconds) or "") }
  e.reason, e.file, e.sent, e.maybe_applied = what == "busy" and "locked" or "state_file", path, false, false
  return nil, e
end

--- The entry of object `id`, or nil.
function State:get(id)
  return self.doc.objects[id]
end

--- Sets (or, with nil, removes) the entry of object `id` and writes the
-- file at once.
-- @tparam string id
-- @tparam ?table entry
-- @return true, or nil and an error (the file could not be written)
function State:put(id, entry)
  if entry then entry.at = os.date("!%Y-%m-%dT%H:%M:%SZ") end
  self.doc.objects[id] = entry
  return self:save()
end

--- Writes the whole state atomically (nothing for a state in memory).
-- @return true, or nil and an error
function State:save()
  if not self.path then return true end
  local text, jerr = core.json_encode(self.doc)
  if not text then return nil, state_error(self.path, tostring(jerr)) end
  local ok, err = core.write_file_atomic(self.path, text .. "\n")
  if not ok then return nil, state_error(self.path, err, { reason = "state_file" }) end
  return true
end

return state
