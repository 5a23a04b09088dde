-- Checks that the includes of src/ point down the declared layers.
--
--   lua5.4 scripts/check_layers.lua [SRC_DIR [LAYERS_FILE [DOC]]]   (default: src, SRC_DIR/layers.txt)
--
-- LAYERS_FILE lists the layers bottom first, one line each (see
-- src/layers.txt). For every file of SRC_DIR (*.c, *.h) it reads the
-- `#include "..."` lines and fails (exit 1, one line per problem) when:
--   * a file is in no layer, or a layer names a file that does not exist;
--   * an include names a file that is not in SRC_DIR;
--   * an include points up (to a later line) or sideways (to its own line),
--     except a .c file including its own header;
--   * a file marked `*` reaches lua.h: it, or anything it includes, directly
--     or not, includes ec_compat.h or <lua.h>, <lauxlib.h>, <lualib.h>, <luajit.h>;
--   * a function (ec_*) is declared in a header other than the one of the .c
--     file that defines it, or defined in a .c file and declared nowhere but
--     there: a header may only promise what its own .c file keeps, so that a
--     call follows its include (a header of a lower layer declaring a
--     function of a higher one is a call upward the includes cannot show).
-- With DOC (doc/ARCHITECTURE.md), its section "## C core (src/)" must list
-- every name of LAYERS_FILE as a row "<layer> <name> ...", with its layer
-- (the line of LAYERS_FILE it is on), and no other: the map cannot drift.
-- Registered with ctest as `layers` (quick); spec/layers_spec.lua checks the
-- checker on files made to break each rule.
local src = arg[1] or "src"
local layers_file = arg[2] or (src .. "/layers.txt")
local doc_file = arg[3]

local problems = {}
local function problem(fmt, ...)
  problems[#problems + 1] = string.format(fmt, ...)
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do
    keys[#keys + 1] = k
  end
  table.sort(keys)
  return keys
end

local function read(path)
  local f, err = io.open(path)
  if not f then
    io.stderr:write("check_layers: ", err, "\n")
    os.exit(2)
  end
  local text = f:read("*a")
  f:close()
  return text
end

-- the files of src, sorted
local files = {}
do
  local pipe = assert(io.popen("ls -1 '" .. src:gsub("'", "'\\''") .. "'"))
  for name in pipe:lines() do
    if name:match("^[%w_]+%.[ch]$") then
      files[#files + 1] = name
    end
  end
  pipe:close()
  table.sort(files)
end
local exists = {}
for _, name in ipairs(files) do
  exists[name] = true
end

-- layer of each file, and the lua-free ones
local level, lua_free, nlevels = {}, {}, 0
local token_level = {} -- each name of the layers file (as written, without *) -> its layer
for line in (read(layers_file) .. "\n"):gmatch("(.-)\n") do
  line = line:gsub("#.*", "")
  if line:match("%S") then
    nlevels = nlevels + 1
    for token in line:gmatch("%S+") do
      local name, star = token:match("^([%w_.]+)(%*?)$")
      if not name then
        problem("%s: line %d: cannot read '%s'", layers_file, nlevels, token)
      else
        token_level[name] = nlevels
        local names = name:match("%.[ch]$") and { name } or { name .. ".h", name .. ".c" }
        local found = false
        for _, n in ipairs(names) do
          if exists[n] then
            found = true
            if level[n] then
              problem("%s: %s is in two layers", layers_file, n)
            end
            level[n] = nlevels
            lua_free[n] = star == "*" or nil
          end
        end
        if not found then
          problem("%s: %s names no file of %s", layers_file, name, src)
        end
      end
    end
  end
end

-- the includes of each file
local includes, lua_headers = {}, {}
for _, name in ipairs(files) do
  includes[name] = {}
  local n = 0
  for line in (read(src .. "/" .. name) .. "\n"):gmatch("(.-)\n") do
    n = n + 1
    local quoted = line:match('^%s*#%s*include%s*"([^"]+)"')
    if quoted then
      table.insert(includes[name], { file = quoted, line = n })
    end
    local system = line:match("^%s*#%s*include%s*<([^>]+)>")
    if system == "lua.h" or system == "lauxlib.h" or system == "lualib.h" or system == "luajit.h" then
      lua_headers[name] = n
    end
  end
end

local function own_header(name, target)
  return name:match("%.c$") and target == name:gsub("%.c$", ".h")
end

local count = 0
for _, name in ipairs(files) do
  if not level[name] then
    problem("%s is in no layer of %s", name, layers_file)
  end
  for _, inc in ipairs(includes[name]) do
    count = count + 1
    local target = inc.file
    if not exists[target] then
      problem("%s:%d includes %s, which is not in %s", name, inc.line, target, src)
    elseif level[name] and level[target] and not own_header(name, target) then
      if level[target] == level[name] then
        problem("%s:%d includes %s: sideways (both on layer %d)", name, inc.line, target, level[name])
      elseif level[target] > level[name] then
        problem("%s:%d includes %s: up (layer %d includes layer %d)", name, inc.line, target, level[name],
          level[target])
      end
    end
  end
end

-- lua-free files: nothing they reach includes lua.h
for _, name in ipairs(files) do
  if lua_free[name] then
    local seen, path = {}, {}
    local function visit(file)
      if seen[file] or not exists[file] then
        return
      end
      seen[file] = true
      path[#path + 1] = file
      if file == "ec_compat.h" or lua_headers[file] then
        problem("%s must not reach lua.h, but does: %s", name, table.concat(path, " -> "))
      else
        for _, inc in ipairs(includes[file]) do
          visit(inc.file)
        end
      end
      path[#path] = nil
    end
    visit(name)
  end
end

-- functions: declared in X.h <=> defined (not static) in X.c
local function strip_comments(text)
  return (text:gsub("/%*.-%*/", function(c) return (c:gsub("[^\n]", " ")) end):gsub("//[^\n]*", ""))
end
local function functions(text)
  local declared, defined = {}, {}
  text = strip_comments(text)
  local pos = 1
  while true do
    -- a name at the start of a line after a return type: a prototype or a definition
    local s, e, head, name = text:find("\n([%a_][%w_ %*]-[ %*])(ec_[%w_]+)%s*%(", pos)
    if not s then
      break
    end
    pos = e
    local first = head:match("^([%a_]+)")
    if first ~= "static" and first ~= "typedef" and first ~= "extern" and first ~= "return"
      and first ~= "else" and first ~= "case" then
      local brace, semi = text:find("{", e, true), text:find(";", e, true)
      if brace and (not semi or brace < semi) then
        defined[name] = true
      else
        declared[name] = true
      end
    end
  end
  return declared, defined
end
local declared_in, defined_in = {}, {}
for _, name in ipairs(files) do
  local declared, defined = functions("\n" .. read(src .. "/" .. name))
  for f in pairs(declared) do
    declared_in[f] = declared_in[f] or {}
    table.insert(declared_in[f], name)
  end
  for f in pairs(defined) do
    if name:match("%.c$") then
      defined_in[f] = name
    end
  end
end
for _, f in ipairs(sorted_keys(declared_in)) do
  local home = defined_in[f]
  for _, where in ipairs(declared_in[f]) do
    if where:match("%.c$") and where ~= home then
      problem("%s declares %s, a function of %s: declare it in that file's header", where, f, home or "no file")
    elseif where:match("%.h$") and home and where ~= home:gsub("%.c$", ".h") then
      problem("%s declares %s, which %s defines: declare it in %s", where, f, home, (home:gsub("%.c$", ".h")))
    end
  end
end
local dnames = sorted_keys(defined_in)
for _, f in ipairs(dnames) do
  local header = defined_in[f]:gsub("%.c$", ".h")
  local ok = false
  for _, where in ipairs(declared_in[f] or {}) do
    ok = ok or where == header
  end
  if not ok then
    problem("%s defines %s, which %s does not declare (make it static, or declare it there)", defined_in[f], f,
      header)
  end
end

-- the map in the docs
if doc_file then
  local text = read(doc_file)
  local section = text:match("\n## C core %(src/%)\n(.-)\n## ") or text:match("\n## C core %(src/%)\n(.*)$")
  if not section then
    problem("%s: no section \"## C core (src/)\"", doc_file)
  else
    local listed = {}
    for line in (section .. "\n"):gmatch("(.-)\n") do
      local n, name = line:match("^%s*(%d+)%s+(ec_[%w_]+%.?[ch]?)")
      if n then
        listed[name] = tonumber(n)
        if not token_level[name] then
          problem("%s lists %s, which %s does not", doc_file, name, layers_file)
        elseif token_level[name] ~= tonumber(n) then
          problem("%s puts %s on layer %s; %s on layer %d", doc_file, name, n, layers_file, token_level[name])
        end
      end
    end
    for _, name in ipairs(sorted_keys(token_level)) do
      if not listed[name] then
        problem("%s does not list %s (layer %d of %s)", doc_file, name, token_level[name], layers_file)
      end
    end
  end
end

if #problems > 0 then
  for _, p in ipairs(problems) do
    io.stderr:write("check_layers: ", p, "\n")
  end
  os.exit(1)
end
print(string.format("check_layers: %d files on %d layers, %d includes, all pointing down; "
  .. "%d functions, each declared in its own header", #files, nlevels, count, #dnames))
