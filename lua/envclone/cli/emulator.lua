--- `envclone emulator ...`: runs the emulator's command line in this
-- process. The emulator is loaded here only, on this command: the command
-- line works without it, and it needs neither the library nor the C core.
-- @module envclone.cli.emulator

local exit = require("envclone.cli.exit")

local emulator = {}

-- The seed objects' ids, for `envclone emulator --help`: what a newcomer
-- passes to the first commands (demo credentials left out: the command
-- line takes them itself with ENVCLONE_EMULATOR_URL).
local function write_seed(out)
  local ok, emu = pcall(require, "envclone.emulator")
  if not ok or type(emu.seed) ~= "table" then return end
  out:write("\nSeed objects (ids to pass to the first commands):\n")
  local vendors = {}
  for vendor in pairs(emu.seed) do vendors[#vendors + 1] = vendor end
  local order = { versori = 1, qovery = 2, kontent = 3, droplit = 4 }
  table.sort(vendors, function(a, b) return (order[a] or 9) < (order[b] or 9) or
    ((order[a] or 9) == (order[b] or 9) and a < b) end)
  for _, vendor in ipairs(vendors) do
    local keys = {}
    for k, v in pairs(emu.seed[vendor]) do
      if type(v) == "string" and not v:match("^emu%-") then keys[#keys + 1] = k end
    end
    table.sort(keys)
    for _, k in ipairs(keys) do out:write(string.format("  %-8s %-20s %s\n", vendor, k, emu.seed[vendor][k])) end
  end
  out:write("\nThe shortest way in: export ENVCLONE_EMULATOR_URL=http://HOST:PORT; the command line\n",
    "then sends every vendor's calls there with the demo credentials, e.g.\n",
    "  envclone kontent clone-environment --environment-id ",
    tostring(emu.seed.kontent and emu.seed.kontent.environment_id), " --name Dev --wait\n")
end

--- Runs the emulator with the arguments after "emulator"; its help also
-- lists the seed objects' ids.
-- @tparam table argv the arguments (argv[1] is "emulator")
-- @param errout file for errors
-- @param[opt=io.stdout] out file for the help
-- @treturn integer exit status (the emulator's; `failure` when it is not installed)
function emulator.run(argv, errout, out)
  local rest, help = {}, false
  for i = 2, #argv do
    rest[#rest + 1] = argv[i]
    help = help or argv[i] == "--help" or argv[i] == "-h"
  end
  local ok, main = pcall(require, "envclone.emulator.main")
  if not ok then
    errout:write("envclone: the emulator is not installed: ", tostring(main), "\n")
    return exit.codes.failure
  end
  local status = main.main(rest, { prog = "envclone emulator", stderr = errout })
  if help and status == exit.codes.ok then write_seed(out or io.stdout) end
  return status
end

return emulator
