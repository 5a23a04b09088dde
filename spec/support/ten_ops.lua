--- Test helper: all ten operations, once each, in an order the emulator
-- accepts from its seed state (a Kontent clone is waited for, renamed and
-- made production, so the seed environment can then be deleted), plus the
-- waiter. Plain Lua 5.1-5.4: the libcurl specs and the nginx handlers
-- (cosockets) run the same tour.
--
--    local tour = require("spec.support.ten_ops")
--    local steps = tour.run(clients, seed, "tag")  -- clients: { versori =, qovery =, kontent =, droplit = }
--    -- steps[i] = { name = "kontent.clone_environment", ok = true|false, err = "..." }
-- @module spec.support.ten_ops
local M = {}

--- The operations the tour calls, "vendor.name", in order (the waiter as
-- "kontent.wait_for_cloning").
M.names = {
  "versori.clone_environment", "versori.create_connection_version", "qovery.clone_application",
  "droplit.create_environment", "kontent.clone_environment", "kontent.wait_for_cloning",
  "kontent.get_cloning_state", "kontent.get_environment", "kontent.rename_environment",
  "kontent.mark_environment_as_production", "kontent.delete_environment",
}

--- Runs the tour; a step that fails does not stop the ones that do not need it.
-- @tparam table c clients by vendor
-- @tparam table seed the emulator's seed (`emu.seed`)
-- @tparam string tag makes names unique (letters and digits)
-- @treturn table the steps, in order
function M.run(c, seed, tag)
  local steps = {}
  local function step(name, res, err)
    steps[#steps + 1] = { name = name, ok = res ~= nil, err = err ~= nil and tostring(err) or nil }
    return res
  end
  local v, q, k, d = c.versori, c.qovery, c.kontent, c.droplit
  step("versori.clone_environment", v:clone_environment{ organisation_id = seed.versori.organisation_id,
    project_id = seed.versori.project_id, oldEnvName = "staging", newEnvName = "tls-" .. tag })
  step("versori.create_connection_version", v:create_connection_version{
    organisation_id = seed.versori.organisation_id, connection_id = seed.versori.connection_id,
    name = "tls-" .. tag })
  step("qovery.clone_application", q:clone_application{ applicationId = seed.qovery.application_id,
    environment_id = seed.qovery.environment_id, name = "tls-" .. tag })
  step("droplit.create_environment", d:create_environment{ ecosystemId = seed.droplit.ecosystem_id,
    alias = "tls_" .. tag })
  local clone = step("kontent.clone_environment", k:clone_environment{
    environment_id = seed.kontent.environment_id, name = "TLS " .. tag })
  local id = clone and clone.id or "00000000-0000-4000-8000-000000000000"
  step("kontent.wait_for_cloning", k:wait_for_cloning{ environment_id = id, interval = 0.1, timeout = 20 })
  step("kontent.get_cloning_state", k:get_cloning_state{ environment_id = id })
  step("kontent.get_environment", k:get_environment{ environment_id = id })
  step("kontent.rename_environment", k:rename_environment{ environment_id = id, name = "TLS renamed " .. tag })
  step("kontent.mark_environment_as_production", k:mark_environment_as_production{ environment_id = id,
    enable_webhooks = false })
  -- the seed environment is no longer production: it may go
  step("kontent.delete_environment", k:delete_environment{ environment_id = seed.kontent.environment_id })
  return steps
end

--- The steps that failed, as "name: error" lines ("" when none did).
-- @tparam table steps
-- @treturn string
function M.failures(steps)
  local out = {}
  for _, s in ipairs(steps) do
    if not s.ok then out[#out + 1] = s.name .. ": " .. tostring(s.err) end
  end
  return table.concat(out, "\n")
end

return M
