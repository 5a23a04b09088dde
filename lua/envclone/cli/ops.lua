--- The operation table as the command line sees it: the vendors in table
-- order, each vendor's operations, and what help and parsing ask of a row.
-- @module envclone.cli.ops

local envclone = require("envclone")
local names = require("envclone.cli.names")

local ops = {}

--- Vendor names, in the order of the operation table.
-- @table vendors
ops.vendors = {}

--- Vendor -> its operations (rows of `envclone.operations`), in table order.
-- @table by_vendor
ops.by_vendor = {}

for _, op in ipairs(envclone.operations) do
  if not ops.by_vendor[op.vendor] then
    ops.vendors[#ops.vendors + 1] = op.vendor
    ops.by_vendor[op.vendor] = {}
  end
  table.insert(ops.by_vendor[op.vendor], op)
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
  return envclone.waiters[op.vendor .. "." .. op.name] ~= nil
end

return ops
