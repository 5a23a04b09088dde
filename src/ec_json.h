/*
 * ec_json.h - JSON encoding of request bodies.
 *
 * Written here rather than delegated to lua-cjson because the encoder must
 * follow the operation table (an empty table is [] for an array field and
 * {} for an object field; Debian's lua-cjson 2.1.0 has no empty_array), and
 * must refuse what JSON cannot carry (NaN, inf, invalid UTF-8, NUL,
 * cycles, runaway nesting) with a message naming the field.  Responses are
 * decoded by ec_jsondec.c (its header says why that is not lua-cjson).
 * Numbers are written without regard to the process locale.
 */
#ifndef EC_JSON_H
#define EC_JSON_H

#include "ec_buf.h"
#include "ec_compat.h"

/* Registry key of the metatable that marks a table as a JSON array
 * (envclone.array_mt): set on every decoded array, honoured by the encoder. */
#define EC_JSON_ARRAY_MT "envclone.core.array_mt"
#define EC_JSON_ENCODE_LIMIT ((size_t)64 * 1024 * 1024)

/* Creates that metatable (named "envclone.array") in the registry. */
void ec_json_init(lua_State *L);

/* Pushes it (core.array_mt). */
void ec_json_push_array_mt(lua_State *L);

/* Reads the number token tok[0..len) with strtod under the "C" locale,
 * whatever the process locale.  Returns 0, or -1 unless all of it is read. */
int ec_json_strtod(const char *tok, size_t len, double *out);

/* Writes the finite double v in the shortest form that reads back as the
 * same double ("%.15g", "%.16g" or "%.17g"), with '.' as the decimal point
 * whatever the locale; on Lua 5.3+ an integral value gets ".0" so that it
 * reads back as a float.  outlen >= 32.  Returns 0, or -1 (NaN, inf). */
int ec_json_format_double(double v, char *out, size_t outlen);

/* Writes the number at idx: a Lua integer exactly, a float as above. */
int ec_json_format_number(lua_State *L, int idx, char *out, size_t outlen);

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

/* Lua: core.json_encode(v) -> text | nil, err.  Exact and locale-free;
 * tables marked with envclone.array_mt are arrays even when empty. */
int ec_json_lua_encode(lua_State *L);

#endif
