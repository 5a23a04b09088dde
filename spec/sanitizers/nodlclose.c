/*
 * nodlclose.c - preloaded under ASan/LeakSanitizer only: makes dlclose() a
 * no-op.  Lua unloads C modules (envclone.core, cjson, socket) in
 * lua_close(), before LeakSanitizer runs at exit, so any report that points
 * into them would print "<unknown module>" and could not be read or
 * suppressed by name.  Keeping the modules mapped keeps the stacks symbolic.
 */
int dlclose(void *handle);

int dlclose(void *handle)
{
    (void)handle;
    return 0;
}
