-- The README's commands run as pasted (issue 20: "the newcomer path"). Every
-- ```sh / ```bash block of README.md, and every ```lua block, runs in order
-- in one bash session -- as a reader pastes them into one terminal -- in a
-- fresh `git clone` of this repository's HEAD, with a clean environment
-- (no LUA_PATH, no ENVCLONE_* variables, no credentials). Left out:
--
--   * the "Two commands" block (scripts/demo.sh, scripts/test.sh: they install
--     packages and run the whole suite); this spec checks it is present
--     verbatim instead, since CI and new users run exactly those lines;
--   * any block preceded by the line `<!-- not run -->` (the CI recipe, calls
--     to a real vendor).
--
-- Two things differ from a reader's machine, and only these: the clone shares
-- this build (build/ is a link to ENVCLONE_BUILD, as `scripts/demo.sh` would
-- have built it), and the emulator's port 8790 is replaced by a free port, so
-- this spec can run beside others (ctest -j) without a fixed port.
local socket = require("socket")
local emu = require("spec.support.emu")

local INSTALL = table.concat({
  "bash scripts/demo.sh    # installs what is missing (Debian packages), builds, starts the emulator, runs the demo",
  "bash scripts/test.sh    # installs the test tools, builds with -Werror, runs the whole suite (ctest)",
}, "\n") .. "\n"

local RUN_LANGS = { sh = "sh", bash = "sh", lua = "lua" }

-- The fenced blocks of `text`: { lang, text, line, not_run }.
local function blocks_of(text)
  local blocks, current = {}, nil
  local previous -- the last non-blank line outside a block
  local n = 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    if current then
      if line:match("^```%s*$") then
        blocks[#blocks + 1] = current
        current, previous = nil, line
      else
        current.text = current.text .. line .. "\n"
      end
    elseif line:match("^```") then
      current = { lang = line:match("^```(%S*)"), text = "", line = n,
        not_run = previous == "<!-- not run -->" }
    elseif line:match("%S") then
      previous = line:match("^%s*(.-)%s*$")
    end
  end
  assert(current == nil, "README.md: a fenced block is not closed")
  return blocks
end

local function free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

local function sh(command)
  local p = assert(io.popen(command .. " 2>&1"))
  local out = p:read("*a")
  local ok, _, code = p:close()
  return ok == true or code == 0, out
end

local function abspath(path)
  if path:sub(1, 1) == "/" then return path end
  local ok, cwd = sh("pwd")
  assert(ok, cwd)
  return (cwd:gsub("\n$", "")) .. "/" .. path
end

local readme = assert(emu.read_file("README.md"), "README.md not found (run from the repository root)")
local blocks = blocks_of(readme)

describe("README", function()
  it("has the two commands, verbatim, in a sh block", function()
    local found = 0
    for _, b in ipairs(blocks) do
      if b.lang == "sh" and b.text == INSTALL then found = found + 1 end
    end
    assert.are.equal(1, found, "README.md: the block with scripts/demo.sh and scripts/test.sh changed")
  end)

  it("calls the command line as bin/envclone in every block it runs (a bare envclone is not on PATH)", function()
    for _, b in ipairs(blocks) do
      if RUN_LANGS[b.lang] == "sh" and not b.not_run then
        for line in b.text:gmatch("[^\n]+") do
          assert.is_nil(line:match("^%s*envclone%s") or line:match("[;&|(]%s*envclone%s"),
            "README.md line " .. b.line .. ": " .. line)
        end
      end
    end
  end)

  it("links only to files that exist and to headings they have (README.md and doc/*.md)", function()
    -- GitHub's anchor for a heading: lower case, spaces to '-', punctuation dropped
    local function anchors(path)
      local set, text = {}, assert(emu.read_file(path), path)
      local in_block = false
      for line in text:gmatch("[^\n]*") do
        if line:match("^```") then in_block = not in_block end
        local title = not in_block and line:match("^#+%s+(.-)%s*$")
        if title then
          local a = title:lower():gsub("[^%w%- _]", ""):gsub(" ", "-")
          local n = 0
          while set[n == 0 and a or (a .. "-" .. n)] do n = n + 1 end
          set[n == 0 and a or (a .. "-" .. n)] = true
        end
      end
      return set
    end
    local files = { "README.md" }
    local p = assert(io.popen("ls doc/*.md"))
    for f in p:lines() do files[#files + 1] = f end
    p:close()
    local checked = 0
    for _, file in ipairs(files) do
      local dir = file:match("^(.*)/") or "."
      local text = assert(emu.read_file(file))
      for target in text:gmatch("%]%(([^)%s]+)%)") do
        if not target:match("^%a+:") then
          local path, anchor = target:match("^([^#]*)#?(.*)$")
          local full = path == "" and file or (dir .. "/" .. path)
          assert.is_truthy(io.open(full), file .. ": link to a missing file: " .. target)
          if anchor ~= "" and full:match("%.md$") then
            assert.is_true(anchors(full)[anchor] == true, file .. ": no heading for the link " .. target)
          end
          checked = checked + 1
        end
      end
    end
    assert.is_true(checked > 20, "expected the README's and the docs' links")
  end)

  it("runs its blocks as pasted in a fresh clone, against the emulator the tour starts", function()
    if rawget(_G, "jit") then
      -- the blocks run lua5.4 and the Lua 5.4 build; a second run under LuaJIT adds nothing
      return pending("run under Lua 5.4 only")
    end
    if os.getenv("ENVCLONE_SANITIZER") then
      -- a sanitizer build needs its runtime preloaded, which a reader's shell does not have
      -- (and which would check git and bash too); the ordinary run covers the blocks
      return pending("not under " .. os.getenv("ENVCLONE_SANITIZER"))
    end
    local build = abspath(os.getenv("ENVCLONE_BUILD") or "build")
    assert(io.open(build .. "/envclone/core.so"), "no build in " .. build .. " (bash scripts/build.sh)")
    local root = abspath(".")
    local tmp = os.tmpname()
    os.remove(tmp)
    assert(os.execute("mkdir -p " .. emu.quote(tmp)))
    local repo = tmp .. "/repo"
    local ok, out = sh("git clone -q " .. emu.quote(root) .. " " .. emu.quote(repo))
    assert(ok, out)
    assert(os.execute("ln -s " .. emu.quote(build) .. " " .. emu.quote(repo .. "/build")))

    local port = tostring(free_port())
    local script = {
      "set -e -o pipefail",
      "cd " .. emu.quote(repo),
      "ps -o pgid= $$ > " .. emu.quote(tmp .. "/pgid"),
      "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT",
    }
    local ran, sh_blocks, lua_blocks = 0, 0, 0
    for _, b in ipairs(blocks) do
      local kind = RUN_LANGS[b.lang]
      if kind and not b.not_run and b.text ~= INSTALL then
        local text = b.text:gsub("8790", port)
        script[#script + 1] = "echo '### README.md line " .. b.line .. "' >&2"
        if kind == "sh" then
          script[#script + 1] = text
          sh_blocks = sh_blocks + 1
        else
          assert.is_nil(text:find("README_LUA_EOF", 1, true))
          script[#script + 1] = "lua5.4 - <<'README_LUA_EOF'\n" .. text .. "README_LUA_EOF"
          lua_blocks = lua_blocks + 1
        end
        ran = ran + 1
      end
    end
    script[#script + 1] = "echo '### README.md: end' >&2"
    local f = assert(io.open(tmp .. "/readme.sh", "w"))
    f:write(table.concat(script, "\n"), "\n")
    f:close()

    local started = socket.gettime()
    -- a clean environment: what a new shell on a fresh machine has
    local run_ok, output = sh("cd " .. emu.quote(tmp) .. " && timeout -k 5 90 env -i HOME=" .. emu.quote(tmp)
      .. " PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 TMPDIR=" .. emu.quote(tmp) .. " bash readme.sh")
    local elapsed = socket.gettime() - started
    -- whatever the blocks left running (the emulator they started in the background)
    local pgid = (emu.read_file(tmp .. "/pgid") or ""):match("%d+")
    if pgid then os.execute("kill -TERM -- -" .. pgid .. " 2>/dev/null") end
    os.execute("rm -rf " .. emu.quote(tmp))

    assert.is_true(sh_blocks >= 2 and lua_blocks >= 1, "README.md: expected the tour's blocks")
    assert(run_ok, "README.md's blocks failed (" .. ran .. " blocks, the last marker names the one):\n"
      .. output:sub(-6000))
    assert.matches("### README.md: end", output)
    -- what the tour shows happened: the clones, the refusal with its exit status, the example, the Lua tour
    assert.matches('"cloning_state":"done"', output, 1, true)
    assert.matches("exit 4", output, 1, true)
    assert.matches('"reason":"production_not_deletable"', output, 1, true)
    assert.matches("feature%-x: preview %S+ ready", output)
    assert.matches("\ndone\n", output:gsub("\t", "\n"), 1, true)
    assert.is_true(elapsed < 60, ("the README's blocks took %.1f s"):format(elapsed))
  end)
end)
