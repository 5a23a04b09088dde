-- A throwaway PKI for the TLS and proxy specs (openssl CLI): a CA, another
-- CA, and a server certificate the first signs for 127.0.0.1 (IP SAN only,
-- so "localhost" does not match it). Files go in a fresh 0700 directory.
local hostile = require("spec.support.hostile")

local M = {}

local function sh(cmd)
  assert(hostile.run(cmd .. " >/dev/null 2>&1"), "command failed: " .. cmd)
end

--- Makes the PKI; returns the directory and a function naming its files
-- ("ca.pem", "other-ca.pem", "server.pem", "server.key", and "expired.pem",
-- "expired.key": the server's names, expired since 2020).
function M.make()
  local dir = os.tmpname()
  os.remove(dir)
  assert(hostile.run("mkdir -m 700 " .. hostile.quote(dir)))
  local function path(name) return dir .. "/" .. name end
  local q = hostile.quote
  for _, ca in ipairs{ "ca", "other-ca" } do
    sh("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2"
      .. " -keyout " .. q(path(ca .. ".key")) .. " -out " .. q(path(ca .. ".pem"))
      .. " -subj '/CN=envclone test " .. ca .. "'"
      .. " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign")
  end
  local ext = assert(io.open(path("server.ext"), "w"))
  -- DNS:127.0.0.1 beside the IP: nginx's cosocket verification (X509_check_host) reads DNS names only
  ext:write("subjectAltName=IP:127.0.0.1,DNS:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
  ext:close()
  sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=127.0.0.1"
    .. " -keyout " .. q(path("server.key")) .. " -out " .. q(path("server.csr")))
  sh("openssl x509 -req -days 2 -in " .. q(path("server.csr")) .. " -CA " .. q(path("ca.pem"))
    .. " -CAkey " .. q(path("ca.key")) .. " -CAcreateserial -extfile " .. q(path("server.ext"))
    .. " -out " .. q(path("server.pem")))
  -- the same names, signed by the same CA, valid for one day in 2020: an
  -- expired certificate (faketime sets the clock openssl signs with)
  sh("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=127.0.0.1"
    .. " -keyout " .. q(path("expired.key")) .. " -out " .. q(path("expired.csr")))
  sh("faketime '2020-01-01 00:00:00' openssl x509 -req -days 1 -in " .. q(path("expired.csr"))
    .. " -CA " .. q(path("ca.pem")) .. " -CAkey " .. q(path("ca.key")) .. " -CAcreateserial -extfile "
    .. q(path("server.ext")) .. " -out " .. q(path("expired.pem")))
  return dir, path
end

--- Removes the directory.
function M.remove(dir)
  if dir then hostile.run("rm -rf " .. hostile.quote(dir)) end
end

return M
