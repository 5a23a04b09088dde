-- scripts/check_layers.lua keeps src/ in the layers src/layers.txt declares
-- (ctest: layers). Here: src/ passes, and a small tree made to break each
-- rule fails, naming the file and the rule.

-- Runs the checker; returns its exit code and everything it printed.
local function check(dir, layers, doc)
  local cmd = "lua5.4 scripts/check_layers.lua"
  if dir then cmd = cmd .. " '" .. dir .. "' '" .. layers .. "'" end
  if doc then cmd = cmd .. " '" .. doc .. "'" end
  local pipe = assert(io.popen(cmd .. " 2>&1; echo \"rc=$?\""))
  local out = pipe:read("*a")
  pipe:close()
  local rc = tonumber(out:match("rc=(%d+)%s*$"))
  return rc, out
end

-- A tree of files { name = text } and its layers file; returns the directory.
local function tree(files, layers)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p '" .. dir .. "'"))
  for name, text in pairs(files) do
    local f = assert(io.open(dir .. "/" .. name, "w"))
    f:write(text)
    f:close()
  end
  local f = assert(io.open(dir .. "/layers.txt", "w"))
  f:write(layers)
  f:close()
  return dir
end

local function remove(dir)
  os.execute("rm -rf '" .. dir .. "'")
end

-- bottom: a (lua-free) and lua.h's stand-in; above: b; top: c
local LAYERS = "ec_compat.h ec_a*\nec_b\nec_c\n"
local GOOD = {
  ["ec_compat.h"] = "#include <lua.h>\n",
  ["ec_a.h"] = "int ec_a_one(void);\n",
  ["ec_a.c"] = '#include "ec_a.h"\nint ec_a_one(void)\n{\n    return 1;\n}\n',
  ["ec_b.h"] = '#include "ec_a.h"\n#include "ec_compat.h"\nint ec_b_two(void);\n',
  ["ec_b.c"] = '#include "ec_b.h"\nint ec_b_two(void)\n{\n    return ec_a_one() + 1;\n}\n',
  ["ec_c.c"] = '#include "ec_b.h"\nstatic int three(void)\n{\n    return ec_b_two() + 1;\n}\n',
}

local function with(changes)
  local files = {}
  for k, v in pairs(GOOD) do files[k] = v end
  for k, v in pairs(changes) do files[k] = v end
  return files
end

describe("scripts/check_layers.lua", function()
  it("passes src/ as it is, and the map in doc/ARCHITECTURE.md", function()
    local rc, out = check("src", "src/layers.txt", "doc/ARCHITECTURE.md")
    assert.are.equal(0, rc, out)
    assert.matches("all pointing down", out)
  end)

  it("passes a tree that keeps the rules", function()
    local dir = tree(GOOD, LAYERS)
    local rc, out = check(dir, dir .. "/layers.txt")
    remove(dir)
    assert.are.equal(0, rc, out)
  end)

  local cases = {
    { "an include pointing up", { ["ec_a.c"] = '#include "ec_a.h"\n#include "ec_b.h"\n' ..
        "int ec_a_one(void)\n{\n    return 1;\n}\n" }, "ec_a.c:2 includes ec_b.h: up" },
    { "a lua-free file reaching lua.h", { ["ec_a.h"] = '#include "ec_compat.h"\nint ec_a_one(void);\n' },
      "ec_a.h must not reach lua.h, but does: ec_a.h %-> ec_compat.h" },
    { "a lua-free file including lua.h itself", { ["ec_a.c"] = '#include "ec_a.h"\n#include <lauxlib.h>\n' ..
        "int ec_a_one(void)\n{\n    return 1;\n}\n" }, "ec_a.c must not reach lua.h" },
    { "a header promising a function of a file above", { ["ec_a.h"] = "int ec_a_one(void);\nint ec_c_four(void);\n",
        ["ec_c.c"] = '#include "ec_b.h"\nint ec_c_four(void)\n{\n    return 4;\n}\n' },
      "ec_a.h declares ec_c_four, which ec_c.c defines" },
    { "a function declared beside its caller", { ["ec_b.c"] = '#include "ec_b.h"\nint ec_a_five(void);\n' ..
        "int ec_b_two(void)\n{\n    return ec_a_five();\n}\n",
        ["ec_a.c"] = '#include "ec_a.h"\nint ec_a_one(void)\n{\n    return 1;\n}\nint ec_a_five(void)\n{\n' ..
        "    return 5;\n}\n" }, "ec_b.c declares ec_a_five, a function of ec_a.c" },
    { "a file in no layer", { ["ec_d.c"] = "static int d;\n" }, "ec_d.c is in no layer" },
    { "an include of a file not in src", { ["ec_c.c"] = '#include "ec_b.h"\n#include "other.h"\n' },
      "ec_c.c:2 includes other.h, which is not in" },
  }
  for _, case in ipairs(cases) do
    it("fails on " .. case[1], function()
      local dir = tree(with(case[2]), LAYERS)
      local rc, out = check(dir, dir .. "/layers.txt")
      remove(dir)
      assert.are.equal(1, rc, out)
      assert.matches(case[3], out)
    end)
  end

  local DOC = "# x\n\n## C core (src/)\n\n```\n 3 ec_c  top\n 2 ec_b  middle\n 1 ec_a *  bottom\n"
    .. " 1 ec_compat.h  shims\n```\n\n## Lua\n"
  it("checks the map: every name on its layer", function()
    local dir = tree(GOOD, LAYERS)
    local f = assert(io.open(dir .. "/doc.md", "w"))
    f:write(DOC)
    f:close()
    local rc, out = check(dir, dir .. "/layers.txt", dir .. "/doc.md")
    assert.are.equal(0, rc, out)
    f = assert(io.open(dir .. "/doc.md", "w"))
    f:write((DOC:gsub(" 2 ec_b ", " 3 ec_b "):gsub(" 1 ec_compat.h  shims\n", "")))
    f:close()
    rc, out = check(dir, dir .. "/layers.txt", dir .. "/doc.md")
    remove(dir)
    assert.are.equal(1, rc, out)
    assert.matches("puts ec_b on layer 3; [^\n]* on layer 2", out)
    assert.matches("does not list ec_compat.h", out)
  end)

  it("fails on an include between two files of one layer", function()
    local dir = tree(with({ ["ec_e.h"] = "", ["ec_b.h"] = '#include "ec_e.h"\nint ec_b_two(void);\n' }),
      "ec_compat.h ec_a*\nec_b ec_e.h\nec_c\n")
    local rc, out = check(dir, dir .. "/layers.txt")
    remove(dir)
    assert.are.equal(1, rc, out)
    assert.matches("ec_b.h:1 includes ec_e.h: sideways", out)
  end)
end)
