--- The mixed creates of the exactly-once tests (spec/exactly_once_spec.lua,
-- spec/nginx/exactly_once_*.lua): the i-th create of a run over Versori
-- environments, Versori versions, Qovery applications and Droplit aliases,
-- and the emulator's count of what a run made.
-- @module spec.support.creates
local M = {}

--- The i-th create of the run tagged `tag`: client, operation name, arguments.
-- @tparam table c clients by vendor (versori, qovery, droplit)
-- @tparam integer i
-- @tparam string tag the run's prefix of every key
-- @tparam table seed the emulator's seed ids
function M.mixed(c, i, tag, seed)
  local k = i % 4
  if k == 0 then
    return c.versori, "clone_environment", { organisation_id = seed.versori.organisation_id,
      project_id = seed.versori.project_id, oldEnvName = "production", newEnvName = tag .. "-v-" .. i }
  elseif k == 1 then
    return c.versori, "create_connection_version", { organisation_id = seed.versori.organisation_id,
      connection_id = seed.versori.connection_id, name = tag .. "-ver-" .. i }
  elseif k == 2 then
    return c.qovery, "clone_application", { applicationId = seed.qovery.application_id,
      environment_id = seed.qovery.environment_id, name = tag .. "-q-" .. i }
  end
  return c.droplit, "create_environment", { ecosystemId = seed.droplit.ecosystem_id, alias = tag .. "_d_" .. i }
end

--- The objects of the run tagged `tag` the emulator holds (its
-- /_emulator/objects view): how many, the keys made more than once, and
-- key -> count. A Qovery application in state DELETED counts as gone (it
-- answers 404 a moment later).
-- @tparam table objects the decoded /_emulator/objects answer
-- @tparam table seed
-- @tparam string tag
-- @treturn integer, table, table
function M.made(objects, seed, tag)
  local counts, dups, total = {}, {}, 0
  local function add(name, n)
    if name:find(tag, 1, true) == 1 then
      counts[name] = (counts[name] or 0) + n
      total = total + n
      if counts[name] > 1 then dups[#dups + 1] = name end
    end
  end
  for name, n in pairs(objects.versori.projects[seed.versori.project_id].names) do add(name, n) end
  for name, n in pairs(objects.versori.connections[seed.versori.connection_id].names) do add(name, n) end
  for _, app in ipairs(objects.qovery.environments[seed.qovery.environment_id].applications) do
    if app.state ~= "DELETED" then add(app.name, 1) end
  end
  for name, n in pairs(objects.droplit.ecosystems[seed.droplit.ecosystem_id].aliases) do add(name, n) end
  return total, dups, counts
end

return M
