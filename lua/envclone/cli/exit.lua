--- Exit statuses of the command line, and usage errors (status 2): raised
-- where they are found, reported by the command that called.
-- @module envclone.cli.exit

local exit = {}

--- Exit statuses, one per kind of failure (documented as `envclone.cli.exit_codes`).
-- @table codes
exit.codes = { ok = 0, failure = 1, usage = 2, validation = 3, http = 4, transport = 5, timeout = 6, state = 7 }
local EXIT = exit.codes

--- Error kind -> exit status ("decode": the answer was not the JSON promised).
-- @table for_kind
exit.for_kind = { validation = EXIT.validation, http = EXIT.http, transport = EXIT.transport,
  decode = EXIT.transport, timeout = EXIT.timeout, state = EXIT.state }

--- Raises a usage error (caught by `report_usage`'s caller with pcall).
-- @tparam string msg what is wrong
-- @tparam[opt] string hint what to try, e.g. "try 'envclone kontent --help'"
function exit.usage_error(msg, hint)
  error({ usage = msg, hint = hint }, 0)
end

--- Writes a caught usage error as one line; any other error is raised again.
-- @param errout file for the line
-- @param err what pcall caught
-- @treturn integer `codes.usage`
function exit.report_usage(errout, err)
  if type(err) ~= "table" or not err.usage then error(err, 0) end
  errout:write("envclone: ", err.usage, err.hint and (" (" .. err.hint .. ")") or "", "\n")
  return EXIT.usage
end

return exit
