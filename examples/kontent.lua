-- Clone a Kontent.ai environment, wait for it, rename it, read it back,
-- and delete it again.
-- Real API: KONTENT_API_KEY, KONTENT_ENVIRONMENT; otherwise the emulator.
package.path = "examples/?.lua;" .. package.path
local envclone = require("envclone")
local support = require("support")

local kontent = envclone.kontent(support.options("kontent"))
local source = support.id("KONTENT_ENVIRONMENT", support.seed.kontent.environment_id)

local clone = support.check("clone_environment", kontent:clone_environment{
  environment_id = source,
  name = "Develop " .. os.date("!%Y-%m-%d %H:%M"),
  copy_data_options = { content_items_assets = true, content_item_version_history = false },
})
support.check("wait_for_cloning", kontent:wait_for_cloning{
  environment_id = clone.id, timeout = 600, interval = 0.5,
  on_progress = function(state, elapsed)
    print(("  %-12s %.1f s"):format(state and state.cloning_state or "?", elapsed))
  end,
})
support.check("rename_environment", kontent:rename_environment{ environment_id = clone.id, name = "Develop" })
local info = support.check("get_environment", kontent:get_environment{ environment_id = clone.id })
print(("  %s / %s (production: %s)"):format(info.name, info.environment, tostring(info.is_production)))
support.check("delete_environment", kontent:delete_environment{ environment_id = clone.id })
kontent:close()
