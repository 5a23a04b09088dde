--- JSON for the command line: every byte of JSON it reads or writes goes
-- through these two functions, the C core's exact, locale-free pair: integers
-- as written (no 14-digit rounding), [] stays [] and {} stays {} (decoded
-- arrays carry envclone.array_mt), floats in the shortest form that reads back.
-- @module envclone.cli.json

local core = require("envclone.core")

local json = {}

--- Decodes JSON text from the command line.
-- @tparam string text
-- @return[1] the value
-- @return[2] nil
-- @treturn[2] string message, when the text is not JSON
function json.decode(text)
  local value, err = core.json_decode(text)
  if value == nil then return nil, tostring(err) end
  return value
end

--- Encodes a result for stdout.
-- @param value
-- @treturn string
function json.encode(value)
  return (assert(core.json_encode(value)))
end

return json
