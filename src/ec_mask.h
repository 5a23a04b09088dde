/*
 * ec_mask.h - the one routine that hides a client's secrets.
 *
 * Every text that leaves envclone from a server or a caller (error
 * messages, header values, error bodies, the raw body of an undecodable
 * answer, log lines and tostring, which print those fields) passes through
 * here, so "is this the credential?" has one answer.  A secret is found in
 * any form a server or proxy may echo it:
 *   - verbatim;
 *   - percent-encoded, either hex case, '+' for a space (form encoding);
 *   - JSON-escaped: \uXXXX (either case) and the short escapes (\/, \", ...);
 *   - HTML-escaped: &#NN; &#xHH; and the named entities of URL characters;
 *   - base64 and base64url of the secret at each of the three alignments it
 *     can have inside a longer encoded text (the 6-bit groups made of the
 *     secret's bits only), themselves in any of the forms above;
 *   - a text that ends in the first 8 or more characters of one of these
 *     (a message cut to fit its buffer).
 * Each match prints as "***".  Secrets shorter than EC_SECRET_MIN are
 * refused when the client is made (ec_client.h), so matching never has to
 * guess at short, word-like values.  Nothing here allocates.
 */
#ifndef EC_MASK_H
#define EC_MASK_H

#include "ec_client.h"
#include "ec_compat.h"

#include <stddef.h>


/* Does s[0..n) show one of the client's secrets in any form? */
int ec_mask_has(const ec_client *c, const char *s, size_t n);

/* Masks s[0..n) in place ("***" is never longer than what it replaces)
 * and returns the new length; s is NUL-terminated when size > new length. */
size_t ec_mask_inplace(const ec_client *c, char *s, size_t n, size_t size);

/* Masks the NUL-terminated string s in place. */
void ec_mask_cstr(const ec_client *c, char *s);

/* Pushes a masked copy of s[0..n) (s may hold NUL bytes). */
void ec_mask_push(lua_State *L, const ec_client *c, const char *s, size_t n);

/* Lua: core.mask(text, secrets) -> text with every form of each secret in
 * the list (at most 16, each 8+ characters; shorter ones are ignored)
 * masked.  The caller names the secrets, so this is no oracle for a
 * client's hidden ones; the command line masks results with it. */
int ec_mask_lua(lua_State *L);

#endif
