--- Output: whether stdout and stderr are terminals, secrets masked in what
-- is printed, a result as a short summary for a terminal, and the live line
-- while waiting. JSON goes through envclone.cli.json.
-- @module envclone.cli.output

local envclone = require("envclone")
local core = require("envclone.core")
local reconcile = require("envclone.reconcile")
local json = require("envclone.cli.json")
local names = require("envclone.cli.names")

local output = {}

local function isatty(fd)
  -- the shell inherits our descriptors, so `test -t` answers for this process
  local ok = os.execute("test -t " .. fd)
  return ok == true or ok == 0
end

--- Whether `out` and `errout` are terminals: `tty` when the caller said,
-- else the system's answer for stdout and stderr (other files are not).
-- @param out file for results
-- @param errout file for errors
-- @tparam[opt] table tty `{ out = boolean, err = boolean }`
-- @treturn table `{ out = boolean, err = boolean }`
function output.tty(out, errout, tty)
  return tty or { out = out == io.stdout and isatty(1), err = errout == io.stderr and isatty(2) }
end

--- A copy of `value` in which every credential we sent prints as ***, in any
-- form (Kontent's clone answer holds the API key): the C core's one masking
-- routine (src/ec_mask.c) does the matching, for keys and values.
-- @param value
-- @tparam {string,...} secrets
-- @tparam[opt] integer depth
-- @return the masked copy
function output.scrub(value, secrets, depth)
  depth = depth or 0
  if type(value) == "string" then
    return core.mask(value, secrets)
  elseif type(value) == "table" and depth < 64 then
    local copy = {}
    for k, v in pairs(value) do copy[output.scrub(k, secrets, depth + 1)] = output.scrub(v, secrets, depth + 1) end
    return setmetatable(copy, getmetatable(value))
  end
  return value
end

-- Result fields a terminal shows as *** (new environments' keys and tokens);
-- --output json prints them.
local function secret_name(k)
  local l = tostring(k):lower()
  return l:find("key$") or l:find("token") or l:find("secret") or l:find("cookie") or l:find("password")
end

--- The object a create made, when its answer is the object that holds it
-- (Versori's clone answers the whole project): the row's `lookup` column
-- says where (`result = "read"`: the answer is what `read` returns; the
-- new object is the item of `list` whose `key` is the argument `key_arg`).
-- @tparam table op the operation's row
-- @param res the result
-- @tparam ?table args the call's arguments
-- @treturn ?table the item
-- @treturn ?string the list's name
function output.created_item(op, res, args)
  local l = op.lookup
  if not (type(l) == "table" and l.result == "read") then return nil end
  local item = reconcile.made_object(l, res, args)
  if item == nil then return nil end
  return item, l.list
end

--- Writes a result as a terminal shows it: one line per field, keys and
-- tokens hidden; for a create whose answer holds the new object among
-- others (`created_item`), that object's fields.
-- @param out file
-- @tparam table op the operation's row
-- @param res the result
-- @tparam[opt] table state the waiter's last state (`--wait`)
-- @tparam[opt] number waited seconds since the call started
-- @tparam[opt] table args the call's arguments
function output.summary(out, op, res, state, waited, args)
  local head = op.vendor .. " " .. names.kebab(op.name) .. ": ok"
  -- the waiter's row names the state's field (Kontent: cloning_state, shown as "cloning done")
  local field = op.waiter and op.waiter.state_field
  if field and type(state) == "table" and state[field] then
    head = head .. string.format(", %s %s after %.0f s", (field:gsub("_state$", "")), tostring(state[field]),
      waited or 0)
  end
  -- what the call did, when it did not simply make it (doc/exactly-once.md)
  local how = "created"
  if type(res) == "table" then
    if res.adopted then how = "adopted (it existed)"
    elseif res.reconciled then how = "created (found by its key after the answer was lost)"
    elseif res.already_gone then head = head .. ", already gone" end
  end
  local item, list = output.created_item(op, res, args)
  if item then
    head = head .. string.format(", %s in %s of %s", how, list, tostring(res.id or res.name or "the answer"))
    res = item
  elseif how ~= "created" then
    head = head .. ", " .. how
  end
  out:write(head, "\n")
  if type(res) ~= "table" then return end
  local rows = {}
  for k, v in pairs(res) do rows[#rows + 1] = { tostring(k), v } end
  table.sort(rows, function(a, b) return a[1] < b[1] end)
  local hidden = false
  for _, row in ipairs(rows) do
    local k, v = row[1], row[2]
    local shown
    if v == envclone.null then shown = "-"
    elseif secret_name(k) and v ~= "***" then shown = "***"; hidden = true
    elseif type(v) == "table" then shown = json.encode(v)
    else shown = tostring(v) end
    out:write(string.format("  %-24s %s\n", json.utf8_repair(k), json.utf8_repair(shown)))
  end
  if hidden then out:write("  (keys hidden on a terminal: --output json prints them)\n") end
  if item then out:write("  (--output json prints the whole answer)\n") end
end

--- The members of the error document (`{"error": {...}}`), in the order
-- they print; a member the error does not have is left out.
-- (doc/cli-output.schema.json describes each.)
-- @table error_keys
output.error_keys = { "kind", "reason", "status", "code", "message", "maybe_applied", "sent", "created",
  "request_id", "field", "flag", "hint", "signal", "vendor", "operation", "attempts", "retry_after", "state",
  "not_reconciled", "reconcile_error", "lost_error", "matches" }

-- An error object inside the error document (a lookup's own failure, the
-- lost answer's error): its text, kind, reason and status only.
local function nested_error(e)
  if type(e) ~= "table" then return tostring(e) end
  return json.ordered({ kind = e.kind, reason = e.reason, status = e.status, message = tostring(e) },
    { "kind", "reason", "status", "message" })
end

-- The objects that match a create's key: their ids.
local function match_ids(list)
  local ids = envclone.array{}
  for _, m in ipairs(list) do ids[#ids + 1] = type(m) == "table" and (m.id or m.name) or tostring(m) end
  return ids
end

--- The error document's object for `err` (an error object, a usage error
-- as `{ kind = "usage", ... }`, or anything else as kind "failure"): the
-- members of `error_keys` it has, secrets masked, `flag` added from
-- `flag_of(field)` when it names a field.
-- @param err
-- @tparam[opt] {string,...} secrets
-- @tparam[opt] function flag_of field -> the flag the user typed, or nil
-- @treturn table
function output.error_doc(err, secrets, flag_of)
  if type(err) ~= "table" then err = { kind = "failure", message = tostring(err) } end
  local d = {}
  for _, k in ipairs(output.error_keys) do
    local v = err[k]
    if v ~= nil and type(v) ~= "function" and (type(v) ~= "userdata" or v == envclone.null) then d[k] = v end
  end
  d.kind = d.kind or "failure"
  if d.message == nil then d.message = tostring(err) end
  if d.reconcile_error ~= nil then d.reconcile_error = nested_error(d.reconcile_error) end
  if d.lost_error ~= nil then d.lost_error = nested_error(d.lost_error) end
  if type(d.matches) == "table" then d.matches = match_ids(d.matches) end
  if d.field and not d.flag and flag_of then d.flag = flag_of(d.field) end
  if secrets then d = output.scrub(d, secrets) end
  return json.ordered(d, output.error_keys)
end

--- Writes the error document, `{"error": {...}}` (see `error_doc`), as one line.
-- @param out file
-- @param err
-- @tparam[opt] {string,...} secrets
-- @tparam[opt] function flag_of
function output.write_error(out, err, secrets, flag_of)
  out:write(json.encode({ error = output.error_doc(err, secrets, flag_of) }), "\n")
end

--- The error's line for stderr: its text, the flag the user typed in place
-- of the field's name ("--new-env-name (field 'newEnvName')"), and what was
-- created when a wait after a create failed.
-- @param err
-- @tparam[opt] function flag_of
-- @treturn string
function output.error_line(err, flag_of)
  local line = json.utf8_repair(tostring(err))
  if type(err) ~= "table" then return line end
  local flag = err.field and flag_of and flag_of(err.field)
  if flag then
    local quoted = "field '" .. err.field .. "'"
    local at = line:find(quoted, 1, true)
    if at then line = line:sub(1, at - 1) .. flag .. " (" .. quoted .. ")" .. line:sub(at + #quoted) end
  end
  if type(err.created) == "table" then
    local _, id = next(err.created)
    if id ~= nil then line = line .. " (created " .. tostring(id) .. ")" end
  end
  return line
end

--- The live line while waiting (the waiter's `on_progress`): state, elapsed time, next poll.
-- @param errout file (a terminal)
-- @tparam table op the operation's row (its `waiter` names the state's field)
-- @treturn function
function output.progress_writer(errout, op)
  local field = op.waiter.state_field
  local label = field:gsub("_state$", "")
  return function(state, elapsed, poll, err, next_delay)
    local what = type(state) == "table" and state[field] or (err and "poll failed" or "starting")
    local line = string.format("waiting: %s %s, %.1fs elapsed, poll %d", label, tostring(what), elapsed, poll)
    if next_delay then line = line .. string.format(", next poll in %.1fs", next_delay) end
    errout:write("\r\27[K", line)
    errout:flush()
  end
end

return output
