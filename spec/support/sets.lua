--- Test helper for sets (spec/set_spec.lua, spec/set_cli_spec.lua): the
-- 4-vendor, 8-object set against the emulator's seed, client options for an
-- emulator, and counts of a set's objects on the emulator.
-- @module spec.support.sets

local M = {}

--- The 8-object set (every create found again by its key: Kontent with the
-- Subscription API, Droplit with aliases), plus a Kontent rename (an
-- update): two Versori objects, two Qovery applications (api after web),
-- two Kontent environments, two Droplit environments.
-- @tparam table seed the emulator's seed (`e.seed`)
-- @tparam[opt] table extra `{ wait_interval = 0.05 }` and the like, added to the waited objects' args
-- @treturn table the spec (no name: given per run)
function M.spec(seed, extra)
  local V, Q, K, D = seed.versori, seed.qovery, seed.kontent, seed.droplit
  local wait = { wait_interval = 0.05 }
  for k, v in pairs(extra or {}) do wait[k] = v end
  local function with_wait(t)
    for k, v in pairs(wait) do t[k] = v end
    return t
  end
  return { objects = {
    flows = { vendor = "versori", operation = "clone_environment", args = { organisation_id = V.organisation_id,
      project_id = V.project_id, oldEnvName = "production", newEnvName = "{set}" } },
    connection = { vendor = "versori", operation = "create_connection_version", args = {
      organisation_id = V.organisation_id, connection_id = V.connection_id, name = "{set}", fromVersion = V.version } },
    web = { vendor = "qovery", operation = "clone_application", args = with_wait{ applicationId = Q.application_id,
      environment_id = Q.environment_id, name = "web-{set}" } },
    api = { vendor = "qovery", operation = "clone_application", after = { "web" }, args = with_wait{
      applicationId = Q.application_id, environment_id = Q.environment_id, name = "api-{set}" } },
    content = { vendor = "kontent", operation = "clone_environment", client = { subscription_id = K.subscription_id },
      args = with_wait{ environment_id = K.environment_id, name = "{set}" } },
    content_name = { vendor = "kontent", operation = "rename_environment", args = {
      environment_id = "{content.id}", name = "Preview {set}" } },
    assets = { vendor = "kontent", operation = "clone_environment", client = { subscription_id = K.subscription_id },
      args = with_wait{ environment_id = K.environment_id, name = "{set}-assets" } },
    devices = { vendor = "droplit", operation = "create_environment", args = { ecosystemId = D.ecosystem_id,
      alias = "pr{set_id}" } },
    sensors = { vendor = "droplit", operation = "create_environment", args = { ecosystemId = D.ecosystem_id,
      alias = "pr{set_id}_s" } },
  } }
end

--- Client options per vendor for emulator `e` (its URLs and credentials), `extra` laid over each.
function M.client_options(e, extra)
  local out = {}
  for _, v in ipairs{ "versori", "qovery", "kontent", "droplit" } do
    local o = { base_url = e.base_urls[v], timeout = 5 }
    for k, x in pairs(e.extra_base_urls[v] or {}) do o[k] = x end
    for k, x in pairs(e.credentials[v]) do o[k] = x end
    for k, x in pairs(extra or {}) do o[k] = x end
    out[v] = o
  end
  return out
end

--- The objects of set `name` (made by `M.spec`) on the emulator: total,
-- duplicates (names made twice), and count per name.
-- @param e the emulator handle
-- @tparam string name the set's name
-- @treturn integer total
-- @treturn table duplicate names
-- @treturn table name -> count
function M.count(e, seed, name)
  local sid = name:gsub("[^%w_]", "")
  local o = e:control("GET", "objects")
  local counts, dups, total = {}, {}, 0
  local function add(what, n)
    counts[what] = (counts[what] or 0) + n
    total = total + n
    if counts[what] > 1 then dups[#dups + 1] = what end
  end
  local want = { [name] = true, [name .. "-assets"] = true, ["Preview " .. name] = true, ["web-" .. name] = true,
    ["api-" .. name] = true, ["pr" .. sid] = true, ["pr" .. sid .. "_s"] = true }
  for n, c in pairs(o.versori.projects[seed.versori.project_id].names) do if want[n] then add("v:" .. n, c) end end
  for n, c in pairs(o.versori.connections[seed.versori.connection_id].names) do
    if want[n] then add("c:" .. n, c) end
  end
  for _, app in ipairs(o.qovery.environments[seed.qovery.environment_id].applications) do
    if app.state ~= "DELETED" and want[app.name] then add("q:" .. app.name, 1) end
  end
  for _, p in pairs(o.kontent.projects) do
    for n, ids in pairs(p.names) do if want[n] then add("k:" .. n, #ids) end end
  end
  for n, c in pairs(o.droplit.ecosystems[seed.droplit.ecosystem_id].aliases) do
    if want[n] then add("d:" .. n, c) end
  end
  return total, dups, counts
end

return M
