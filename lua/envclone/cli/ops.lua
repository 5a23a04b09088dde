--- The operation table as the command line sees it: the vendors in table
-- order, each vendor's operations, and what help and parsing ask of a row.
-- @module envclone.cli.ops

local envclone = require("envclone")
local names = require("envclone.cli.names")

local ops = {}

--- Vendor names, in the order of the operation table.
-- @table vendors
ops.vendors = {}

--- Vendor -> its operations (rows of `envclone.operations`), in table
-- order, then its waiters as commands (rows with `is_waiter = true`,
-- `waiter` = the waiter's row, `follows` = the operation it follows).
-- @table by_vendor
ops.by_vendor = {}

for _, op in ipairs(envclone.operations) do
  if not ops.by_vendor[op.vendor] then
    ops.vendors[#ops.vendors + 1] = op.vendor
    ops.by_vendor[op.vendor] = {}
  end
  table.insert(ops.by_vendor[op.vendor], op)
end

-- Every waiter of the table is a command too (`kontent wait-for-cloning`):
-- a row made from the `waiter` column of the operation it follows, whose
-- one field is the poll operation's field that names the object.
local function waiter_row(op)
  local w = op.waiter
  local poll
  for _, o in ipairs(ops.by_vendor[op.vendor]) do if o.name == w.poll then poll = o end end
  local id_field = { name = w.id_arg, type = "string", required = true }
  for _, f in ipairs(poll and poll.fields or {}) do
    if f.name == w.id_arg then
      id_field = {}
      for k, v in pairs(f) do id_field[k] = v end
      id_field.required = true
    end
  end
  local states = table.concat(w.pending, ", ") .. ", " .. w.done .. ", " .. w.failed
  return { vendor = op.vendor, name = w.name, method = poll and poll.method or "GET", path = poll and poll.path or "",
    page = poll and poll.page, auth = poll and poll.auth, credential = poll and poll.credential,
    fields = { id_field }, waiter = w, is_waiter = true, follows = op.name,
    summary = "Waits until " .. w.state_field .. " is " .. tostring(w.done) .. " (" .. states .. "): polls "
      .. names.kebab(w.poll) .. " with a growing interval; the wait that `" .. names.kebab(op.name)
      .. " --wait` runs, on its own (e.g. to resume a wait that gave up)." }
end

do
  local rows = {}
  for _, vendor in ipairs(ops.vendors) do
    local seen = {}
    for _, op in ipairs(ops.by_vendor[vendor]) do
      if op.waiter and not seen[op.waiter.name] then
        seen[op.waiter.name] = true
        rows[#rows + 1] = waiter_row(op)
      end
    end
  end
  for _, row in ipairs(rows) do table.insert(ops.by_vendor[row.vendor], row) end
end

--- A vendor's operation by its library name or its kebab-case name.
-- @tparam string vendor
-- @tparam string name
-- @treturn ?table the row, nil when there is none
function ops.find(vendor, name)
  for _, op in ipairs(ops.by_vendor[vendor] or {}) do
    if op.name == name or names.kebab(op.name) == name then return op end
  end
end

--- The vendor page's one-line description of an operation, when the core
-- exposes it (`summary`; `description` in older tables).
-- @tparam table op
-- @treturn ?string
function ops.summary(op)
  return op.summary or op.description
end

--- The ways an operation authenticates: `{ {credential = option, scheme = text}, ... }`
-- (`auth` in the table; a single `credential` in older tables).
-- @tparam table op
-- @treturn table
function ops.auth_ways(op)
  if type(op.auth) == "table" and op.auth[1] then return op.auth end
  return op.credential and { { credential = op.credential } } or {}
end

--- "KONTENT_API_KEY" or "VERSORI_TOKEN or VERSORI_COOKIE", with the schemes when `schemes`.
-- @tparam table op
-- @tparam[opt] boolean schemes
-- @treturn string
function ops.credential_words(op, schemes)
  local words = {}
  for _, way in ipairs(ops.auth_ways(op)) do
    local var = names.credential_env[op.vendor][way.credential] or way.credential
    words[#words + 1] = var .. (schemes and way.scheme and " (" .. way.scheme .. ")" or "")
  end
  return table.concat(words, " or ")
end

--- Whether an operation has a waiter.
-- (Then it takes `--wait`.)
-- @tparam table op
-- @treturn boolean
function ops.supports_wait(op)
  return not op.is_waiter and envclone.waiters[op.vendor .. "." .. op.name] ~= nil
end

return ops
