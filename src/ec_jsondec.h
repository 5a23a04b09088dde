/*
 * ec_jsondec.h - JSON text -> Lua value, exact and locale-free.
 *
 * Which decoding is lua-cjson's and which is envclone's own
 * ----------------------------------------------------------
 * Debian's lua-cjson 2.1.0 builds every value itself and cannot be told to:
 *   - keep JSON integers exact: it reads every number with strtod, so 1250
 *     is 1250.0 in Lua 5.4 and 9007199254740993 becomes ...992;
 *   - mark arrays: [] and {} both come back as an empty table (2.1.0 has no
 *     decode_array_with_array_mt), so they cannot be sent or printed back;
 *   - read a lone surrogate escape (\ud83d): it refuses the whole body;
 *   - ignore the process locale: its fpconv caches the decimal point of the
 *     locale current when cjson.new() last ran, process-wide, and a
 *     thread-local uselocale() cannot undo a cached ',' (nor may envclone
 *     reset it, since the caller's own cjson instances share it).
 * Each of these sits in the step that turns a token into a Lua value, so no
 * wrapper around cjson.decode can fix them; this small recursive-descent
 * decoder does that step.  lua-cjson stays where it serves: the emulator's
 * server side, the specs, and the fuzz harness, where it is the reference
 * this decoder is checked against on every valid input (fuzz/fuzz_json.c).
 *
 * What it reads: RFC 8259 JSON, plus what RFC 8259 lets a parser accept: a
 * leading UTF-8 byte-order mark is skipped, and a lone surrogate escape
 * decodes to U+FFFD.  Strings are otherwise passed through as bytes, raw
 * control characters included, as lua-cjson does.  Numbers: an integer token
 * (no fraction, no exponent) that fits 64 bits is a Lua integer on 5.3/5.4;
 * any other number is a double read with strtod under a thread-local "C"
 * locale.  On 5.1/LuaJIT every number is a double, as before.  Every array
 * gets the metatable at `array_mt` (envclone.array_mt); null is
 * envclone.null (the NULL light userdata, as cjson.null).  Duplicate keys:
 * the last wins.  Nesting is bounded by EC_JSON_MAX_DEPTH.
 */
#ifndef EC_JSONDEC_H
#define EC_JSONDEC_H

#include "ec_compat.h"

#include <stddef.h>

#define EC_JSON_MAX_DEPTH 512

/* Decodes s[0..n) and pushes the value, returning 0; or pushes nothing,
 * writes a one-line reason (never any of the text itself) to why and
 * returns -1.  array_mt: the absolute stack index of the array metatable, 0 for
 * none.  Raises only on a Lua memory error. */
int ec_json_decode(lua_State *L, const char *s, size_t n, int array_mt, char *why, size_t whylen);

/* Lua: core.json_decode(text) -> value | nil, err (the decoder above, with
 * envclone.array_mt on arrays). */
int ec_json_lua_decode(lua_State *L);

#endif
