/*
 * ec_error.h - envclone error objects.
 *
 * An error is a Lua table with the fields of DESIGN.md (kind, status, code,
 * message, request_id, retryable, vendor, operation, field, attempts,
 * maybe_applied, retry_after, body) and a metatable whose __tostring reads
 * as one line.  Messages and fields pass through ec_mask, so a secret the
 * server echoes back, in any form, prints as ***.
 */
#ifndef EC_ERROR_H
#define EC_ERROR_H

#include "ec_client.h"
#include "ec_compat.h"

#define EC_ERROR_MT "envclone.error"

/* Creates the error metatable; leaves nothing on the stack. */
void ec_error_init(lua_State *L);

/* Pushes a new error table with kind, vendor, operation and message set. */
void ec_error_new(lua_State *L, const ec_client *c, const ec_op *op,
                  const char *kind, const char *message);

/* Setters for the error table on top of the stack (no-ops for NULL). */
void ec_error_str(lua_State *L, const char *key, const char *value);
void ec_error_int(lua_State *L, const char *key, long value);
void ec_error_bool(lua_State *L, const char *key, int value);

/* Pushes nil and a validation error naming `field`; returns 2. */
int ec_error_validation(lua_State *L, const ec_client *c, const ec_op *op,
                        const char *field, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

/* Lua: core.error{...} builds an error table from Lua (used by the Lua layer). */
int ec_error_lua_new(lua_State *L);

#endif
