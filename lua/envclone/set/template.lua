--- Templates in a set file's arguments: `{set}`, `{set_id}` and
-- `{<object>.<field>}` (a value of an earlier object's result).
--
-- A `{name}` whose name is made of letters, digits, `_`, `-` and `.` is a
-- variable; any other brace is literal text. A string that is one variable
-- and nothing else takes the variable's value as is (a number stays a
-- number); inside a longer string the value is written as text.
-- @module envclone.set.template
local template = {}

local VAR = "{([%w_%.%-]+)}"

--- The object variables (`{obj.field}`) of `v` (a string or a table of
-- them, walked deeply), added to `refs` as `refs[#refs+1] = { object =, field =, var = }`;
-- and the first variable that is neither `set`, `set_id` nor `obj.field`.
-- @param v
-- @tparam table refs
-- @treturn ?string the first unknown variable
function template.scan(v, refs)
  local bad
  if type(v) == "string" then
    for name in v:gmatch(VAR) do
      if name ~= "set" and name ~= "set_id" then
        local obj, field = name:match("^([%a_][%w_%-]*)%.([%w_][%w_%.]*)$")
        if obj then
          refs[#refs + 1] = { object = obj, field = field, var = name }
        else
          bad = bad or name
        end
      end
    end
  elseif type(v) == "table" then
    for _, x in pairs(v) do
      local b = template.scan(x, refs)
      bad = bad or b
    end
  end
  return bad
end

-- the value at dotted `path` of `t` (the lookups' own reader)
local get_path = require("envclone.reconcile").get_path
template.get_path = get_path

--- `v` with its variables replaced: `vars` holds `set` and `set_id`,
-- `values[obj]` an object's values (a table, read by dotted field).
-- @param v a string, or a table walked deeply (a copy is returned; the
--   array metatable is kept)
-- @tparam table vars
-- @tparam table values
-- @return the rendered value, or nil and the variable that has no value
function template.render(v, vars, values)
  if type(v) == "string" then
    local missing
    local function value_of(name)
      if vars[name] ~= nil then return vars[name] end
      local obj, field = name:match("^([%a_][%w_%-]*)%.([%w_][%w_%.]*)$")
      local got = obj and values[obj] ~= nil and get_path(values[obj], field) or nil
      if got == nil then missing = missing or name end
      return got
    end
    local whole = v:match("^" .. VAR .. "$")
    if whole then
      local got = value_of(whole)
      if missing then return nil, missing end
      return got
    end
    local out = v:gsub(VAR, function(name)
      local got = value_of(name)
      if got == nil then return nil end
      return tostring(got)
    end)
    if missing then return nil, missing end
    return out
  elseif type(v) == "table" then
    local out = setmetatable({}, getmetatable(v))
    for k, x in pairs(v) do
      local r, missing = template.render(x, vars, values)
      if missing then return nil, missing end
      out[k] = r
    end
    return out
  end
  return v
end

return template
