--- The one checker of option tables: a client's layer options, a call's
-- per-call options, a waiter's arguments, `envclone.wait`'s and a batch's
-- options, a retry policy. One message style for all of them:
--
--     <where>: unknown <what> '<name>'
--     <where>: <what> '<name>' must be a <type>, got <type>
--     <where>: <what> '<name>' must be a finite, non-negative number of seconds, got <value>
--     <where>: <what> '<name>' must be a finite, non-negative number, got <value>
--     <where>: <what> '<name>' must be a non-negative number, got <value>
--
-- (`where`: "envclone", "envclone.wait", "envclone: wait_for_cloning", ...;
-- `what`: "option", "argument", "retry option"). Tables are read raw (next):
-- a caller's __index or __pairs must not run in the middle of a call.
-- @module envclone.options
local options = {}

-- A kind: a Lua type name ("number", "function", "string", "boolean",
-- "table"); "seconds" (a finite, non-negative number of seconds); "finite"
-- (a finite, non-negative number that is not seconds); "non-negative" (a
-- number >= 0, infinity allowed, NaN not); or true (any value).
local function check_value(where, what, k, kind, v, level)
  if kind == true or v == nil then return end
  local t = type(v)
  if kind == "seconds" or kind == "finite" or kind == "non-negative" then
    if t ~= "number" then
      error(string.format("%s: %s '%s' must be a number, got %s", where, what, tostring(k), t), level + 1)
    end
    if kind ~= "non-negative" and not (v >= 0 and v < math.huge) then -- NaN fails every comparison
      error(string.format("%s: %s '%s' must be a finite, non-negative number%s, got %s", where, what,
        tostring(k), kind == "seconds" and " of seconds" or "", tostring(v)), level + 1)
    end
    if kind == "non-negative" and (v ~= v or v < 0) then
      error(string.format("%s: %s '%s' must be a non-negative number, got %s", where, what, tostring(k),
        tostring(v)), level + 1)
    end
  elseif t ~= kind then
    error(string.format("%s: %s '%s' must be a %s, got %s", where, what, tostring(k), kind, t), level + 1)
  end
end

--- Checks one value against its kind; raises at `level` (as error's).
-- @tparam string where the message's prefix
-- @tparam string what "option", "argument", ...
-- @param k the name
-- @param kind a Lua type name, "seconds", "finite", "non-negative" or true
-- @param v the value (nil passes)
-- @tparam integer level
function options.check_value(where, what, k, kind, v, level)
  check_value(where, what, k, kind, v, level + 1)
end

--- Checks every entry of `t` that `kinds` names; an entry it does not name
-- raises (at `level`, as error's) unless `rest` is a table, which then
-- receives it. Returns the entries `kinds` names, in a new table.
-- @tparam table t the caller's table
-- @tparam table kinds name -> kind (see check_value)
-- @tparam string where the message's prefix
-- @tparam string what "option", "argument", ...
-- @tparam integer level
-- @tparam[opt] table rest receives the entries `kinds` does not name
-- @treturn table the named entries
function options.check(t, kinds, where, what, level, rest)
  local mine = {}
  for k, v in next, t do
    local kind = kinds[k]
    if kind then
      check_value(where, what, k, kind, v, level + 1)
      mine[k] = v
    elseif rest then
      rest[k] = v
    else
      error(string.format("%s: unknown %s '%s'", where, what, tostring(k)), level + 1)
    end
  end
  return mine
end

--- Does `t` hold any entry `kinds` names (read raw)?
-- @tparam table t
-- @tparam table kinds
-- @treturn boolean
function options.has_any(t, kinds)
  for k in next, kinds do
    if rawget(t, k) ~= nil then return true end
  end
  return false
end

return options
