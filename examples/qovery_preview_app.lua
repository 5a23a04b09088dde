-- Clone a Qovery application into a fresh environment: the pipeline has just
-- made an environment for a pull request (Qovery's own environment clone, or
-- Terraform) and needs the web application in it.
--
--   lua5.4 examples/qovery_preview_app.lua ENVIRONMENT_ID [PR_NUMBER]
--
-- The clone is a create: envclone never sends it twice. When the answer is
-- lost after the request went out (`err.maybe_applied`), the script says so
-- instead of trying again, and exits 3 so the pipeline can look first.
--
-- Real API: QOVERY_TOKEN and QOVERY_APPLICATION (the application to copy);
-- otherwise the local emulator and its seed environment.
package.path = "examples/?.lua;" .. package.path
local envclone = require("envclone")
local support = require("support")

local seed = support.seed.qovery
local target = arg[1] or support.id("QOVERY_ENVIRONMENT", seed.environment_id)
local pr = arg[2] or "42"

local qovery = envclone.qovery(support.options("qovery"))
local app, err = qovery:clone_application{
  applicationId = support.id("QOVERY_APPLICATION", seed.application_id),
  environment_id = target,
  name = "web-pr-" .. pr,
}
qovery:close()
if not app then
  if err.maybe_applied then
    io.stderr:write("the clone may exist already: check environment ", target, " before running again\n  ",
      tostring(err), "\n")
    os.exit(3)
  end
  support.check("clone_application", nil, err)
end
print(("application %s (%s) cloned into environment %s"):format(app.name, app.id, target))
