--- Output: whether stdout and stderr are terminals, secrets masked in what
-- is printed, a result as a short summary for a terminal, and the live line
-- while waiting. JSON goes through envclone.cli.json.
-- @module envclone.cli.output

local envclone = require("envclone")
local core = require("envclone.core")
local json = require("envclone.cli.json")
local names = require("envclone.cli.names")

local output = {}

local function isatty(fd)
  -- the shell inherits our descriptors, so `test -t` answers for this process
  local ok = os.execute("test -t " .. fd)
  return ok == true or ok == 0
end

--- Whether `out` and `errout` are terminals: `tty` when the caller said,
-- else the system's answer for stdout and stderr (other files are not).
-- @param out file for results
-- @param errout file for errors
-- @tparam[opt] table tty `{ out = boolean, err = boolean }`
-- @treturn table `{ out = boolean, err = boolean }`
function output.tty(out, errout, tty)
  return tty or { out = out == io.stdout and isatty(1), err = errout == io.stderr and isatty(2) }
end

--- A copy of `value` in which every credential we sent prints as ***, in any
-- form (Kontent's clone answer holds the API key): the C core's one masking
-- routine (src/ec_mask.c) does the matching, for keys and values.
-- @param value
-- @tparam {string,...} secrets
-- @tparam[opt] integer depth
-- @return the masked copy
function output.scrub(value, secrets, depth)
  depth = depth or 0
  if type(value) == "string" then
    return core.mask(value, secrets)
  elseif type(value) == "table" and depth < 64 then
    local copy = {}
    for k, v in pairs(value) do copy[output.scrub(k, secrets, depth + 1)] = output.scrub(v, secrets, depth + 1) end
    return setmetatable(copy, getmetatable(value))
  end
  return value
end

-- Result fields a terminal shows as *** (new environments' keys and tokens);
-- --output json prints them.
local function secret_name(k)
  local l = tostring(k):lower()
  return l:find("key$") or l:find("token") or l:find("secret") or l:find("cookie") or l:find("password")
end

--- Writes a result as a terminal shows it: one line per field, keys and tokens hidden.
-- @param out file
-- @tparam table op the operation's row
-- @param res the result
-- @tparam[opt] table state the waiter's last state (`--wait`)
-- @tparam[opt] number waited seconds since the call started
function output.summary(out, op, res, state, waited)
  local head = op.vendor .. " " .. names.kebab(op.name) .. ": ok"
  -- the waiter's row names the state's field (Kontent: cloning_state, shown as "cloning done")
  local field = op.waiter and op.waiter.state_field
  if field and type(state) == "table" and state[field] then
    head = head .. string.format(", %s %s after %.0f s", (field:gsub("_state$", "")), tostring(state[field]),
      waited or 0)
  end
  out:write(head, "\n")
  if type(res) ~= "table" then return end
  local rows = {}
  for k, v in pairs(res) do rows[#rows + 1] = { tostring(k), v } end
  table.sort(rows, function(a, b) return a[1] < b[1] end)
  local hidden = false
  for _, row in ipairs(rows) do
    local k, v = row[1], row[2]
    local shown
    if v == envclone.null then shown = "-"
    elseif secret_name(k) and v ~= "***" then shown = "***"; hidden = true
    elseif type(v) == "table" then shown = json.encode(v)
    else shown = tostring(v) end
    out:write(string.format("  %-24s %s\n", json.utf8_repair(k), json.utf8_repair(shown)))
  end
  if hidden then out:write("  (keys hidden on a terminal: --output json prints them)\n") end
end

--- The live line while waiting (the waiter's `on_progress`): state, elapsed time, next poll.
-- @param errout file (a terminal)
-- @tparam table op the operation's row (its `waiter` names the state's field)
-- @treturn function
function output.progress_writer(errout, op)
  local field = op.waiter.state_field
  local label = field:gsub("_state$", "")
  return function(state, elapsed, poll, err, next_delay)
    local what = type(state) == "table" and state[field] or (err and "poll failed" or "starting")
    local line = string.format("waiting: %s %s, %.1fs elapsed, poll %d", label, tostring(what), elapsed, poll)
    if next_delay then line = line .. string.format(", next poll in %.1fs", next_delay) end
    errout:write("\r\27[K", line)
    errout:flush()
  end
end

return output
