--- Help texts, written from the operation table.
-- `envclone --help`, a vendor's and an operation's help, the batch command's,
-- and `envclone list`.
-- @module envclone.cli.help

local args = require("envclone.cli.args")
local names = require("envclone.cli.names")
local ops = require("envclone.cli.ops")

local kebab = names.kebab

local help = {}

local EXIT_HELP = [[
Exit status: 0 success, 1 other failure, 2 usage (bad command line or
credentials; nothing sent), 3 validation (nothing sent), 4 the vendor
answered with an HTTP error, 5 transport (no usable answer), 6 timeout,
7 the wait ended in a failed state, 8 batch: some calls failed, 130 / 143
interrupted by SIGINT / SIGTERM (what was known, created ids included, is
printed first). With --output json (or stdout not a terminal) a failure
prints {"error": {"kind": ..., "message": ..., ...}} on stdout
(doc/cli-output.schema.json).
]]

local BATCH_USAGE = [[
usage: envclone batch FILE [--check] [--max-in-flight N] [--timeout SECONDS] [--no-retry]
                           [--credentials FILE] [--output json|text] [--progress] [--verbose|--debug]
                           [--rate-limit-store URL]

Runs the calls in FILE (a JSON array; "-" reads stdin) together, as one batch
(envclone.batch): at most N requests on the wire at once (default 16), inside
each vendor's rate limits. Each element is
  { "vendor": "kontent", "operation": "clone-environment", "args": { ... } }
(operation and argument names in kebab-case, as on the command line, or the
library's; args as the library takes them, e.g. "wait": true after a Kontent
clone; a waiter such as "wait-for-cloning" is an operation too).

Every call is validated before any is sent: a file with one invalid call
sends nothing (exit 3) and prints each call with "valid": true or false and
its error. --check does only that. Otherwise prints a JSON array of results in
the file's order on stdout, each saying which call it is:
  {"index": 1, "vendor": ..., "operation": ..., "args": {...}, "ok": true, "result": ..., "extra": ...}
  {"index": 2, ..., "ok": false, "error": {"kind": ..., "message": ..., ...}}
(--output text: one line per call). --progress writes a line on stderr per
finished call, per retry and per poll; on a terminal a progress line shows.
SIGINT / SIGTERM stop starting calls, let the calls on the wire finish, and
print every result so far (calls never started: kind "interrupted", "sent":
false), exit 130 / 143; a second signal abandons the calls on the wire.
Base URLs come from $ENVCLONE_<VENDOR>_URL or $ENVCLONE_EMULATOR_URL,
credentials as for a single call.

Exit status: 0 every call succeeded; 8 some calls failed (each result says
which and why); 3 a call is invalid (nothing sent); 2 usage (nothing sent);
130 / 143 interrupted.
]]

local function credential_names()
  local list = {}
  for _, vendor in ipairs(ops.vendors) do
    for _, option in ipairs({ "token", "cookie", "api_key" }) do
      local var = names.credential_env[vendor][option]
      if var then list[#list + 1] = var end
    end
  end
  return table.concat(list, ", ")
end

local function write_options(out, op)
  out:write("Options:\n")
  for _, o in ipairs(args.options) do
    local shown
    if op == nil then shown = not o.waiter
    elseif op.is_waiter then shown = not o.create_only
    else shown = not o.waiter and (not o.wait or ops.supports_wait(op)) end
    if o.lookup and not (op and op.lookup) then shown = false end
    if shown then
      out:write(string.format("  %-26s %s\n", o[1] .. (o[2] and " " .. o[2] or ""), o[3]))
    end
  end
end

-- Wraps `text` at `width` columns; lines start with `indent`, the first with
-- `first` when given (a hanging indent).
local function wrap(text, indent, width, first)
  local lines, line = {}, first or indent
  indent = first and (" "):rep(#first) or indent
  for word in text:gmatch("%S+") do
    if #line > #indent and #line + 1 + #word > width then
      lines[#lines + 1] = line
      line = indent .. word
    else
      line = (#line > #indent) and (line .. " " .. word) or (line .. word)
    end
  end
  if #line > #indent then lines[#lines + 1] = line end
  return table.concat(lines, "\n") .. "\n"
end

--- Writes the command line's help: every vendor's operations, the options, credentials, exit statuses.
-- (`envclone --help`)
-- @param out file
function help.top(out)
  out:write("usage: envclone VENDOR OPERATION [--FIELD VALUE ...] [options]\n",
    "       envclone VENDOR --help           the vendor's operations\n",
    "       envclone VENDOR OPERATION --help the operation's fields\n",
    "       envclone list                    every operation on one line\n",
    "       envclone batch FILE [--check]    a JSON array of calls run together (see batch --help)\n",
    "       envclone plan|apply|destroy SET.json --set NAME  a set of objects (see apply --help)\n",
    "       envclone emulator [--port N] [--faults PLAN]  the local emulator (see --help)\n",
    "       envclone --version               envclone's and libcurl's versions\n\n",
    "Vendors and operations:\n")
  for _, vendor in ipairs(ops.vendors) do
    local list = {}
    for _, op in ipairs(ops.by_vendor[vendor]) do list[#list + 1] = kebab(op.name) end
    out:write(wrap(table.concat(list, ", "), "", 78, string.format("  %-8s ", vendor)))
  end
  out:write("\n")
  write_options(out, nil)
  out:write("\n", wrap("Credentials come from the environment (" .. credential_names()
    .. ") or from --credentials FILE; never from the command line.", "", 78), "\n", EXIT_HELP)
end

--- Writes a vendor's help: its operations and credentials.
-- (`envclone VENDOR --help`)
-- @param out file
-- @tparam string vendor
function help.vendor(out, vendor)
  out:write("usage: envclone ", vendor, " OPERATION [--FIELD VALUE ...] [options]\n\n", "Operations:\n")
  for _, op in ipairs(ops.by_vendor[vendor]) do
    out:write(string.format("  %-31s %-6s %s\n", kebab(op.name), op.method, op.path))
    if ops.summary(op) then out:write(wrap(ops.summary(op), "      ", 78)) end
  end
  local vars = {}
  for option, var in pairs(names.credential_env[vendor]) do vars[#vars + 1] = var .. " (" .. option .. ")" end
  table.sort(vars)
  out:write("\nCredentials: ", table.concat(vars, ", "), ".\n",
    "`envclone ", vendor, " OPERATION --help` lists an operation's fields.\n")
end

local metavars = { ["array of strings"] = "LIST", ["table (object)"] = "JSON" }

local function metavar(f)
  if f.type == "boolean" then return nil end
  if metavars[f.type] then return metavars[f.type] end
  local fmt = f.format or ""
  if fmt:find("UUID") then return "UUID" end
  if fmt:find("ULID") then return "ULID" end
  return "TEXT"
end

-- The facts the validator applies to a field, in words.
local function field_facts(f)
  local facts = { f.members and "JSON object with the members below" or f.type == "table (object)"
    and "JSON object" or f.type }
  if f["in"] == "path" then facts[#facts + 1] = "in the path"
  elseif f["in"] == "header" then facts[#facts + 1] = "sent as the " .. (f.wire or f.name) .. " header" end
  if f.format then
    facts[#facts + 1] = (f.type == "array of strings" and "each " or "") .. f.format
  end
  if f.min_len and f.max_len and not f.format then
    facts[#facts + 1] = string.format("%d-%d characters", f.min_len, f.max_len)
  end
  if f.charset then facts[#facts + 1] = "only " .. f.charset end
  if f.max_items then facts[#facts + 1] = "at most " .. f.max_items .. " items, comma-separated or a JSON array" end
  if f.max_depth then facts[#facts + 1] = "nested at most " .. f.max_depth .. " deep" end
  if f.reserved then facts[#facts + 1] = "not " .. table.concat(f.reserved, " or ") end
  return table.concat(facts, "; ")
end

local function write_field(out, f, prefix, required_mark)
  local flag = "--" .. prefix .. kebab(f.name)
  local mv = metavar(f)
  local head = "  " .. flag .. (mv and " " .. mv or "") .. (f.required and required_mark or "")
  out:write(head, "\n", wrap(field_facts(f), "      ", 78))
  if f.description then out:write(wrap(f.description, "      ", 78)) end
  for _, m in ipairs(f.members or {}) do
    write_field(out, m, prefix .. kebab(f.name) .. ".", "")
  end
end

--- Writes an operation's help: its fields and options.
-- (`envclone VENDOR OPERATION --help`)
-- @param out file
-- @tparam table op the operation's row
function help.op(out, op)
  local line = { "usage: envclone", op.vendor, kebab(op.name) }
  for _, f in ipairs(op.fields) do
    if f.required then
      -- a required boolean is a flag pair: --enable-webhooks | --no-enable-webhooks
      local mv = metavar(f)
      line[#line + 1] = mv and ("--" .. kebab(f.name) .. " " .. mv)
        or ("--[no-]" .. kebab(f.name))
    end
  end
  line[#line + 1] = "[options]"
  out:write(table.concat(line, " "), "\n\n")
  if ops.summary(op) then out:write(wrap(ops.summary(op), "", 78), "\n") end
  out:write(op.method, " ", op.path, "\n")
  if op.page then out:write("Vendor page: ", op.page, "\n") end
  out:write("\n")
  out:write("Fields (the vendor's names; * required):\n")
  for _, f in ipairs(op.fields) do write_field(out, f, "", " *") end
  out:write("  Booleans: --FLAG, --no-FLAG or --FLAG=true|false. The library's FIELD=VALUE form also works.\n\n")
  write_options(out, op)
  out:write("\n", wrap("Credential: " .. ops.credential_words(op, true)
    .. ", from the environment or --credentials FILE.", "", 78), "\n", EXIT_HELP)
end

--- Writes the batch command's help.
-- (`envclone batch --help`)
-- @param out file
function help.batch(out)
  out:write(BATCH_USAGE)
end

--- Writes `envclone list`: every operation on one line, with its fields,
-- each vendor's waiters (commands of their own) after its operations.
-- @param out file
function help.list(out)
  local short_type = { ["array of strings"] = "string[]", ["table (object)"] = "object" }
  local rows = {}
  for _, vendor in ipairs(ops.vendors) do
    for _, op in ipairs(ops.by_vendor[vendor]) do rows[#rows + 1] = op end
  end
  for _, op in ipairs(rows) do
    local fields = {}
    for _, f in ipairs(op.fields) do
      fields[#fields + 1] = f.name .. (f.required and "*" or "") .. ":" .. (short_type[f.type] or f.type)
    end
    out:write(string.format("%-8s %-31s %-6s %s\n", op.vendor, kebab(op.name), op.method,
      table.concat(fields, " ")))
  end
  out:write("(* required)\n")
end

return help
