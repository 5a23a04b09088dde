-- The command line in a real terminal (tmux): `--wait` shows one live
-- progress line (cloning state, elapsed time, next poll) that is updated in
-- place and cleared at the end, and the result is a readable summary, not
-- JSON. Set ENVCLONE_TTY_CAPTURE=FILE to keep the screens seen.
local emu = require("spec.support.emu")
local tmux = require("spec.support.tmux")

describe("envclone in a terminal", function()
  local e, term

  setup(function()
    if not tmux.available() then return end
    e = emu.start{ kontent_clone_seconds = 3 }
    term = tmux.new()
  end)

  teardown(function()
    if term then term:stop() end
    if e then e:stop() end
  end)

  it("--wait shows a live progress line, then a text summary", function()
    if not tmux.available() then pending("tmux is not installed") end
    term:run(table.concat({
      "env", "ENVCLONE_BUILD=" .. emu.quote(os.getenv("ENVCLONE_BUILD") or "build"),
      "KONTENT_API_KEY=" .. emu.quote(e.credentials.kontent.api_key),
      "ENVCLONE_KONTENT_URL=" .. emu.quote(e.base_urls.kontent),
      os.getenv("ENVCLONE_LUA") or "lua5.4", "bin/envclone", "kontent", "clone-environment",
      "--environment-id", e.seed.kontent.environment_id, "--name", "Terminal",
      "--wait", "--poll-interval", "0.4", "--wait-timeout", "30",
    }, " "))

    local screens, progress = {}, {}
    local final = term:wait(20, 0.1, function(screen)
      screens[#screens + 1] = screen
      local lines = 0
      for line in screen:gmatch("[^\n]+") do
        if line:find("^waiting: ") then
          lines = lines + 1
          progress[#progress + 1] = line
        end
      end
      assert.is_true(lines <= 1, "one progress line, updated in place:\n" .. screen)
    end)

    local keep = os.getenv("ENVCLONE_TTY_CAPTURE")
    if keep then
      local f = assert(io.open(keep, "w"))
      f:write(table.concat(screens, "\n----\n"))
      f:close()
    end
    assert.is_string(final, "the command did not finish:\n" .. tostring(screens[#screens]))
    assert.is_true(#progress >= 2, "the progress line was seen while waiting")
    assert.matches("^waiting: cloning in_progress, %d+%.%ds elapsed, poll %d+, next poll in %d+%.%ds$", progress[1])
    local polls = {}
    for _, line in ipairs(progress) do polls[tonumber(line:match("poll (%d+)"))] = true end
    assert.is_true(polls[2] ~= nil or polls[3] ~= nil, "the line was updated with later polls")
    -- the progress line is gone; the summary is text, not JSON
    assert.is_nil(final:find("waiting: ", 1, true), final)
    assert.matches("kontent clone%-environment: ok, cloning done after %d+ s\n", final)
    assert.matches("\n  id%s+%x+%-", final)
    assert.is_nil(final:find("{", 1, true), final)
    assert.is_nil(final:find(e.credentials.kontent.api_key, 1, true))
    assert.matches("EXIT=0", final)
  end)
end)
