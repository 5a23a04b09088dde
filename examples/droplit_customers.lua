-- A Droplit environment per customer, carrying the customer's metadata, for
-- onboarding scripts:
--
--   lua5.4 examples/droplit_customers.lua customers.json
--
-- customers.json: [{"id": "acme", "name": "Acme Ltd", "plan": "gold", "region": "eu"}, ...]
-- Each environment's alias is "customer_<id>", so a second run finds the
-- customers it already onboarded (Droplit answers 400 "Alias Exists") and
-- skips them. With no file, a demo list, run twice (what ctest runs).
--
-- Real API: DROPLIT_TOKEN and DROPLIT_ECOSYSTEM; otherwise the local emulator.
package.path = "examples/?.lua;" .. package.path
local cjson = require("cjson")
local envclone = require("envclone")
local support = require("support")

local ecosystem = support.id("DROPLIT_ECOSYSTEM", support.seed.droplit.ecosystem_id)
local droplit = envclone.droplit(support.options("droplit"))

local function onboard(customers)
  local made = 0
  for _, c in ipairs(customers) do
    local env, err = droplit:create_environment{
      ecosystemId = ecosystem,
      alias = "customer_" .. c.id, -- Droplit aliases: 1-24 of a-z, A-Z, 0-9, _
      meta = { customer = c.name, plan = c.plan, region = c.region,
        contacts = envclone.array(c.contacts or {}), -- [] even when empty
        onboarded = os.date("!%Y-%m-%dT%H:%M:%SZ") },
    }
    if env then
      made = made + 1
      print(("  %-18s %s"):format(c.id, env.id))
    elseif err.kind == "http" and err.status == 400 and err.code == "Alias Exists" then
      print(("  %-18s onboarded already"):format(c.id))
    else
      support.check("create_environment " .. c.id, nil, err)
    end
  end
  return made
end

if arg[1] then
  local f = assert(io.open(arg[1], "r"))
  local customers = cjson.decode(f:read("a"))
  f:close()
  print(onboard(customers) .. " new environments")
else
  local customers = {
    { id = "acme", name = "Acme Ltd", plan = "gold", region = "eu", contacts = { "ops@acme.example" } },
    { id = "globex", name = "Globex", plan = "silver", region = "us" },
  }
  print("first run: " .. onboard(customers) .. " new environments")
  local again = onboard(customers)
  print("second run: " .. again .. " new environments")
  if again ~= 0 then support.check("re-run", nil, "created environments twice") end
end
droplit:close()
