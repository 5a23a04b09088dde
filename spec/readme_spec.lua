-- The README's operations table is a view of the operation table
-- (envclone.operations): every operation is listed once, with its method
-- and path, and nothing else is. An 11th operation is its row, its emulator
-- route and its spec; this spec then says the README has to follow.
local envclone = require("envclone")

local function readme_rows()
  local f = assert(io.open("README.md"))
  local text = f:read("*a")
  f:close()
  local section = assert(text:match("\n### Operations\n(.-)\n### "), "README: no Operations section")
  local rows = {}
  for line in section:gmatch("[^\n]+") do
    local vendor, name, rest = line:match("^| `(%w+):([%w_]+){}` | (.-) |")
    if vendor then rows[#rows + 1] = { key = vendor .. "." .. name, request = rest } end
  end
  return rows
end

describe("README operations table", function()
  it("lists every operation of the table, with its method and path, once", function()
    local listed = {}
    for _, r in ipairs(readme_rows()) do
      assert.is_nil(listed[r.key], r.key .. " is listed twice")
      listed[r.key] = r.request
    end
    for _, op in ipairs(envclone.operations) do
      local key = op.vendor .. "." .. op.name
      local request = listed[key]
      assert.is_not_nil(request, key .. " is missing from the README")
      assert.are.equal(op.method .. " `" .. op.path .. "`", request:match("^(%u+ `[^`]*`)"), key)
      listed[key] = nil
    end
    -- what is left must be a waiter (a method the operation table names, not an operation)
    local waiters = {}
    for _, name in pairs(envclone.waiters) do waiters[name] = true end
    for key in pairs(listed) do
      assert.is_true(waiters[key:match("%.(.*)$")] == true, key .. " is in the README but not an operation")
    end
  end)
end)
