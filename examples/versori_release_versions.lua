-- Versori connection versions from release tags: one connection version per
-- vX.Y.Z tag, oldest first, each made from the one before, so the
-- connection's history follows the releases.
--
--   lua5.4 examples/versori_release_versions.lua $(git tag --list 'v*')
--
-- Re-running is safe: a version that exists already (Versori answers 409,
-- code version_exists) is skipped. Tags that are not vX.Y.Z are ignored.
-- With no tags given, a demo list, run twice to show the second run
-- changes nothing (what ctest runs).
--
-- Real API: VERSORI_COOKIE, VERSORI_ORG, VERSORI_CONNECTION and
-- VERSORI_FROM_VERSION (the version the first tag starts from); otherwise the
-- local emulator.
package.path = "examples/?.lua;" .. package.path
local envclone = require("envclone")
local support = require("support")

local seed = support.seed.versori
local org = support.id("VERSORI_ORG", seed.organisation_id)
local connection = support.id("VERSORI_CONNECTION", seed.connection_id)

-- "v1.10.0" sorts after "v1.9.2": compare the numbers, not the text
local function semver(tag)
  local a, b, c = tag:match("^v(%d+)%.(%d+)%.(%d+)$")
  if a then return { tonumber(a), tonumber(b), tonumber(c) } end
end

local function releases(tags)
  local out = {}
  for _, tag in ipairs(tags) do
    local v = semver(tag)
    if v then out[#out + 1] = { tag = tag, v = v } end
  end
  table.sort(out, function(x, y)
    for i = 1, 3 do
      if x.v[i] ~= y.v[i] then return x.v[i] < y.v[i] end
    end
    return false
  end)
  return out
end

local versori = envclone.versori(support.options("versori"))

local function sync(tags)
  local from = support.id("VERSORI_FROM_VERSION", seed.version)
  local made = 0
  for _, r in ipairs(releases(tags)) do
    local version, err = versori:create_connection_version{
      organisation_id = org, connection_id = connection, name = r.tag, fromVersion = from,
    }
    if version then
      made = made + 1
      print(("  %-10s created from %s"):format(r.tag, from))
    elseif err.kind == "http" and err.status == 409 and err.code == "version_exists" then
      print(("  %-10s exists"):format(r.tag))
    else
      support.check("create_connection_version " .. r.tag, nil, err)
    end
    from = r.tag
  end
  return made
end

if #arg > 0 then
  print(sync(arg) .. " new versions")
else
  local tags = { "v1.2.0", "v1.10.0", "v1.9.2", "nightly", "v1.0.0" }
  print("first run: " .. sync(tags) .. " new versions")
  local again = sync(tags)
  print("second run: " .. again .. " new versions")
  if again ~= 0 then support.check("re-run", nil, "created versions twice") end
end
versori:close()
