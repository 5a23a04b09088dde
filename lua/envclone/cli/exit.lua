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

--- The end of every command: flushes `out` and, when anything written to it
-- was lost (a full disk, a closed pipe with SIGPIPE ignored), writes one line
-- on `errout` and turns a success into `codes.failure`. A sink without a
-- `flush` method (a caller's own) is taken as written.
-- @param out file for results
-- @param errout file for errors
-- @tparam integer status the command's exit status
-- @treturn integer the exit status
function exit.finish(out, errout, status)
  local err
  if io.type(out) == "file" or (type(out) == "table" and out.flush) then
    -- a failed write leaves the stream in error: the flush reports it
    local ok, ferr = out:flush()
    if not ok then err = ferr or "write error" end
  end
  if err then
    errout:write("envclone: cannot write to stdout: ", tostring(err), "\n")
    if status == EXIT.ok then status = EXIT.failure end
  end
  return status
end

return exit
