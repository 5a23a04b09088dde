/*
 * ec_loader.c - envclone/core.so: loads the C core, envclone/core_impl.so,
 * with lazy binding.
 *
 * Lua (and nginx) load C modules with dlopen(RTLD_NOW), which binds every
 * function of libcurl and of the libraries it pulls in (OpenSSL, LDAP, SASL,
 * SSH, ...) before `require` returns; in a process that makes one call that
 * costs more than the call.  Loaded from here with RTLD_LAZY, a function is
 * bound the first time it is called, as in a C program.  The core itself is
 * unchanged: this file only finds it beside itself and calls its luaopen.
 */
#define _GNU_SOURCE /* dladdr */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "ec_compat.h"

__attribute__((visibility("default"))) int luaopen_envclone_core(lua_State *L);

int luaopen_envclone_core(lua_State *L)
{
    static lua_CFunction open_impl = NULL;
    if (open_impl == NULL) {
        Dl_info info;
        char path[4096];
        if (dladdr((void *)luaopen_envclone_core, &info) == 0 || info.dli_fname == NULL)
            return luaL_error(L, "envclone: cannot tell where envclone/core.so was loaded from");
        const char *slash = strrchr(info.dli_fname, '/');
        size_t dir = slash ? (size_t)(slash - info.dli_fname) + 1 : 0;
        if (dir + sizeof "core_impl.so" > sizeof path)
            return luaL_error(L, "envclone: the path of envclone/core.so is too long");
        memcpy(path, info.dli_fname, dir);
        memcpy(path + dir, "core_impl.so", sizeof "core_impl.so");
        /* never closed: the core's functions live as long as the process */
        void *h = dlopen(path, RTLD_LAZY | RTLD_LOCAL);
        if (h == NULL)
            return luaL_error(L, "envclone: cannot load %s: %s", path, dlerror());
        void *sym = dlsym(h, "luaopen_envclone_core_impl");
        if (sym == NULL)
            return luaL_error(L, "envclone: %s has no luaopen_envclone_core_impl", path);
        memcpy(&open_impl, &sym, sizeof open_impl); /* a data pointer to a function pointer, as POSIX allows */
    }
    return open_impl(L);
}
