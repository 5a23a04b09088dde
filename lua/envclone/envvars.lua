--- The environment variables of the command line: each vendor's credentials
-- and base URL. Data only; the command line reads them, the emulator's
-- command line prints them, and neither requires the other.
-- @module envclone.envvars

local envvars = {}

--- Where each vendor's credentials come from: client option -> environment
-- variable (the same names are the keys of a `--credentials` file).
-- @table credentials
envvars.credentials = {
  versori = { token = "VERSORI_TOKEN", cookie = "VERSORI_COOKIE" },
  qovery = { token = "QOVERY_TOKEN" },
  kontent = { api_key = "KONTENT_API_KEY", subscription_api_key = "KONTENT_SUBSCRIPTION_API_KEY" },
  droplit = { token = "DROPLIT_TOKEN" },
}

--- Where each vendor's non-secret client settings come from: client option
-- -> environment variable (Kontent's subscription, for its Subscription
-- API: the lookup that finds a clone by name, doc/exactly-once.md).
-- @table settings
envvars.settings = {
  kontent = { subscription_id = "KONTENT_SUBSCRIPTION_ID" },
}

--- The environment variable holding a vendor's base URL (`ENVCLONE_KONTENT_URL`).
-- @tparam string vendor
-- @treturn string
function envvars.url(vendor)
  return "ENVCLONE_" .. vendor:upper() .. "_URL"
end

return envvars
