-- Checks the requires of the Lua layer: no circle, and each part requires
-- only what it may.
--
--   lua5.4 scripts/check_requires.lua [LUA_DIR]   (default: lua)
--
-- Every LUA_DIR/envclone/**/*.lua is a module named by its path (init.lua is
-- its folder's module). The modules a file names are read from its code, not
-- its comments: the argument of `require(...)` or `pcall(require, ...)`, a
-- prefix there followed by `..` (every module under it:
-- `require("envclone.emulator.vendors." .. name)`), and any other string
-- that is exactly a module's dotted name (lazy loaders: `lazy("envclone.retry")`).
-- A module naming itself is not counted. The parts: the CLI (envclone.cli,
-- envclone.cli.*), the emulator (envclone.emulator, envclone.emulator.*) and
-- the library (every other module). It fails (exit 1, one line per problem) on:
--   * a circle of requires, lazy ones included;
--   * the library requiring the CLI or the emulator;
--   * the emulator requiring the CLI;
--   * the CLI requiring the emulator outside a function (it may only load it
--     lazily, for its emulator launch);
--   * a require of an envclone module that has no file (the C modules in
--     C_MODULES excepted).
-- spec/requires_spec.lua runs it on lua/ and on trees made to break each rule.
local dir = arg[1] or "lua"

local C_MODULES = { ["envclone.core"] = true, ["envclone.core_impl"] = true }

local problems = {}
local function problem(fmt, ...)
  problems[#problems + 1] = string.format(fmt, ...)
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("*a")
  f:close()
  return text
end

-- module name -> its file (relative to dir), and the sorted names
local files, modules = {}, {}
do
  local pipe = assert(io.popen("cd '" .. dir:gsub("'", "'\\''") .. "' && find envclone -name '*.lua' | sort"))
  for path in pipe:lines() do
    local name = path:gsub("%.lua$", ""):gsub("/init$", ""):gsub("/", ".")
    files[name] = path
    modules[#modules + 1] = name
  end
  pipe:close()
  table.sort(modules)
end
if #modules == 0 then
  io.stderr:write("check_requires: no modules under ", dir, "/envclone\n")
  os.exit(2)
end

local function part(name)
  if name == "envclone.cli" or name:sub(1, 13) == "envclone.cli." then return "cli" end
  if name == "envclone.emulator" or name:sub(1, 18) == "envclone.emulator." then return "emulator" end
  return "library"
end

-- The tokens of Lua source that matter here: names, strings and operators,
-- with their line; comments dropped. Each token knows whether it sits inside
-- a function body (`lazy`).
local function tokens(src)
  local out, i, line, n = {}, 1, 1, #src
  local blocks = {} -- open blocks: "function" or "other"
  local in_function = 0
  local function push(kind, value)
    out[#out + 1] = { kind = kind, value = value, line = line, lazy = in_function > 0 }
  end
  local function long_bracket(at)
    local eq = src:match("^%[(=*)%[", at)
    if not eq then return nil end
    local close = "]" .. eq .. "]"
    local s, e = src:find(close, at + #eq + 2, true)
    e = e or n
    local body = src:sub(at + #eq + 2, (s or n + 1) - 1)
    return body, e
  end
  while i <= n do
    local c = src:sub(i, i)
    if c == "\n" then
      line = line + 1
      i = i + 1
    elseif c:match("%s") then
      i = i + 1
    elseif src:sub(i, i + 1) == "--" then
      local body, e = long_bracket(i + 2)
      if body then
        for _ in body:gmatch("\n") do line = line + 1 end
        i = e + 1
      else
        i = (src:find("\n", i, true) or n + 1)
      end
    elseif c == "[" and src:match("^%[=*%[", i) then
      local body, e = long_bracket(i)
      push("string", body)
      for _ in body:gmatch("\n") do line = line + 1 end
      i = e + 1
    elseif c == '"' or c == "'" then
      local j, buf = i + 1, {}
      while j <= n do
        local d = src:sub(j, j)
        if d == "\\" then
          buf[#buf + 1] = src:sub(j, j + 1)
          j = j + 2
        elseif d == c or d == "\n" then
          break
        else
          buf[#buf + 1] = d
          j = j + 1
        end
      end
      push("string", table.concat(buf))
      i = j + 1
    elseif c:match("[%a_]") then
      local word = src:match("^[%a_][%w_]*", i)
      local prev = out[#out]
      local field = prev and prev.kind == "op" and (prev.value == "." or prev.value == ":")
      if not field then
        if word == "function" then
          blocks[#blocks + 1] = "function"
          in_function = in_function + 1
        elseif word == "if" or word == "do" or word == "repeat" then
          blocks[#blocks + 1] = "other"
        elseif word == "end" or word == "until" then
          if table.remove(blocks) == "function" then in_function = in_function - 1 end
        end
      end
      push("name", word)
      i = i + #word
    elseif c:match("%d") then
      i = i + #src:match("^[%w%.]+", i)
    else
      local op = src:match("^%.%.%.?", i) or src:match("^[=~<>]=", i) or src:match("^::", i) or c
      push("op", op)
      i = i + #op
    end
  end
  return out
end

-- Is the string token at k the argument of require?
local function required_at(toks, k)
  local a, b = toks[k - 1], toks[k - 2]
  if a and a.kind == "name" and a.value == "require" then return true end
  if a and a.kind == "op" and (a.value == "(" or a.value == ",") then
    return b and b.kind == "name" and b.value == "require"
  end
  return false
end

-- module -> { {to =, line =, lazy =}, ... }
local edges, count = {}, 0
for _, from in ipairs(modules) do
  local list, distinct = {}, {}
  edges[from] = list
  local toks = tokens(read(dir .. "/" .. files[from]))
  local function add(to, tok)
    if to ~= from then
      list[#list + 1] = { to = to, line = tok.line, lazy = tok.lazy }
      if not distinct[to] then
        distinct[to] = true
        count = count + 1
      end
    end
  end
  for k, tok in ipairs(toks) do
    local s = tok.kind == "string" and tok.value
    if s and (s == "envclone" or s:match("^envclone%.")) then
      local req = required_at(toks, k)
      local nxt = toks[k + 1]
      if req and nxt and nxt.kind == "op" and nxt.value == ".." then
        local any = false
        for _, m in ipairs(modules) do
          if m:sub(1, #s) == s then
            add(m, tok)
            any = true
          end
        end
        if not any then problem("%s:%d: no module starts with '%s'", files[from], tok.line, s) end
      elseif files[s] and (req or s ~= "envclone") then
        add(s, tok)
      elseif req and not C_MODULES[s] then
        problem("%s:%d: requires %s, which has no file", files[from], tok.line, s)
      end
    end
  end
end

-- the parts' rules
for _, from in ipairs(modules) do
  local pf = part(from)
  for _, e in ipairs(edges[from]) do
    local pt = part(e.to)
    local where = files[from] .. ":" .. e.line
    if pf == "library" and pt ~= "library" then
      problem("%s: the library (%s) requires %s; the library never requires the CLI or the emulator",
        where, from, e.to)
    elseif pf == "emulator" and pt == "cli" then
      problem("%s: the emulator (%s) requires %s; the emulator never requires the CLI", where, from, e.to)
    elseif pf == "cli" and pt == "emulator" and not e.lazy then
      problem("%s: the CLI (%s) requires %s when it loads; only inside a function (its emulator launch)",
        where, from, e.to)
    end
  end
end

-- circles: a depth-first walk; a module met again while still on the path
-- closes a circle, reported once, from its smallest name
local state, path, seen = {}, {}, {}
local function walk(m)
  state[m] = "open"
  path[#path + 1] = m
  for _, e in ipairs(edges[m]) do
    if state[e.to] == "open" then
      local circle, start = {}, nil
      for k = #path, 1, -1 do
        if path[k] == e.to then start = k break end
      end
      for k = start, #path do circle[#circle + 1] = path[k] end
      local low = 1
      for k = 2, #circle do if circle[k] < circle[low] then low = k end end
      local names = {}
      for k = 0, #circle - 1 do names[#names + 1] = circle[(low - 1 + k) % #circle + 1] end
      names[#names + 1] = names[1]
      local text = table.concat(names, " -> ")
      if not seen[text] then
        seen[text] = true
        problem("circle: %s", text)
      end
    elseif not state[e.to] then
      walk(e.to)
    end
  end
  path[#path] = nil
  state[m] = "done"
end
for _, m in ipairs(modules) do
  if not state[m] then walk(m) end
end

if #problems > 0 then
  for _, p in ipairs(problems) do print(p) end
  os.exit(1)
end
print(string.format("requires: %d modules, %d distinct requires, no circle; the library requires neither the CLI "
  .. "nor the emulator", #modules, count))
