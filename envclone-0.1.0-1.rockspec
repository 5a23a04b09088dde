-- luarocks make (from a checkout):
--   luarocks --lua-version 5.4 make --local        # or --tree DIR; 5.1 also serves LuaJIT/OpenResty
-- lua-cjson is a run-time dependency of the emulator and the command line
-- (the C core decodes JSON itself); where it comes from the system (Debian's
-- lua-cjson) add --deps-mode=none.
rockspec_format = "3.0"
package = "envclone"
version = "0.1.0-1"
source = {
  url = "git+https://example.invalid/envclone.git", -- built from a checkout with `luarocks make`
  tag = "v0.1.0",
}
description = {
  summary = "Clone and create environments on Versori, Qovery, Kontent.ai and Droplit from Lua",
  detailed = [[
A Lua module with a C core (operation table, validation, marshalling, libcurl
transport) and an OpenResty cosocket transport, for Lua 5.1-5.4, LuaJIT and
nginx request handlers. Ships a local emulator of the four vendors' APIs.
]],
  license = "MIT",
  labels = { "openresty", "http", "api" },
}
dependencies = {
  "lua >= 5.1, < 5.5",
  "lua-cjson >= 2.1",
  -- the command line's --credentials checks the file's mode (loaded only then)
  "luafilesystem >= 1.6",
}
external_dependencies = {
  -- only the library is looked up: Debian keeps curl/curl.h in a multiarch
  -- directory that the compiler searches but luarocks 3.8 does not
  CURL = { library = "curl" },
}
build = {
  type = "builtin",
  modules = {
    -- what require "envclone.core" loads: it loads envclone.core_impl with lazy binding
    ["envclone.core"] = {
      sources = { "src/ec_loader.c" },
      defines = { "_POSIX_C_SOURCE=200809L" },
      incdirs = { "src" },
      libraries = { "dl" },
    },
    ["envclone.core_impl"] = {
      sources = {
        "src/ec_jsondec.c",
        "src/ec_buf.c", "src/ec_ops.c", "src/ec_policy.c", "src/ec_json.c", "src/ec_client.c", "src/ec_mask.c", "src/ec_error.c",
        "src/ec_marshal.c", "src/ec_parse.c",
        "src/ec_core.c", "src/ec_curl.c", "src/ec_http1.c", "src/ec_request.c", "src/ec_multi.c",
        "src/ec_signal.c", "src/ec_file.c",
      },
      defines = { "_POSIX_C_SOURCE=200809L" },
      incdirs = { "src", "$(CURL_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)" },
      libraries = { "curl" },
    },
    envclone = "lua/envclone/init.lua",
    ["envclone.retry"] = "lua/envclone/retry.lua",
    ["envclone.runtime"] = "lua/envclone/runtime.lua",
    ["envclone.call"] = "lua/envclone/call.lua",
    ["envclone.options"] = "lua/envclone/options.lua",
    ["envclone.limiter"] = "lua/envclone/limiter.lua",
    ["envclone.limiter.rule"] = "lua/envclone/limiter/rule.lua",
    ["envclone.limiter.redis"] = "lua/envclone/limiter/redis.lua",
    ["envclone.redis"] = "lua/envclone/redis.lua",
    ["envclone.batch"] = "lua/envclone/batch.lua",
    ["envclone.batch.plain"] = "lua/envclone/batch/plain.lua",
    ["envclone.batch.nginx"] = "lua/envclone/batch/nginx.lua",
    ["envclone.heap"] = "lua/envclone/heap.lua",
    ["envclone.wait"] = "lua/envclone/wait.lua",
    ["envclone.cosocket"] = "lua/envclone/cosocket.lua",
    ["envclone.http1"] = "lua/envclone/http1.lua",
    ["envclone.envvars"] = "lua/envclone/envvars.lua",
    ["envclone.set"] = "lua/envclone/set.lua",
    ["envclone.set.state"] = "lua/envclone/set/state.lua",
    ["envclone.set.template"] = "lua/envclone/set/template.lua",
    -- the command line (bin/envclone)
    ["envclone.cli"] = "lua/envclone/cli/init.lua",
    ["envclone.cli.args"] = "lua/envclone/cli/args.lua",
    ["envclone.cli.batchfile"] = "lua/envclone/cli/batchfile.lua",
    ["envclone.cli.credentials"] = "lua/envclone/cli/credentials.lua",
    ["envclone.cli.emulator"] = "lua/envclone/cli/emulator.lua",
    ["envclone.cli.exit"] = "lua/envclone/cli/exit.lua",
    ["envclone.cli.help"] = "lua/envclone/cli/help.lua",
    ["envclone.cli.json"] = "lua/envclone/cli/json.lua",
    ["envclone.cli.names"] = "lua/envclone/cli/names.lua",
    ["envclone.cli.operation"] = "lua/envclone/cli/operation.lua",
    ["envclone.cli.ops"] = "lua/envclone/cli/ops.lua",
    ["envclone.cli.output"] = "lua/envclone/cli/output.lua",
    ["envclone.cli.progress"] = "lua/envclone/cli/progress.lua",
    ["envclone.cli.set"] = "lua/envclone/cli/set.lua",
    -- the emulator: Lua 5.4 only (bin/envclone-emulator runs lua5.4)
    ["envclone.emulator"] = "lua/envclone/emulator/init.lua",
    ["envclone.emulator.main"] = "lua/envclone/emulator/main.lua",
    ["envclone.emulator.server"] = "lua/envclone/emulator/server.lua",
    ["envclone.emulator.faults"] = "lua/envclone/emulator/faults.lua",
    ["envclone.emulator.control"] = "lua/envclone/emulator/control.lua",
    ["envclone.emulator.json"] = "lua/envclone/emulator/json.lua",
    ["envclone.emulator.util"] = "lua/envclone/emulator/util.lua",
    ["envclone.emulator.vendors.versori"] = "lua/envclone/emulator/vendors/versori.lua",
    ["envclone.emulator.vendors.qovery"] = "lua/envclone/emulator/vendors/qovery.lua",
    ["envclone.emulator.vendors.kontent"] = "lua/envclone/emulator/vendors/kontent.lua",
    ["envclone.emulator.vendors.droplit"] = "lua/envclone/emulator/vendors/droplit.lua",
  },
  install = {
    bin = { envclone = "bin/envclone", ["envclone-emulator"] = "bin/envclone-emulator" },
  },
  copy_directories = { "examples" },
}
