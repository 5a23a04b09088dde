-- scripts/check_requires.lua keeps the requires of lua/envclone pointing one
-- way: no circle, the library never requires the CLI or the emulator, the
-- emulator never the CLI, the CLI the emulator only lazily. Here: lua/
-- passes, and small trees made to break each rule fail, naming the rule.

-- Runs the checker on `dir` (default lua/); returns its exit code and output.
local function check(dir)
  local cmd = "lua5.4 scripts/check_requires.lua" .. (dir and (" '" .. dir .. "'") or "")
  local pipe = assert(io.popen(cmd .. " 2>&1; echo \"rc=$?\""))
  local out = pipe:read("*a")
  pipe:close()
  return tonumber(out:match("rc=(%d+)%s*$")), out
end

-- A tree { ["envclone/x.lua"] = text } under a new directory; returns it.
local function tree(files)
  local dir = os.tmpname()
  os.remove(dir)
  for path, text in pairs(files) do
    assert(os.execute("mkdir -p '" .. dir .. "/" .. path:match("^(.*)/") .. "'"))
    local f = assert(io.open(dir .. "/" .. path, "w"))
    f:write(text)
    f:close()
  end
  return dir
end

-- the library (envclone, envclone.util), the CLI, the emulator and its main
local GOOD = {
  ["envclone/init.lua"] = 'local core = require("envclone.core")\nlocal u = require "envclone.util"\n'
    .. 'local function lazy(name) return function() return require(name) end end\n'
    .. 'local late = lazy("envclone.late")\n'
    .. '-- require("envclone.cli") in a comment counts for nothing\n'
    .. 'error("envclone." .. "x: envclone.cli in a message")\nreturn {}\n',
  ["envclone/util.lua"] = "return {}\n",
  ["envclone/late.lua"] = 'local u = require("envclone.util")\nreturn {}\n',
  ["envclone/cli/init.lua"] = 'local e = require("envclone")\nlocal cli = {}\n'
    .. 'function cli.main()\n  if true then\n    local ok, m = pcall(require, "envclone.emulator.main")\n'
    .. '    return ok and m\n  end\nend\nreturn cli\n',
  ["envclone/emulator/init.lua"] = 'for _, v in ipairs({ "a" }) do\n'
    .. '  require("envclone.emulator.vendors." .. v)\nend\nreturn {}\n',
  ["envclone/emulator/vendors/a.lua"] = "return {}\n",
  ["envclone/emulator/main.lua"] = 'local emu = require("envclone.emulator")\n'
    .. 'local u = require("envclone.util")\nreturn {}\n',
}

local function with(changes)
  local files = {}
  for k, v in pairs(GOOD) do files[k] = v end
  for k, v in pairs(changes) do files[k] = v end
  return files
end

-- Runs the checker on GOOD changed by `changes`; returns rc, output.
local function check_with(changes)
  local dir = tree(with(changes))
  local rc, out = check(dir)
  os.execute("rm -rf '" .. dir .. "'")
  return rc, out
end

describe("scripts/check_requires.lua", function()
  it("passes lua/ as it is", function()
    local rc, out = check()
    assert.are.equal(0, rc, out)
    assert.matches("no circle", out)
  end)

  it("passes a tree that keeps the rules (comments, messages and lazy loads included)", function()
    local rc, out = check_with({})
    assert.are.equal(0, rc, out)
    assert.matches("7 modules, 8 distinct requires, no circle", out, 1, true)
  end)

  it("fails on a circle, lazy requires included", function()
    local rc, out = check_with({ ["envclone/util.lua"] = 'local t = {}\nfunction t.f() return require("envclone") end\n'
      .. "return t\n" })
    assert.are.equal(1, rc, out)
    assert.matches("circle: envclone -> envclone.util -> envclone", out, 1, true)
    rc, out = check_with({ ["envclone/util.lua"] = 'local late = require("envclone.late")\nreturn {}\n' })
    assert.are.equal(1, rc, out)
    assert.matches("circle: envclone.late -> envclone.util -> envclone.late", out, 1, true)
  end)

  it("fails when the library requires the CLI or the emulator", function()
    local rc, out = check_with({ ["envclone/util.lua"] = 'local t = {}\n'
      .. 'function t.f() return require("envclone.cli") end\nreturn t\n' })
    assert.are.equal(1, rc, out)
    assert.matches("envclone/util.lua:2: the library (envclone.util) requires envclone.cli", out, 1, true)
    rc, out = check_with({ ["envclone/util.lua"] = 'local ok = pcall(require, "envclone.emulator")\nreturn {}\n' })
    assert.are.equal(1, rc, out)
    assert.matches("the library (envclone.util) requires envclone.emulator;", out, 1, true)
  end)

  it("fails when the emulator requires the CLI", function()
    local rc, out = check_with({ ["envclone/emulator/vendors/a.lua"] = 'local n = require("envclone.cli").kebab\n'
      .. "return {}\n" })
    assert.are.equal(1, rc, out)
    assert.matches("the emulator (envclone.emulator.vendors.a) requires envclone.cli;", out, 1, true)
    assert.matches("circle: envclone.cli -> envclone.emulator.main -> envclone.emulator", out, 1, true)
  end)

  it("fails when the CLI loads the emulator with itself, not in its emulator launch", function()
    local rc, out = check_with({ ["envclone/cli/init.lua"] = 'local main = require("envclone.emulator.main")\n'
      .. "return {}\n" })
    assert.are.equal(1, rc, out)
    assert.matches("envclone/cli/init.lua:1: the CLI (envclone.cli) requires envclone.emulator.main when it loads",
      out, 1, true)
  end)

  it("fails on a require of a module that has no file", function()
    local rc, out = check_with({ ["envclone/late.lua"] = 'local x = require("envclone.missing")\nreturn {}\n' })
    assert.are.equal(1, rc, out)
    assert.matches("envclone/late.lua:1: requires envclone.missing, which has no file", out, 1, true)
  end)
end)
