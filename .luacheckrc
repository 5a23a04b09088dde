-- luacheck configuration (Debian package lua-check): `luacheck lua spec bin examples`
std = "lua54"
max_line_length = 120
read_globals = { "ngx" } -- OpenResty, used only where present
files["spec"] = { std = "+busted" }
exclude_files = { "build*/**" }
-- code that runs inside nginx (OpenResty API, LuaJIT)
files["spec/nginx"] = { std = "luajit+ngx_lua+busted", globals = { "ngx" } }
files["examples/openresty"] = { std = "luajit+ngx_lua", globals = { "ngx" } }
files["lua/envclone/cosocket.lua"] = { std = "luajit+ngx_lua" }
