/*
 * ec_file.h - what a set's state file needs of the system and Lua cannot
 * do: a file replaced atomically (temporary file, fsync, rename, fsync of
 * the directory), and an advisory lock (flock) held by a userdata.
 *
 * In Lua:
 *   core.write_file_atomic(path, text)   -> true | nil, message
 *   core.lock_file(path, seconds)        -> lock | nil, message, "busy"|"error"
 *   lock:unlock()                        -- also __gc and __close; idempotent
 *
 * A reader of `path` sees the old content or the new one, never a mix or
 * an empty file, whenever the writer is killed.  The lock is the kernel's
 * flock(2) on `path`: released when its holder exits, however it exits.
 */
#ifndef EC_FILE_H
#define EC_FILE_H

#include "ec_compat.h"

#define EC_LOCK_MT "envclone.core.lock"

/* core.write_file_atomic(path, text) */
int ec_file_lua_write_atomic(lua_State *L);

/* core.lock_file(path, seconds) */
int ec_file_lua_lock(lua_State *L);

/* Registers the lock userdata's metatable. */
void ec_file_init(lua_State *L);

#endif
