--- Exactly once: creates found again by their natural key, and deletes that
-- finish.
--
-- A create row's `lookup` column (the operation table, src/ec_ops.c) says
-- how to find what the create makes: the read to call and how its
-- arguments map, where the candidates are in the read's answer, the key
-- field and how it compares. With it, a create
--
-- 1. reads the key's matches first (the snapshot): with `if_exists =
--    "adopt"` one match is returned as is (`adopted = true`); with the
--    default `"error"` the create is sent whatever the snapshot holds, and
--    the vendor's own answer ("already exists") is the caller's;
-- 2. is sent (`call.run`: the retry policy never re-sends a create whose
--    answer may be lost);
-- 3. when its outcome is unknown (`maybe_applied`), reads again for a grace
--    window: one new match is the create (`reconciled = true`, the lost
--    answer's error in `lost_error`); none after the window means nothing
--    was made, and the create is sent again (`resends` times, 1 by default);
--    several, or a match that was there before, are an error (`reason =
--    "ambiguous"` / `"exists"`), never a guess.
--
-- The snapshot is what makes step 3 sound: without it a match found after
-- a lost answer could be an object someone made earlier (whose create the
-- vendor refused). It costs one read per create; `reconcile = false` (a
-- client option or a per-call argument) skips it and leaves a lost answer
-- `maybe_applied`, as do creates whose lookup cannot run (Kontent without a
-- Subscription API key and `subscription_id`, Droplit without an `alias`):
-- their error says why in `not_reconciled`.
--
-- A teardown row (`deletes`) returns `{ deleted = true }` (with the vendor's
-- answer in `answer` when it has a body), `already_gone = true` when the
-- object was not there (404), and waits for a background deletion with
-- `wait = true` (the row's waiter: Qovery's `wait_for_deletion`).
-- @module envclone.reconcile
local core = require("envclone.core")
local runtime = require("envclone.runtime")

local reconcile = {}

--- Defaults of the `reconcile` option (a client option or a per-call
-- argument: `true`, `false` or a table of these).
-- @field grace seconds during which "not found" after a lost answer may
--   still be a write not yet visible (3)
-- @field resends how many times a create found absent is sent again: 1
--   where the vendor keeps the key unique (a second create of it would be
--   refused), 0 where it does not (Kontent's names): there a create that
--   is only slow to show would be made twice
-- @table defaults
reconcile.defaults = { grace = 3 }

local policy_kinds = { grace = "seconds", resends = "finite" }

--- The reconcile policy of a call: `false` (off), or a table with `grace`
-- and `resends`. Raises (at `level`) on a malformed one.
-- @param v true, false, nil or a table
-- @param[opt] base the client's policy
-- @tparam integer level
-- @return false or a table
function reconcile.policy(v, base, level)
  if v == nil then return base == nil and reconcile.defaults or base end
  if v == false then return false end
  if v == true then return reconcile.defaults end
  if type(v) ~= "table" then
    error("envclone: reconcile must be true, false or a table, got " .. type(v), level + 1)
  end
  local p = require("envclone.options").check(v, policy_kinds, "envclone", "reconcile option", level + 1)
  if p.resends and p.resends ~= math.floor(p.resends) then
    error("envclone: reconcile option 'resends' must be an integer, got " .. tostring(p.resends), level + 1)
  end
  return { grace = p.grace or reconcile.defaults.grace, resends = p.resends }
end

local if_exists_values = { error = true, adopt = true }

--- Checks `if_exists` (raises at `level` on a value other than "error" and "adopt").
-- @param v
-- @tparam integer level
function reconcile.check_if_exists(v, level)
  if v ~= nil and not if_exists_values[v] then
    error("envclone: if_exists must be \"error\" or \"adopt\", got " .. tostring(v), level + 1)
  end
end

--- The value at dotted `path` of `t` ("pagination.continuation_token"),
-- or nil.
-- @param t
-- @tparam string path
function reconcile.get_path(t, path)
  for part in path:gmatch("[^.]+") do
    if type(t) ~= "table" then return nil end
    t = t[part]
  end
  return t
end
local get_path = reconcile.get_path

--- A key as its lookup compares it: as is (`match = "exact"`), or trimmed
-- of white space and lower-cased (`"fold"`: Qovery's names).
-- @tparam table lookup a row's `lookup`
-- @param key
-- @return the key's comparable form
function reconcile.key_form(lookup, key)
  if type(key) ~= "string" or lookup.match ~= "fold" then return key end
  return (key:gsub("^%s+", ""):gsub("%s+$", ""):lower())
end
local key_form = reconcile.key_form

--- Do keys `a` and `b` name the same object under `lookup`'s comparison?
-- @tparam table lookup
-- @param a
-- @param b
-- @treturn boolean
function reconcile.same_key(lookup, a, b)
  return key_form(lookup, a) == key_form(lookup, b)
end
local same_key = reconcile.same_key

local function new_error(op, fields)
  fields.vendor, fields.operation = op.vendor, op.name
  return core.error(fields)
end

--- Why the lookup of `op` can never run for the client of `handle` (a
-- credential or a setting it lacks), or nil when it can. The same for
-- every call of that client: `envclone.call` asks once per client.
-- @tparam table op the create's row
-- @param handle the client's core handle
-- @treturn ?string why not
function reconcile.client_why_not(op, handle)
  local l = op.lookup
  if l.credential or l.client_args then
    local s = handle:settings()
    if l.credential and not (s.credentials_held and s.credentials_held[l.credential]) then
      return "the lookup (" .. op.vendor .. "." .. l.read .. ") needs the client option '" .. l.credential .. "'"
    end
    for _, setting in pairs(l.client_args or {}) do
      if s[setting] == nil then
        return "the lookup (" .. op.vendor .. "." .. l.read .. ") needs the client option '" .. setting .. "'"
      end
    end
  end
end

--- Why the lookup of `op` cannot run for this call (no key in `args`, or
-- what `client_why_not` says), or nil when it can.
-- @tparam table op the create's row (with `lookup`)
-- @tparam table args the create's arguments
-- @param handle the client's core handle
-- @treturn ?string why not
function reconcile.why_not(op, args, handle)
  local l = op.lookup
  local key = type(args) == "table" and rawget(args, l.key_arg) or nil
  if key == nil or key == "" then
    return op.vendor .. "." .. op.name .. " without '" .. l.key_arg .. "' has no key to look up"
  end
  return reconcile.client_why_not(op, handle)
end

-- The candidates of one answer: the list (or, with a sublist, the sublist of
-- the group that holds the create's group_arg object), as an array.
local function candidates_of(l, answer, args)
  if not l.list then return { answer } end
  local list = get_path(answer, l.list)
  if type(list) ~= "table" then return {} end
  if not l.sublist then return list end
  local want = rawget(args, l.group_arg)
  for _, group in ipairs(list) do
    local sub = type(group) == "table" and group[l.sublist]
    if type(sub) == "table" then
      for _, item in ipairs(sub) do
        if type(item) == "table" and same_key(l, item[l.id], want) then return sub end
      end
    end
  end
  return {}
end

local MAX_PAGES = 1000 -- a bound on a paged read: a server that never ends its pages

--- Reads the matches of the create's key.
-- @tparam table client
-- @param handle its core handle
-- @tparam table op the create's row
-- @tparam table args the create's arguments
-- @return an array of matching objects and the read's (last) answer, or nil
--   and the read's error
function reconcile.find(client, handle, op, args)
  local l = op.lookup
  local rargs = {}
  for to, from in pairs(l.args or {}) do rargs[to] = rawget(args, from) end
  if l.client_args then
    local s = handle:settings()
    for to, setting in pairs(l.client_args) do rargs[to] = s[setting] end
  end
  local key = rawget(args, l.key_arg)
  local read = client[l.read]
  local matches, answer = {}
  for _ = 1, MAX_PAGES do
    local res, err = read(client, rargs)
    if res == nil then
      -- a read addressed by the key answers 404 when nothing has it
      if not l.list and err.reason == "not_found" then return matches, nil end
      return nil, err
    end
    answer = res
    for _, item in ipairs(candidates_of(l, res, args)) do
      -- a read by the key itself may not echo it (Droplit's environment has no alias field)
      if type(item) == "table" and (l.list == nil and item[l.key] == nil or same_key(l, item[l.key], key)) then
        matches[#matches + 1] = item
      end
    end
    local next_page = l.page_next and get_path(res, l.page_next)
    if type(next_page) ~= "string" or next_page == "" then return matches, answer end
    rargs[l.page_arg] = next_page
  end
  return nil, new_error(op, { kind = "decode", message = "the lookup read " .. MAX_PAGES
    .. " pages and the server still gave a next one" })
end

--- The object a create made, from the create's answer `res`: `res` itself,
-- or -- where the create answers with the object that holds it (`lookup.result
-- = "read"`: Versori's clone answers the whole project) -- the item of
-- `lookup.list` whose key is the create's key argument (nil when none is).
-- The inverse of how a reconciled or adopted call builds its answer.
-- @tparam table lookup a create row's `lookup`
-- @param res the create's answer
-- @tparam table args the create's arguments
-- @return the object, or nil
function reconcile.made_object(lookup, res, args)
  if not (lookup.result == "read" and lookup.list) then return res end
  local list = type(res) == "table" and get_path(res, lookup.list)
  if type(list) ~= "table" or type(args) ~= "table" then return nil end
  local want = rawget(args, lookup.key_arg)
  for _, item in ipairs(list) do
    if type(item) == "table" and same_key(lookup, item[lookup.key], want) then return item end
  end
  return nil
end

-- A success result: the matching object, or the read's whole answer when
-- the create answers with it (Versori's clone answers the project).
local function result_of(l, match, answer)
  if l.result == "read" and type(answer) == "table" then return answer end
  return match
end

local function ids_of(l, matches)
  local set = {}
  for _, m in ipairs(matches) do set[tostring(m[l.id])] = true end
  return set
end

-- After a lost answer: reads until one new match shows (or the grace
-- window ends). Returns the result, or nil and an error, or false (none).
local function look_again(client, handle, op, args, before, grace, err)
  local l = op.lookup
  local key = "'" .. tostring(rawget(args, l.key_arg)) .. "'"
  local start, delay = runtime.now(), 0.25
  while true do
    local matches, answer = reconcile.find(client, handle, op, args)
    if not matches then
      -- never a success, never a second create: the lost answer stands
      err.reconcile_error = answer
      return nil, err
    end
    local new, old = {}, 0
    for _, m in ipairs(matches) do
      if before[tostring(m[l.id])] then old = old + 1 else new[#new + 1] = m end
    end
    if #new > 1 then
      local e = new_error(op, { kind = "conflict", reason = "ambiguous", maybe_applied = true,
        message = #new .. " objects with " .. l.key .. " " .. key
          .. " appeared while the create's answer was lost; not choosing one" })
      e.lost_error, e.matches = err, new
      return nil, e
    elseif #new == 1 then
      if old > 0 and l.unique then
        local e = new_error(op, { kind = "conflict", reason = "ambiguous", maybe_applied = true,
          message = "the key " .. key .. " matches objects from before and after the create" })
        e.lost_error = err
        return nil, e
      end
      local res = result_of(l, new[1], answer)
      res.reconciled, res.lost_error = true, err
      return res
    elseif old > 0 and l.unique then
      -- what has the key was there before: the vendor refused this create
      local e = new_error(op, { kind = "conflict", reason = "exists", maybe_applied = false,
        message = "an object with " .. l.key .. " " .. key .. " existed before the create" })
      e.lost_error = err
      return nil, e
    end
    local left = grace - (runtime.now() - start)
    if left <= 0 then return false end
    runtime.sleep(math.min(delay, left))
    delay = delay * 2
  end
end

--- Runs the create `op` exactly once (see the module's description).
-- @tparam table client
-- @param handle its core handle
-- @tparam table op the create's row (with `lookup`)
-- @tparam table args its arguments (per-call options removed)
-- @tparam string if_exists "error" or "adopt"
-- @param policy the reconcile policy (`reconcile.policy`), or false
-- @tparam function send `send(args)`: one call with retries (`call.run`)
-- @return the result (with `adopted` or `reconciled` set when so), or nil
--   and an error
function reconcile.create(client, handle, op, args, if_exists, policy, send)
  local l = op.lookup
  local why = reconcile.why_not(op, args, handle)
  if why and if_exists == "adopt" then
    return nil, new_error(op, { kind = "validation", field = "if_exists", sent = false,
      message = "if_exists = \"adopt\" needs a lookup, and " .. why })
  end
  if why or (policy == false and if_exists ~= "adopt") then
    local res, err = send(args)
    if res == nil and err.maybe_applied then
      err.not_reconciled = why or "reconcile = false"
    end
    return res, err
  end
  -- the create's own arguments first: bad input sends nothing, not even the read
  local req, verr = op.request(handle, args)
  if not req then return nil, verr end
  req:release()
  local before, snap_err
  local matches, answer = reconcile.find(client, handle, op, args)
  if matches then
    if #matches > 1 and (l.unique or if_exists == "adopt") then
      local e = new_error(op, { kind = "conflict", reason = "ambiguous", sent = false,
        message = #matches .. " objects have " .. l.key .. " '" .. tostring(rawget(args, l.key_arg))
          .. "'; not choosing one" })
      e.matches = matches
      return nil, e
    elseif #matches == 1 and if_exists == "adopt" then
      local res = result_of(l, matches[1], answer)
      res.adopted = true
      return res
    end
    -- a match of a key the vendor keeps unique: the create is still sent,
    -- and the vendor's own answer ("already exists") is the caller's error
    before = ids_of(l, matches)
  elseif if_exists == "adopt" then
    return nil, answer -- nothing sent: the caller asked to look first
  else
    snap_err = answer
  end
  local resends = policy and (policy.resends or (l.unique and 1 or 0)) or 0
  while true do
    local res, err = send(args)
    if res ~= nil then return res end
    if if_exists == "adopt" and l.exists_reason and err.reason == l.exists_reason then
      -- made by someone else between the snapshot and the create
      local now, now_answer = reconcile.find(client, handle, op, args)
      if now and #now == 1 then
        local r = result_of(l, now[1], now_answer)
        r.adopted = true
        return r
      end
      return nil, err
    end
    if not err.maybe_applied then return nil, err end
    if not before or policy == false then
      err.not_reconciled = snap_err and "the lookup before the create failed: " .. tostring(snap_err)
        or "reconcile = false"
      err.reconcile_error = snap_err
      return nil, err
    end
    local ok, found, ferr = true
    if runtime.pcall_yields or not runtime.scheduler() then
      ok, found, ferr = pcall(look_again, client, handle, op, args, before, policy.grace, err)
    else
      found, ferr = look_again(client, handle, op, args, before, policy.grace, err)
    end
    if not ok then
      -- raised while looking (an interrupt): the create went out and its
      -- answer was lost -- never "not sent"
      if type(found) == "table" and found.kind == "interrupted" then
        found.sent, found.maybe_applied, found.lost_error = true, true, err
      end
      error(found, 0)
    end
    if found then return found end
    if found == nil then return nil, ferr end
    -- not there after the grace window: nothing was made
    if resends <= 0 then
      err.not_reconciled = "not found after " .. policy.grace .. " s; " .. (l.unique and "no resend left"
        or "not sent again: " .. l.key .. " is not unique, so a second create could make a second object")
      return nil, err
    end
    resends = resends - 1
  end
end

--- Runs the teardown `op`: 404 is `already_gone`, a 2xx `deleted`.
-- @tparam function send `send()`: one call with retries (`call.run`)
-- @return `{ deleted = true, already_gone = true|nil, answer = body|nil }`, or nil and an error
function reconcile.delete(send)
  local res, err = send()
  if res == nil then
    if err.reason ~= "not_found" then return nil, err end
    -- gone either way; when an earlier attempt's answer was lost, that
    -- attempt is what removed it
    if err.maybe_applied then return { deleted = true } end
    return { deleted = true, already_gone = true }
  end
  return { deleted = true, answer = res ~= true and res or nil }
end

return reconcile
