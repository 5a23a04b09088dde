-- Clone a Qovery application into an environment.
-- Real API: QOVERY_TOKEN, QOVERY_APPLICATION, QOVERY_ENVIRONMENT;
-- otherwise the emulator (ENVCLONE_EMULATOR_URL).
package.path = "examples/?.lua;" .. package.path
local envclone = require("envclone")
local support = require("support")

local qovery = envclone.qovery(support.options("qovery"))
local seed = support.seed.qovery
local app = support.check("clone_application", qovery:clone_application{
  applicationId = support.id("QOVERY_APPLICATION", seed.application_id),
  environment_id = support.id("QOVERY_ENVIRONMENT", seed.environment_id),
  name = "web-preview-" .. os.time(),
})
print("  " .. app.name .. " -> " .. app.id)
qovery:close()
