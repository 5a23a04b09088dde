-- Kontent.ai preview environments for many branches at once, as a nightly
-- job that rebuilds every open pull request's preview:
--
--   lua5.4 examples/kontent_previews_batch.lua feature/login fix/typo release/2.1
--
-- One batch (envclone.batch) clones the source environment once per branch,
-- waits for each clone and renames it when it is ready: the clones, their
-- waits and the renames progress together on one thread, and Kontent's limits
-- (10 requests/s, 400/min, one at a time per environment) are kept by the
-- client. A second batch deletes them again (what a "branches merged" job
-- does). One branch failing never stops the others; each gets its own line.
-- With no arguments it plays five branches (what ctest runs).
--
-- Real API: KONTENT_API_KEY and KONTENT_ENVIRONMENT (the environment to
-- clone); otherwise the local emulator.
package.path = "examples/?.lua;" .. package.path
local envclone = require("envclone")
local support = require("support")

local kontent = envclone.kontent(support.options("kontent"))
local source = support.id("KONTENT_ENVIRONMENT", support.seed.kontent.environment_id)
local branches = { ... }
if #branches == 0 then branches = { "feature/login", "feature/search", "fix/typo", "release/2.1", "docs/api" } end

local open = envclone.batch{ max_in_flight = 8, on_progress = function(done, total, i, result)
  print(("[%d/%d] %-16s %s"):format(done, total, branches[i],
    result.ok and ("ready: " .. result.value.id) or ("failed: " .. tostring(result.err))))
end }
for _, branch in ipairs(branches) do
  open:add(function()
    local clone = assert(kontent:clone_environment{ environment_id = source,
      name = ("preview: %s (cloning)"):format(branch):sub(1, 200), wait = true, wait_timeout = 900, wait_interval = 1 })
    assert(kontent:rename_environment{ environment_id = clone.id, name = ("preview: %s"):format(branch):sub(1, 200) })
    return clone
  end)
end
local opened = open:run()
print(("%d previews ready, %d failed"):format(opened.succeeded, opened.failed))

local close = envclone.batch()
for _, r in ipairs(opened) do
  if r.ok then close:add(kontent, "delete_environment", { environment_id = r.value.id }) end
end
local closed = close:run()
print(("%d previews deleted, %d failed"):format(closed.succeeded, closed.failed))
kontent:close()
if opened.failed > 0 or closed.failed > 0 then os.exit(1) end
