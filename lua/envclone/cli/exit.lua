--- Exit statuses of the command line, and usage errors (status 2): raised
-- where they are found, reported by the command that called.
-- @module envclone.cli.exit

local exit = {}

--- Exit statuses, one per kind of failure (documented as `envclone.cli.exit_codes`).
-- @table codes
exit.codes = { ok = 0, failure = 1, usage = 2, validation = 3, http = 4, transport = 5, timeout = 6, state = 7,
  partial = 8, interrupted = 130, terminated = 143 }
local EXIT = exit.codes

--- Signal -> exit status, as a shell reports a process the signal ended
-- (128 + its number): the command caught it, printed what it had, and
-- exits with the status a CI runner expects of a cancelled job.
-- @table for_signal
exit.for_signal = { SIGINT = EXIT.interrupted, SIGTERM = EXIT.terminated, SIGHUP = 129 }

--- Error kind -> exit status ("decode": the answer was not the JSON promised).
-- @table for_kind
exit.for_kind = { validation = EXIT.validation, http = EXIT.http, conflict = EXIT.http, transport = EXIT.transport,
  decode = EXIT.transport, timeout = EXIT.timeout, state = EXIT.state }

--- Raises a usage error (caught by `report_usage`'s caller with pcall).
-- @tparam string msg what is wrong
-- @tparam[opt] string hint what to try, e.g. "try 'envclone kontent --help'"
-- @tparam[opt] string flag the flag at fault, as typed ("--max-in-flight")
function exit.usage_error(msg, hint, flag)
  error({ usage = msg, hint = hint, flag = flag }, 0)
end

--- Writes a caught usage error as one line, and, in JSON mode, as the
-- error document on `json_out` (`{"error": {"kind": "usage", "message": ...,
-- "flag": ..., "hint": ...}}`); any other error is raised again.
-- @param errout file for the line
-- @param err what pcall caught
-- @param[opt] json_out stdout in JSON mode, else nil
-- @treturn integer `codes.usage`
function exit.report_usage(errout, err, json_out)
  if type(err) ~= "table" or not err.usage then error(err, 0) end
  errout:write("envclone: ", err.usage, err.hint and (" (" .. err.hint .. ")") or "", "\n")
  if json_out then
    require("envclone.cli.output").write_error(json_out, { kind = "usage", message = err.usage, flag = err.flag,
      hint = err.hint })
  end
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
