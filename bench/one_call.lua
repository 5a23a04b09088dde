-- bench/one_call.lua - one envclone call in a fresh process (the start-up
-- row of bench/run.sh): require, a client, one GET, exit.
--   lua5.4 bench/one_call.lua PORT
local envclone = require("envclone")
local k = envclone.kontent{ api_key = "bench-api-key", base_url = "http://127.0.0.1:" .. arg[1] .. "/kontent/v2",
  rate_limit = false }
local state, err = k:get_cloning_state{ environment_id = "8d20758c-d74c-4f59-ae04-ee928c0816b7" }
if not state or state.cloning_state ~= "done" then error(tostring(err)) end
