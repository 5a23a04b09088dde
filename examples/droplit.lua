-- Create a Droplit environment with an alias and metadata.
-- Real API: DROPLIT_TOKEN, DROPLIT_ECOSYSTEM; otherwise the emulator.
package.path = "examples/?.lua;" .. package.path
local envclone = require("envclone")
local support = require("support")

local droplit = envclone.droplit(support.options("droplit"))
local env = support.check("create_environment", droplit:create_environment{
  ecosystemId = support.id("DROPLIT_ECOSYSTEM", support.seed.droplit.ecosystem_id),
  alias = "lab_" .. os.time(),
  meta = { owner = "platform-team", rooms = envclone.array{ "lab", "office" } },
})
print("  " .. env.id .. " created " .. env.createdAt)
droplit:close()
