/*
 * nowatch.c - an LD_PRELOAD shim for bench/https.sh: envclone with its
 * HTTP/2 watch on creates turned off, to measure what the watch costs.
 *
 *   cc -O2 -shared -fPIC -o nowatch.so bench/nowatch.c -ldl
 *   LD_PRELOAD=./nowatch.so lua5.4 bench/client.lua envclone post ...
 *
 * src/ec_curl.c sets CURLOPT_VERBOSE (with a debug callback, on_debug) on
 * every create over https, to read the GOAWAY and REFUSED_STREAM lines
 * libcurl writes.  This shim stands in for curl_easy_setopt and passes
 * CURLOPT_VERBOSE as 0; every other option goes through unchanged.  The
 * debug callback is then never called, and libcurl formats no text for it.
 * A diagnostic only: it changes no answer in the bench (no server there
 * sends GOAWAY or REFUSED_STREAM).
 */
#define _GNU_SOURCE
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>
#include <dlfcn.h>
#include <stdarg.h>
#include <string.h>

typedef CURLcode (*setopt_fn)(CURL *, CURLoption, ...);

CURLcode curl_easy_setopt(CURL *h, CURLoption option, ...)
{
    static setopt_fn real = NULL;
    if (real == NULL) {
        /* envclone's core_impl.so is dlopened without RTLD_GLOBAL, and
         * libcurl with it: not always in RTLD_NEXT's reach */
        void *sym = dlsym(RTLD_NEXT, "curl_easy_setopt");
        if (sym == NULL) {
            void *lib = dlopen("libcurl.so.4", RTLD_LAZY);
            sym = lib != NULL ? dlsym(lib, "curl_easy_setopt") : NULL;
        }
        if (sym == NULL)
            return CURLE_FAILED_INIT;
        memcpy(&real, &sym, sizeof real); /* POSIX: a data pointer to dlsym's function */
    }
    va_list ap;
    va_start(ap, option);
    CURLcode rc;
    if (option < CURLOPTTYPE_OBJECTPOINT) { /* long */
        long v = va_arg(ap, long);
        rc = real(h, option, option == CURLOPT_VERBOSE ? 0L : v);
    } else if (option < CURLOPTTYPE_OFF_T) { /* object or function pointer */
        rc = real(h, option, va_arg(ap, void *));
    } else if (option < CURLOPTTYPE_BLOB) { /* curl_off_t */
        rc = real(h, option, va_arg(ap, curl_off_t));
    } else { /* a struct curl_blob * */
        rc = real(h, option, va_arg(ap, void *));
    }
    va_end(ap);
    return rc;
}
