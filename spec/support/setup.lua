-- Loaded by busted before any spec: find the Lua layer in lua/ and the
-- C core in the build directory (ENVCLONE_BUILD, default build/).
local build = os.getenv("ENVCLONE_BUILD") or "build"
package.path = "lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path
package.cpath = build .. "/?.so;" .. package.cpath
