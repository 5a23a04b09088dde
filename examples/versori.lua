-- Clone a Versori environment, then cut a new connection version.
-- Real API: VERSORI_TOKEN, VERSORI_COOKIE, VERSORI_ORG, VERSORI_PROJECT,
-- VERSORI_CONNECTION; otherwise the emulator (ENVCLONE_EMULATOR_URL).
package.path = "examples/?.lua;" .. package.path
local envclone = require("envclone")
local support = require("support")

local versori = envclone.versori(support.options("versori"))
local seed = support.seed.versori
local org = support.id("VERSORI_ORG", seed.organisation_id)

local project = support.check("clone_environment", versori:clone_environment{
  organisation_id = org,
  project_id = support.id("VERSORI_PROJECT", seed.project_id),
  oldEnvName = "staging",
  newEnvName = "staging-copy-" .. os.time(),
  cloneSystems = true,
})
for _, env in ipairs(project.environments) do
  print(("  %-28s %s"):format(env.name, env.status))
end

local version = support.check("create_connection_version", versori:create_connection_version{
  organisation_id = org,
  connection_id = support.id("VERSORI_CONNECTION", seed.connection_id),
  name = "v" .. os.time(),
  fromVersion = seed.version,
})
print("  version " .. version.name .. (version.isLatest and " (latest)" or ""))
versori:close()
