--- The `envclone` command line.
--
-- One operation per invocation, named in kebab-case after the library's
-- method, with one flag per field of the operation table:
--
--     KONTENT_API_KEY=... envclone kontent clone-environment \
--         --environment-id 8d20758c-d74c-4f59-ae04-ee928c0816b7 --name Develop --wait
--
-- Credentials come from the environment or `--credentials FILE`, never from
-- argv. Output is JSON when stdout is not a terminal (or with `--output json`),
-- a short summary on a terminal. This module dispatches; the jobs are in
-- `envclone.cli.*` (args, help, credentials, output, batchfile, operation, emulator).
-- @module envclone.cli

local exit = require("envclone.cli.exit")
local names = require("envclone.cli.names")

local EXIT = exit.codes

local cli = {}

--- Exit statuses, one per kind of failure.
-- (Also printed by `envclone --help`.)
-- @table exit_codes
-- @field ok 0: success
-- @field failure 1: anything else (e.g. the emulator could not start)
-- @field usage 2: bad command line, missing credentials or credentials file; nothing was sent
-- @field validation 3: envclone refused the arguments; nothing was sent
-- @field http 4: the vendor answered with an error status
-- @field transport 5: no usable answer (connection, TLS, DNS, malformed answer)
-- @field timeout 6: the call or the `--wait` ran out of time
-- @field state 7: the wait ended in a failed state (Kontent cloning failed)
-- @field partial 8: `batch`: some calls failed after the batch was sent (each result says which and why)
-- @field interrupted 130: SIGINT; what was known was printed (128 + the signal's number)
-- @field terminated 143: SIGTERM (a cancelled CI job); what was known was printed
cli.exit_codes = EXIT

--- Where each vendor's credentials come from: client option -> environment
-- variable (the same names are the keys of a `--credentials` file).
cli.credential_env = names.credential_env

--- The environment variable holding a vendor's base URL (`ENVCLONE_KONTENT_URL`).
-- @function url_env
-- @tparam string vendor
-- @treturn string
cli.url_env = names.url_env

--- The command-line name of an operation or field: `clone_environment` ->
-- `clone-environment`, `ecosystemId` -> `ecosystem-id`.
-- @function kebab
-- @tparam string name
-- @treturn string
cli.kebab = names.kebab

-- Where a usage error's JSON document goes: `out` in JSON mode (`--output
-- json`, or stdout not a terminal and no `--output text`), else nil.
local function json_target(argv, out, errout, tty)
  for i, a in ipairs(argv) do
    local v = a:match("^%-%-output=(.*)$")
    if a == "--output" then v = argv[i + 1] end
    if v == "json" then return out elseif v == "text" then return nil end
  end
  return not require("envclone.cli.output").tty(out, errout, tty).out and out or nil
end

-- The command line, its exit status (cli.main checks the output reached stdout).
local function run(argv, out, errout, tty)
  -- `envclone emulator` needs neither the library nor its C core, and runs
  -- under lua5.4 whichever Lua the core was built for: the modules that load
  -- them are required below it, not at the top
  if argv[1] == "emulator" then return require("envclone.cli.emulator").run(argv, errout, out) end
  if argv[1] == "batch" then return require("envclone.cli.batchfile").run(argv, out, errout, tty) end
  if argv[1] == "plan" or argv[1] == "apply" or argv[1] == "destroy" then
    return require("envclone.cli.set").run(argv, out, errout, tty)
  end
  local help = require("envclone.cli.help")
  if argv[1] == "list" then
    help.list(out)
    return EXIT.ok
  end
  if argv[1] == "--version" and argv[2] == nil then
    local core = require("envclone.core")
    out:write("envclone ", core.version, "\n", core.transport_version(), "\n")
    return EXIT.ok
  end
  if argv[1] == "help" then argv = { "--help" } end
  local ok, p = pcall(require("envclone.cli.args").parse, argv)
  if not ok then return exit.report_usage(errout, p, json_target(argv, out, errout, tty)) end
  if p.opts.help or not p.vendor then
    local to = p.opts.help and out or errout
    if p.op then help.op(to, p.op) elseif p.vendor then help.vendor(to, p.vendor) else help.top(to) end
    if p.opts.help then return EXIT.ok end
    local json_out = json_target(argv, out, errout, tty)
    if json_out then
      require("envclone.cli.output").write_error(json_out, { kind = "usage", message = "no vendor given" })
    end
    return EXIT.usage
  end
  if not p.op then
    help.vendor(errout, p.vendor)
    local json_out = json_target(argv, out, errout, tty)
    if json_out then
      require("envclone.cli.output").write_error(json_out, { kind = "usage",
        message = "no operation given for " .. p.vendor })
    end
    return EXIT.usage
  end
  return require("envclone.cli.operation").run(p, out, errout, tty)
end

--- Runs the command line.
-- @tparam table argv the arguments (`arg`)
-- @param[opt=io.stdout] out file for results and help
-- @param[opt=io.stderr] errout file for errors and the progress line
-- @tparam[opt] table tty `{ out = boolean, err = boolean }`: whether `out`
--   and `errout` are terminals (default: asks the system about stdout and stderr)
-- @treturn integer exit status (see `exit_codes`)
function cli.main(argv, out, errout, tty)
  out, errout = out or io.stdout, errout or io.stderr
  -- every byte reaches the user or the exit status says it did not
  return exit.finish(out, errout, run(argv, out, errout, tty))
end

return cli

