-- A host carries envclone's requests itself: a Kontent.ai clone through the
-- LuaSocket transport of examples/luasocket_transport.lua, with envclone's
-- validation, retries, waiter and error objects unchanged.
-- Real API: KONTENT_API_KEY, KONTENT_ENVIRONMENT; otherwise the emulator
-- (the example transport speaks http only, so a real run needs LuaSec's
-- https in its place).
package.path = "examples/?.lua;" .. package.path
local envclone = require("envclone")
local support = require("support")
local luasocket_transport = require("luasocket_transport")

local opts = support.options("kontent")
opts.transport = luasocket_transport.new()
local kontent = envclone.kontent(opts)
local source = support.id("KONTENT_ENVIRONMENT", support.seed.kontent.environment_id)

local clone = support.check("clone_environment", kontent:clone_environment{
  environment_id = source, name = "Carried by LuaSocket",
})
support.check("wait_for_cloning", kontent:wait_for_cloning{ environment_id = clone.id, timeout = 600, interval = 0.5 })
local info = support.check("get_environment", kontent:get_environment{ environment_id = clone.id })
print(("  %s (production: %s)"):format(info.name, tostring(info.is_production)))
-- bad input is refused before the transport sees anything
local _, err = kontent:get_environment{ environment_id = "not-a-uuid" }
assert(err and err.kind == "validation", "validation error expected")
print("  refused before sending: " .. tostring(err))
support.check("delete_environment", kontent:delete_environment{ environment_id = clone.id })
kontent:close()
