-- The README demo: one clone in each of the four vendors, then the Kontent
-- clone read back once its cloning is done. Runs against the emulator
-- (scripts/demo.sh starts it) unless real credentials are set.
package.path = "examples/?.lua;" .. package.path
local envclone = require("envclone")
local support = require("support")
local seed = support.seed
local stamp = tostring(os.time())

print(envclone._VERSION .. " demo")

local versori = envclone.versori(support.options("versori"))
local project = support.check("versori  clone_environment", versori:clone_environment{
  organisation_id = support.id("VERSORI_ORG", seed.versori.organisation_id),
  project_id = support.id("VERSORI_PROJECT", seed.versori.project_id),
  oldEnvName = "staging", newEnvName = "demo-" .. stamp, cloneSystems = true,
})
print(("          project %s now has %d environments"):format(project.name, #project.environments))

local qovery = envclone.qovery(support.options("qovery"))
local app = support.check("qovery   clone_application", qovery:clone_application{
  applicationId = support.id("QOVERY_APPLICATION", seed.qovery.application_id),
  environment_id = support.id("QOVERY_ENVIRONMENT", seed.qovery.environment_id),
  name = "web-demo-" .. stamp,
})
print("          application " .. app.name .. " " .. app.id)

local droplit = envclone.droplit(support.options("droplit"))
local denv = support.check("droplit  create_environment", droplit:create_environment{
  ecosystemId = support.id("DROPLIT_ECOSYSTEM", seed.droplit.ecosystem_id),
  alias = "demo_" .. stamp, meta = { purpose = "demo" },
})
print("          environment " .. denv.id)

local kontent = envclone.kontent(support.options("kontent"))
-- the heading goes first: the progress lines below print while the call runs
print("kontent  clone_environment (wait = true): cloning")
local clone, state = support.check("kontent  clone_environment (wait = true)", kontent:clone_environment{
  environment_id = support.id("KONTENT_ENVIRONMENT", seed.kontent.environment_id),
  name = "Demo " .. stamp,
  copy_data_options = { content_items_assets = true, content_item_version_history = false },
  wait = true, wait_interval = 0.5,
  on_progress = function(s, elapsed)
    print(("          cloning: %s after %.1f s"):format(s and s.cloning_state or "?", elapsed))
  end,
})
print("          cloning state: " .. state.cloning_state)
local info = support.check("kontent  get_environment", kontent:get_environment{ environment_id = clone.id })
print(("          %s / %s, production: %s"):format(info.name, info.environment, tostring(info.is_production)))

-- and one error, to show what they look like
local _, err = kontent:delete_environment{ environment_id = seed.kontent.environment_id }
print("an expected error: " .. tostring(err))

for _, c in ipairs{ versori, qovery, droplit, kontent } do c:close() end
print("demo finished")
