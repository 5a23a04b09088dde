-- Builds the LDoc reference and checks that it documents every public function.
--
--   lua5.4 scripts/docs.lua SOURCE_DIR BUILD_DIR html    -- BUILD_DIR/doc/index.html
--   lua5.4 scripts/docs.lua SOURCE_DIR BUILD_DIR check   -- exit 1 when anything is undocumented
--
-- Needs the built core (BUILD_DIR/envclone/core.so) and `ldoc` (Debian lua-ldoc).
-- Both modes first stage the reference's sources in BUILD_DIR/doc-src:
--   * every lua/envclone/*.lua and lua/envclone/cli/*.lua (new modules are
--     picked up with no change here), and the emulator's entry modules
--     (lua/envclone/emulator/init.lua and main.lua; its internals are left out);
--   * doc/*.luadoc (the C core's exports, written by hand);
--   * clients.luadoc, generated from the operation table: one method per
--     operation with its fields, so the reference cannot drift from the table.
-- `check` then asks LDoc what it documented (scripts/ldoc_items.lua) and
-- compares that with what the modules export, found by loading them:
--   * each staged module declares `@module` with its require name;
--   * each function in a module's table (names starting with "_" are
--     private) is documented in that module;
--   * each method of a vendor client (envclone.versori{} ...) is documented
--     as `vendor:method` or, for methods all clients share, `Client.method`;
--   * each function of envclone.core and each method of its client handle
--     (`client:method`) is documented in doc/core.luadoc;
--   * no documented item has an empty summary, and LDoc warns about nothing.
local src, build, mode = arg[1], arg[2], arg[3]
if not (src and build and (mode == "html" or mode == "check")) then
  io.stderr:write("usage: lua5.4 scripts/docs.lua SOURCE_DIR BUILD_DIR html|check\n")
  os.exit(2)
end
-- absolute paths: LDoc names files by their absolute path
local function absolute(p)
  if p:sub(1, 1) == "/" then return p end
  local pwd = assert(io.popen("pwd")):read("l")
  return pwd .. "/" .. p
end
src, build = absolute(src), absolute(build)
package.path = src .. "/lua/?.lua;" .. src .. "/lua/?/init.lua;" .. package.path
package.cpath = build .. "/?.so;" .. package.cpath

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function sh(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("a")
  f:close()
  return text
end

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local function list(pattern)
  local p = assert(io.popen("ls -1 " .. pattern .. " 2>/dev/null"))
  local out = {}
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  return out
end

-- ---- stage --------------------------------------------------------------

local stage = build .. "/doc-src"
assert(sh("rm -rf " .. q(stage) .. " && mkdir -p " .. q(stage .. "/envclone")))

-- staged file -> the module name it must declare
local expected = {}
for _, path in ipairs(list(q(src) .. "/lua/envclone/*.lua")) do
  local base = path:match("([^/]+)%.lua$")
  local name = base == "init" and "envclone" or "envclone." .. base
  write(stage .. "/envclone/" .. base .. ".lua", read(path))
  expected[name] = "lua/envclone/" .. base .. ".lua"
end
assert(sh("mkdir -p " .. q(stage .. "/envclone/cli")))
for _, path in ipairs(list(q(src) .. "/lua/envclone/cli/*.lua")) do
  local base = path:match("([^/]+)%.lua$")
  write(stage .. "/envclone/cli/" .. base .. ".lua", read(path))
  expected[base == "init" and "envclone.cli" or "envclone.cli." .. base] = "lua/envclone/cli/" .. base .. ".lua"
end
assert(sh("mkdir -p " .. q(stage .. "/envclone/emulator")))
-- the emulator's entry modules: { module, source, staged as }
for _, e in ipairs({ { "envclone.emulator", "lua/envclone/emulator/init.lua", "emulator.lua" },
                     { "envclone.emulator.main", "lua/envclone/emulator/main.lua", "emulator/main.lua" } }) do
  if io.open(src .. "/" .. e[2]) then
    write(stage .. "/envclone/" .. e[3], read(src .. "/" .. e[2]))
    expected[e[1]] = e[2]
  end
end
for _, path in ipairs(list(q(src) .. "/doc/*.luadoc")) do
  write(stage .. "/" .. path:match("([^/]+)$"), read(path))
end

local envclone = require("envclone")

-- The vendors' words go into HTML as they are: escape what HTML would eat
-- ("string<ulid>").
local function html_text(text)
  return (text:gsub("[&<>]", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;" }))
end

-- One LDoc comment line per fact of a field.
local function field_doc(f, prefix)
  local facts = { f.required and "required" or "optional", f.type }
  if f["in"] == "path" then facts[#facts + 1] = "in the path (percent-encoded)" end
  if f["in"] == "header" then facts[#facts + 1] = "sent as the `" .. tostring(f.wire) .. "` header" end
  if f.format then facts[#facts + 1] = f.format end
  if f.min_len and f.max_len and not f.format then
    facts[#facts + 1] = f.min_len .. "-" .. f.max_len .. " characters"
  end
  if f.max_items then facts[#facts + 1] = "at most " .. f.max_items .. " items" end
  if f.max_depth then facts[#facts + 1] = "nested at most " .. f.max_depth .. " deep" end
  if f.reserved then facts[#facts + 1] = "not `" .. table.concat(f.reserved, "` or `") .. "`" end
  local text = table.concat(facts, ", ") .. "." .. (f.description and (" " .. html_text(f.description)) or "")
  local ltype = ({ string = "string", boolean = "boolean" })[f.type] or "table"
  local lines = { "-- @tparam" .. (f.required and "" or "[opt]") .. " " .. ltype .. " " .. prefix .. f.name .. " "
    .. text:gsub("\n", " ") }
  for _, m in ipairs(f.members or {}) do
    for _, l in ipairs(field_doc(m, prefix .. f.name .. ".")) do lines[#lines + 1] = l end
  end
  return lines
end

local function generate_clients()
  local out = { [[
--- The client objects that `envclone.versori{}`, `envclone.qovery{}`,
-- `envclone.kontent{}` and `envclone.droplit{}` return (not a module to
-- require). One method per row of the operation table (src/ec_ops.c); this
-- page is generated from that table, so it always matches what the methods
-- validate.
--
-- Every method takes one table: the vendor's own field names (path
-- parameters included) and the call options `retry` (a policy table or
-- false, see `envclone.retry`); operations with a waiter also take `wait`
-- (boolean), `wait_timeout` and `wait_interval` (seconds) and
-- `on_progress`. It returns the decoded JSON answer (JSON null is
-- `envclone.null`), or `true` for an empty answer; or nil and an error
-- object: kind "validation" (nothing was sent), "http" (the vendor's error
-- body parsed: `status`, `code`, `message`, `request_id`), "transport",
-- "timeout" or "decode"; `maybe_applied` is true when a create may have
-- happened on the server. Bad argument types or a closed client raise.
-- @module envclone.clients
]] }
  local seen = {}
  for _, op in ipairs(envclone.operations) do
    if not seen[op.vendor] then
      seen[op.vendor] = true
      out[#out + 1] = "\n--- A " .. op.vendor .. " client, from `envclone." .. op.vendor .. "{}`.\n-- @type "
        .. op.vendor .. "\n"
    end
    local summary = op.summary or op.description
    local lines = { "", "--- " .. html_text(summary or (op.method .. " " .. op.path .. ".")):gsub("\n", " ") }
    if summary then lines[#lines + 1] = "-- `" .. op.method .. " " .. op.path .. "`." end
    if op.page then lines[#lines + 1] = "-- Vendor page: " .. op.page end
    if type(op.auth) == "table" and op.auth[1] then
      local ways = {}
      for _, way in ipairs(op.auth) do
        ways[#ways + 1] = "`" .. way.credential .. "` (" .. tostring(way.scheme) .. ")"
      end
      lines[#lines + 1] = "-- Credential: " .. table.concat(ways, " or ") .. "."
    end
    if type(op.success) == "table" and op.success[1] then
      lines[#lines + 1] = "-- Success: HTTP " .. table.concat(op.success, ", ") .. "."
    end
    if op.creates then
      lines[#lines + 1] = "-- Creates: retried only when the request surely did not reach the server."
    end
    local waiter = envclone.waiters[op.vendor .. "." .. op.name]
    if waiter then
      lines[#lines + 1] = "-- With `wait = true` it then waits with `" .. op.vendor .. ":" .. waiter
        .. "` and returns the answer and the final state."
    end
    lines[#lines + 1] = "-- @function " .. op.vendor .. ":" .. op.name
    lines[#lines + 1] = "-- @tparam table args"
    for _, f in ipairs(op.fields) do
      for _, l in ipairs(field_doc(f, "args.")) do lines[#lines + 1] = l end
    end
    lines[#lines + 1] = "-- @return[1] the decoded answer, or `true` when it is empty"
    lines[#lines + 1] = "-- @return[2] nil"
    lines[#lines + 1] = "-- @treturn[2] table error (see above)"
    out[#out + 1] = table.concat(lines, "\n") .. "\n"
  end
  return table.concat(out)
end
write(stage .. "/clients.luadoc", generate_clients())
expected["envclone.clients"] = "(generated from the operation table)"

local ldoc_config = src .. "/config.ld"

if mode == "html" then
  local dir = build .. "/doc"
  if not sh("ldoc -c " .. q(ldoc_config) .. " -d " .. q(dir) .. " " .. q(stage)) then os.exit(1) end
  print("envclone reference: " .. dir .. "/index.html")
  os.exit(0)
end

-- ---- check --------------------------------------------------------------

local p = assert(io.popen("LUA_PATH=" .. q(src .. "/scripts/?.lua;;") .. " ldoc -c " .. q(ldoc_config)
  .. " --filter ldoc_items.list " .. q(stage) .. " 2>&1"))
local documented, summaries, warnings = {}, {}, {}
for line in p:lines() do
  local mod, item, len = line:match("^([^\t]+)\t([^\t]*)\t(%d+)$")
  if mod then
    documented[mod] = documented[mod] or {}
    if item ~= "" then documented[mod][item] = true end
    summaries[#summaries + 1] = { mod, item, tonumber(len) }
  else
    warnings[#warnings + 1] = line
  end
end
local ok_ldoc = p:close()

local problems = {}
local function problem(fmt, ...) problems[#problems + 1] = string.format(fmt, ...) end

if not ok_ldoc then problem("ldoc failed:\n%s", table.concat(warnings, "\n")) end
-- LDoc's own warnings (a @param naming no argument, an argument left out...)
-- are documentation errors too
for _, w in ipairs(warnings) do
  if w:find("%S") and not w:find("^reading configuration") then
    -- name the source file, not its staged copy
    if w:sub(1, #stage + 1) == stage .. "/" then w = w:sub(#stage + 2):gsub("^envclone/", "lua/envclone/") end
    problem("ldoc: %s", w)
  end
end

for name, file in pairs(expected) do
  if not documented[name] then problem("%s: no LDoc module comment declaring @module %s", file, name) end
end
for _, s in ipairs(summaries) do
  if s[3] == 0 then problem("%s: %s has an empty LDoc summary", s[1], s[2] == "" and "the module" or s[2]) end
end

local function check_table(modname, t, what)
  local names = {}
  for k, v in pairs(t) do
    if type(k) == "string" and k:sub(1, 1) ~= "_" and type(v) == "function" then names[#names + 1] = k end
  end
  table.sort(names)
  for _, k in ipairs(names) do
    local d = documented[modname] or {}
    if not (d[k] or d[modname .. "." .. k]) then
      problem("%s: %s %s.%s is not documented", expected[modname] or modname, what, modname, k)
    end
  end
  return #names
end

local counted = 0
for name in pairs(expected) do
  if name ~= "envclone.clients" then
    local ok, mod = pcall(require, name)
    if not ok then
      problem("%s: cannot load %s to list its functions: %s", expected[name], name, tostring(mod))
    elseif type(mod) == "table" then
      counted = counted + check_table(name, mod, "function")
    end
  end
end

-- the vendor clients' methods
local any = {}
for _, d in pairs(documented) do for item in pairs(d) do any[item] = true end end
local creds = { token = "docs-check-token", cookie = "session=docs-check-cookie", api_key = "docs-check-api-key" }
for vendor, info in pairs(require("envclone.core").vendors) do
  local opts = { base_url = "http://127.0.0.1:9" }
  for _, c in ipairs(info.credentials) do opts[c] = creds[c] end
  local client = envclone[vendor](opts)
  local methods = getmetatable(client).__index
  for k, v in pairs(methods) do
    if type(v) == "function" and k:sub(1, 1) ~= "_" then
      counted = counted + 1
      if not (any[vendor .. ":" .. k] or (documented.envclone or {})["Client." .. k]) then
        problem("the %s client's method %s:%s is not documented", vendor, vendor, k)
      end
    end
  end
  client:close()
end

-- the C core
local core = require("envclone.core")
counted = counted + check_table("envclone.core", core, "C function")
local handle = core.client("kontent", { api_key = creds.api_key, base_url = "http://127.0.0.1:9" })
for k, v in pairs(getmetatable(handle).__index) do
  if type(v) == "function" then
    counted = counted + 1
    if not (documented["envclone.core"] or {})["client:" .. k] then
      problem("envclone.core: the client handle's method client:%s is not documented (doc/core.luadoc)", k)
    end
  end
end
handle:close()

if #problems > 0 then
  table.sort(problems)
  io.stderr:write("undocumented:\n  ", table.concat(problems, "\n  "), "\n")
  os.exit(1)
end
print(string.format("docs: %d public functions and methods, all documented", counted))
