-- A Kontent.ai preview environment per Git branch, as a CI job runs it:
--
--   lua5.4 examples/kontent_preview.lua open  feature/login   # branch pushed
--   lua5.4 examples/kontent_preview.lua close feature/login   # branch merged or deleted
--
-- `open` clones the source environment as "preview: BRANCH (cloning)", waits
-- until Kontent has copied it, then renames it to "preview: BRANCH" so people
-- can tell a ready preview from one still copying. `close` deletes it. A
-- second `open` of the same branch keeps the environment it has. The branch
-- -> environment id map is a JSON file, $PREVIEW_STATE (default
-- .kontent-previews.json). With no arguments the script plays both events for
-- one branch (what ctest runs).
--
-- Real API: KONTENT_API_KEY and KONTENT_ENVIRONMENT (the environment to
-- clone, usually production); otherwise the local emulator.
package.path = "examples/?.lua;" .. package.path
local cjson = require("cjson")
local envclone = require("envclone")
local support = require("support")

local kontent = envclone.kontent(support.options("kontent"))
local source = support.id("KONTENT_ENVIRONMENT", support.seed.kontent.environment_id)
local state_path = os.getenv("PREVIEW_STATE") or ".kontent-previews.json"

local function load_state(path)
  local f = io.open(path, "r")
  if not f then return {} end
  local state = cjson.decode(f:read("a"))
  f:close()
  return state
end

local function save_state(path, state)
  local f = assert(io.open(path, "w"))
  f:write(cjson.encode(state), "\n")
  f:close()
end

-- Kontent names are 1-200 characters: long branch names are shortened.
local function env_name(branch, suffix)
  local name = "preview: " .. branch
  return name:sub(1, 200 - #(suffix or "")) .. (suffix or "")
end

local function open(branch, state)
  local id = state[branch]
  if id then
    local env = kontent:get_environment{ environment_id = id }
    if env then
      print(("%s: preview %s already open as '%s'"):format(branch, id, env.environment))
      return id
    end
  end
  local clone, result = kontent:clone_environment{
    environment_id = source,
    name = env_name(branch, " (cloning)"),
    copy_data_options = { content_items_assets = true, content_item_version_history = false },
    wait = true, wait_timeout = 900, wait_interval = 1,
    on_progress = function(s, elapsed) print(("  %-12s %5.1f s"):format(s and s.cloning_state or "?", elapsed)) end,
  }
  if not clone then
    -- a clone that was created but did not finish in time is still recorded,
    -- so that `close` can delete it
    if result.created and result.created.id then
      state[branch] = result.created.id
      save_state(state_path, state)
    end
    support.check("clone_environment", nil, result)
  end
  support.check("rename_environment", kontent:rename_environment{ environment_id = clone.id, name = env_name(branch) })
  print(("%s: preview %s ready"):format(branch, clone.id))
  return clone.id
end

local function close(branch, state)
  local id = state[branch]
  if not id then
    print(branch .. ": no preview")
    return
  end
  local ok, err = kontent:delete_environment{ environment_id = id }
  if not ok and not (err.kind == "http" and err.status == 404) then support.check("delete_environment", nil, err) end
  print(("%s: preview %s deleted"):format(branch, id))
end

local command, branch = arg[1], arg[2]
if command == nil then
  -- demo: the branch is pushed twice, then merged
  state_path = os.tmpname()
  local state = {}
  for _ = 1, 2 do
    state["feature/login"] = open("feature/login", state)
    save_state(state_path, state)
  end
  local env = support.check("get_environment", kontent:get_environment{ environment_id = state["feature/login"] })
  if env.environment ~= env_name("feature/login") then
    support.check("the renamed preview", nil, "named '" .. tostring(env.environment) .. "'")
  end
  close("feature/login", load_state(state_path))
  os.remove(state_path)
elseif (command == "open" or command == "close") and branch then
  local state = load_state(state_path)
  if command == "open" then state[branch] = open(branch, state) else close(branch, state); state[branch] = nil end
  save_state(state_path, state)
else
  io.stderr:write("usage: lua5.4 examples/kontent_preview.lua [open|close BRANCH]\n")
  os.exit(2)
end
kontent:close()
