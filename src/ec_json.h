/*
 * ec_json.h - JSON encoding of request bodies.
 *
 * Written here rather than delegated to lua-cjson because the encoder must
 * follow the operation table (an empty table is [] for an array field and
 * {} for an object field; Debian's lua-cjson 2.1.0 has no empty_array), and
 * must refuse what JSON cannot carry (NaN, inf, invalid UTF-8, NUL,
 * cycles, runaway nesting) with a message naming the field.  Responses are
 * decoded with lua-cjson.
 */
#ifndef EC_JSON_H
#define EC_JSON_H

#include "ec_buf.h"
#include "ec_compat.h"

/* Checks UTF-8 (no overlongs, no surrogates, nothing past U+10FFFF) and
 * counts code points.  Returns 0 when valid. */
int ec_utf8_count(const char *s, size_t n, size_t *chars);

/* Appends s as a JSON string literal.  s must be valid UTF-8. */
int ec_json_add_string(ec_buf *b, const char *s, size_t n);

/* Encodes the Lua value at idx as JSON, for free-form fields such as
 * Droplit's meta.  Tables whose metatable is the one at array_mt_idx (0 for
 * none) encode as arrays even when empty.  On failure returns -1 and writes
 * the offending path (below `path`) and rule into errbuf. */
int ec_json_add_value(lua_State *L, int idx, ec_buf *b, int array_mt_idx,
                      const char *path, char *errbuf, size_t errlen);

#endif
