--- The emulator's control API, under `/_emulator/`:
--
--    GET    stats        counters: requests, by_operation, applied.{creates,by_operation}, created_names,
--                        faults (kind -> requests that got it)
--    GET    requests     the last 200 vendor requests (method, path, query, headers, body, operation, fault, status)
--    GET    state        the whole state, per vendor (debugging aid)
--    GET    objects      the objects per vendor, per parent, keyed for counting and finding
--                        duplicates (each vendor module's `objects_view`)
--    POST   reset        state, counters, log, faults, config and concurrency back to their start values
--    GET|PUT config      the vendors' settings (see each vendor module's `config`)
--    GET|PUT|DELETE faults   the fault plan (see envclone.emulator.faults)
--    GET    concurrency  open connections now; the most connections carrying vendor requests open
--                        at once, vendor requests in flight at once, and the same per limit key
--                        (Kontent: per environment), since start, reset or DELETE
--    DELETE concurrency  restarts those maxima from the current values
--    POST   shutdown     stops the server after answering
-- @module envclone.emulator.control

local json = require("envclone.emulator.json")
local faults = require("envclone.emulator.faults")

local object, array, NULL = json.object, json.array, json.null

local C = {}

local function ok_json(status, value)
  return { status = status, json = value }
end

--- An error of the control API (and of paths outside every vendor).
-- @tparam number status
-- @tparam string message
function C.error(status, message)
  local reason = require("envclone.emulator.util").REASONS[status] or "error"
  return { status = status, json = object{ error = reason:lower():gsub(" ", "_"), message = message } }
end

local function copy_counts(t)
  local out = object()
  for k, v in pairs(t) do out[k] = v end
  return out
end

local function stats_view(emu)
  local s = emu.stats
  return object{
    requests = s.requests,
    by_operation = copy_counts(s.by_operation),
    applied = object{ creates = s.applied.creates, by_operation = copy_counts(s.applied.by_operation) },
    created_names = copy_counts(s.created_names),
    faults = copy_counts(s.faults),
  }
end

local function config_view(emu)
  return copy_counts(emu.config)
end

local function state_view(emu)
  local view = object()
  for name, vendor in pairs(emu.vendors) do
    view[name] = vendor.state_view and vendor.state_view(emu, emu.state[name]) or object()
  end
  return view
end

local function objects_view(emu)
  local view = object()
  for name, vendor in pairs(emu.vendors) do
    view[name] = vendor.objects_view and vendor.objects_view(emu, emu.state[name]) or object()
  end
  return view
end

local function concurrency_view(emu)
  local c = emu.concurrency
  local per_key = object()
  for vendor, keys in pairs(c.max_per_key) do per_key[vendor] = copy_counts(keys) end
  return object{
    connections = emu.connections,
    vendor_connections = c.vendor_connections,
    max_connections = c.max_connections,
    requests_in_flight = c.in_flight,
    max_requests_in_flight = c.max_in_flight,
    max_in_flight_per_key = per_key,
  }
end

local function put_config(emu, req)
  local body, err = json.decode_object(req.body)
  if not body then return C.error(400, err) end
  local changes = {}
  for key, v in pairs(body) do
    local setting = emu.settings[key]
    if not setting then return C.error(400, "unknown setting '" .. tostring(key) .. "'") end
    if v ~= NULL then
      local value, msg = setting.check(v)
      if value == nil then return C.error(400, msg) end
      changes[key] = value
    end
  end
  for key, value in pairs(changes) do emu.config[key] = value end
  return ok_json(200, config_view(emu))
end

local ENDPOINTS = {
  stats = { GET = function(emu) return ok_json(200, stats_view(emu)) end },
  requests = { GET = function(emu) return ok_json(200, array(emu.log)) end },
  state = { GET = function(emu) return ok_json(200, state_view(emu)) end },
  objects = { GET = function(emu) return ok_json(200, objects_view(emu)) end },
  reset = { POST = function(emu)
    emu:reset()
    return ok_json(200, object{ ok = true })
  end },
  config = {
    GET = function(emu) return ok_json(200, config_view(emu)) end,
    PUT = put_config,
  },
  faults = {
    GET = function(emu) return ok_json(200, faults.view(emu.faults)) end,
    PUT = function(emu, req)
      local plan, err = emu:parse_fault_plan(req.body)
      if not plan then return C.error(400, "invalid fault plan: " .. err) end
      emu.faults = plan
      return ok_json(200, faults.view(plan))
    end,
    DELETE = function(emu)
      emu.faults = nil
      return ok_json(200, object{ ok = true })
    end,
  },
  concurrency = {
    GET = function(emu) return ok_json(200, concurrency_view(emu)) end,
    DELETE = function(emu)
      emu:reset_concurrency()
      return ok_json(200, concurrency_view(emu))
    end,
  },
  shutdown = { POST = function()
    local resp = ok_json(200, object{ ok = true })
    resp.shutdown = true
    return resp
  end },
}

--- Answers one control request.
-- @tparam table emu the emulator
-- @tparam table req the parsed request
-- @treturn table the response description
function C.handle(emu, req)
  local name = req.path:match("^/_emulator/([%w_]+)/?$")
  local endpoint = name and ENDPOINTS[name]
  if not endpoint then return C.error(404, "no such control endpoint") end
  local f = endpoint[req.method]
  if not f then return C.error(405, "method not allowed") end
  return f(emu, req)
end

return C
