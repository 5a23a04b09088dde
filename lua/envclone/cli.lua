--- The `envclone` command line: one operation per invocation, arguments as
-- `field=value`, credentials from the environment (never from argv, which
-- other users can read in the process list), the result as JSON.
--
--     KONTENT_API_KEY=... envclone kontent clone_environment \
--         environment_id=8d20758c-d74c-4f59-ae04-ee928c0816b7 name=Develop --wait
--
-- Exit status: 0 success, 1 the call failed (the error on stderr), 2 usage or
-- validation error (nothing was sent).
-- @module envclone.cli
local envclone = require("envclone")
local cjson = require("cjson.safe")

local cli = {}

--- Where each vendor's credentials come from.
cli.credential_env = {
  versori = { token = "VERSORI_TOKEN", cookie = "VERSORI_COOKIE" },
  qovery = { token = "QOVERY_TOKEN" },
  kontent = { api_key = "KONTENT_API_KEY" },
  droplit = { token = "DROPLIT_TOKEN" },
}

local function find_op(vendor, name)
  for _, op in ipairs(envclone.operations) do
    if op.vendor == vendor and op.name == name then return op end
  end
end

local function usage(out)
  out:write([[
usage: envclone VENDOR OPERATION [field=value ...] [options]
       envclone list

Arguments are the vendor's field names (see `envclone list`). Values are
strings; booleans are true/false; arrays of strings are comma-separated or
JSON (roles_to_activate=a,b); objects are JSON (copy_data_options='{"content_items_assets":true}').

Options:
  --base-url URL      API base URL (default: the vendor's, or $ENVCLONE_<VENDOR>_URL)
  --timeout SECONDS   per attempt (default 30)
  --no-retry          one attempt only
  --wait              Kontent clone_environment: wait until the clone is done

Credentials come from the environment only: VERSORI_TOKEN, VERSORI_COOKIE,
QOVERY_TOKEN, KONTENT_API_KEY, DROPLIT_TOKEN.
]])
end

local short_type = { ["array of strings"] = "string[]", ["table (object)"] = "object" }

local function list(out)
  for _, op in ipairs(envclone.operations) do
    local fields = {}
    for _, f in ipairs(op.fields) do
      fields[#fields + 1] = f.name .. (f.required and "*" or "") .. ":" .. (short_type[f.type] or f.type)
    end
    out:write(string.format("%-8s %-31s %-6s %s\n", op.vendor, op.name, op.method, table.concat(fields, " ")))
  end
  out:write("(* required)\n")
end

-- Turns "value" into the Lua type the field wants; nil, message when it cannot.
local function convert(field, value)
  if field.type == "boolean" then
    if value == "true" then return true elseif value == "false" then return false end
    return nil, "field '" .. field.name .. "' must be true or false"
  elseif field.type == "array of strings" then
    if value:match("^%s*%[") then
      local t, err = cjson.decode(value)
      if type(t) ~= "table" then return nil, "field '" .. field.name .. "': " .. tostring(err) end
      return envclone.array(t)
    end
    local items = {}
    for item in value:gmatch("[^,]+") do items[#items + 1] = item end
    return envclone.array(items)
  elseif field.type == "table (object)" then
    local t, err = cjson.decode(value)
    if type(t) ~= "table" then
      return nil, "field '" .. field.name .. "' must be a JSON object: " .. tostring(err or "not an object")
    end
    return t
  end
  return value
end

local function parse(argv)
  local vendor, opname = argv[1], argv[2]
  local op = find_op(vendor or "", opname or "")
  if not op then
    return nil, "unknown operation '" .. tostring(vendor) .. " " .. tostring(opname) .. "' (see envclone list)"
  end
  local fields = {}
  for _, f in ipairs(op.fields) do fields[f.name] = f end
  local args, opts = {}, { retry = nil, wait = false }
  local i = 3
  while argv[i] do
    local a = argv[i]
    if a == "--base-url" or a == "--timeout" then
      local v = argv[i + 1]
      if not v then return nil, a .. " needs a value" end
      if a == "--base-url" then opts.base_url = v else
        opts.timeout = tonumber(v)
        if not opts.timeout then return nil, "--timeout needs a number of seconds" end
      end
      i = i + 2
    elseif a == "--no-retry" then
      opts.retry = false
      i = i + 1
    elseif a == "--wait" then
      opts.wait = true
      i = i + 1
    else
      local name, value = a:match("^([%w_]+)=(.*)$")
      if not name then return nil, "expected field=value or an option, got '" .. a .. "'" end
      local field = fields[name]
      local converted, err = value, nil
      if field then converted, err = convert(field, value) end -- unknown names: envclone says which
      if converted == nil then return nil, err end
      args[name] = converted
      i = i + 1
    end
  end
  return op, args, opts
end

--- Runs the command line.
-- @tparam table argv the arguments (arg)
-- @param out file for results
-- @param errout file for errors
-- @treturn integer exit status
function cli.main(argv, out, errout)
  out, errout = out or io.stdout, errout or io.stderr
  if not argv[1] or argv[1] == "--help" or argv[1] == "-h" then
    usage(argv[1] and out or errout)
    return argv[1] and 0 or 2
  end
  if argv[1] == "list" then
    list(out)
    return 0
  end
  local op, args, opts = parse(argv)
  if not op then
    errout:write("envclone: ", args, "\n")
    return 2
  end
  local client_opts = { base_url = opts.base_url or os.getenv("ENVCLONE_" .. op.vendor:upper() .. "_URL"),
    timeout = opts.timeout, retry = opts.retry }
  for option, var in pairs(cli.credential_env[op.vendor]) do client_opts[option] = os.getenv(var) end
  local ok, client = pcall(envclone[op.vendor], client_opts)
  if not ok then
    errout:write(tostring(client), "\n")
    return 2
  end
  if opts.wait then args.wait = true end
  local res, extra = client[op.name](client, args)
  client:close()
  if res == nil then
    errout:write(tostring(extra), "\n")
    return extra.kind == "validation" and 2 or 1
  end
  local text = cjson.encode({ result = res, state = opts.wait and extra or nil })
  out:write(text or "null", "\n")
  return 0
end

return cli
