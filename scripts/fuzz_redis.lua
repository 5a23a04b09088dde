-- Fuzz harness for envclone.redis's reply reader: random bytes and mutated
-- valid replies, read through a reader that hands them out line by line
-- and byte by byte. Every input must give a reply or (nil, error): never a
-- raise, never a read past the input's end being asked more than once.
-- Usage: lua5.4 scripts/fuzz_redis.lua [iterations] [seed]
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = (os.getenv("ENVCLONE_BUILD") or "build") .. "/?.so;" .. package.cpath
local redis = require("envclone.redis")

local n = tonumber(arg[1]) or 20000
local seed = tonumber(arg[2]) or os.time()
math.randomseed(seed)

local valid = { "+OK\r\n", "-ERR x\r\n", ":42\r\n", "$3\r\nabc\r\n", "$-1\r\n", "*2\r\n$1\r\na\r\n:1\r\n",
  "*2\r\n$8\r\n0.100000\r\n:0\r\n", "*-1\r\n", "*0\r\n" }
local alphabet = "+-:$*\r\n0123456789-abc"

local function mutate(s)
  local kind = math.random(4)
  if kind == 1 then return s:sub(1, math.random(0, #s)) end -- truncated
  local i = math.random(1, #s)
  local c = alphabet:sub(math.random(#alphabet), math.random(#alphabet))
  if kind == 2 then return s:sub(1, i - 1) .. c .. s:sub(i + 1) end
  if kind == 3 then return s:sub(1, i) .. c .. s:sub(i + 1) end
  local out = {}
  for k = 1, math.random(1, 40) do out[k] = string.char(math.random(0, 255)) end
  return table.concat(out)
end

for it = 1, n do
  local input = mutate(valid[math.random(#valid)])
  if math.random(3) == 1 then input = input .. mutate(valid[math.random(#valid)]) end
  local pos, eof_reads = 1, 0
  local function read(p)
    if p == "*l" then
      local e = input:find("\n", pos, true)
      if not e then eof_reads = eof_reads + 1; return nil, "closed" end
      local line = input:sub(pos, e - 1):gsub("\r$", "")
      pos = e + 1
      return line
    end
    assert(type(p) == "number" and p >= 2 and p <= 1024 * 1024 + 2, "a read of a bad size: " .. tostring(p))
    if pos + p - 1 > #input then eof_reads = eof_reads + 1; return nil, "closed" end
    local s = input:sub(pos, pos + p - 1)
    pos = pos + p
    return s
  end
  local ok, v, err = pcall(redis.read_reply, read)
  if not ok then error(string.format("iteration %d (seed %d) raised: %s on %q", it, seed, tostring(v), input)) end
  if v == nil and type(err) ~= "string" then
    error(string.format("iteration %d (seed %d): nil without an error on %q", it, seed, input))
  end
  if eof_reads > 1 then error(string.format("iteration %d (seed %d): read on after the end: %q", it, seed, input)) end
end
print(string.format("fuzz_redis: %d inputs, seed %d: ok", n, seed))
