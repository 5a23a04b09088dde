-- luacheck configuration (Debian package lua-check): `luacheck lua spec bin examples`
std = "lua54"
max_line_length = 120
read_globals = { "ngx" } -- OpenResty, used only where present
files["spec"] = { std = "+busted" }
exclude_files = { "build*/**" }
