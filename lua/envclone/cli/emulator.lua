--- `envclone emulator ...`: runs the emulator's command line in this
-- process. The emulator is loaded here only, on this command: the command
-- line works without it, and it needs neither the library nor the C core.
-- @module envclone.cli.emulator

local exit = require("envclone.cli.exit")

local emulator = {}

--- Runs the emulator with the arguments after "emulator".
-- @tparam table argv the arguments (argv[1] is "emulator")
-- @param errout file for errors
-- @treturn integer exit status (the emulator's; `failure` when it is not installed)
function emulator.run(argv, errout)
  local rest = {}
  for i = 2, #argv do rest[#rest + 1] = argv[i] end
  local ok, main = pcall(require, "envclone.emulator.main")
  if not ok then
    errout:write("envclone: the emulator is not installed: ", tostring(main), "\n")
    return exit.codes.failure
  end
  return main.main(rest, { prog = "envclone emulator", stderr = errout })
end

return emulator
