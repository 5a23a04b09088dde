/*
 * fuzz_http1.c - libFuzzer harness of the RFC 9112 head checker
 * (src/ec_http1.c), which both transports apply to every line of a
 * response's heads and trailers.
 *
 * Input: the bytes a server sends, cut into lines after each LF (a line
 * keeps its LF), handed over one by one as libcurl's header callback and
 * envclone.http1 do, until the first refusal.
 *
 * Invariants (abort() = a finding):
 *   - never a crash or an ASan/UBSan report;
 *   - every verdict is -1, 0 or 1, and a refusal says why;
 *   - a line holding a NUL, or a CR anywhere but before its LF, is refused;
 *   - "fold" (1) only for a line starting with SP or HTAB, and never right
 *     after the first line or an empty line (nothing to continue there).
 */
#include "ec_http1.h"
#include "fuzz_assert.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ec_http1_head h;
    /* the libcurl transport's checker (HTTP/2 heads taken) for odd last bytes */
    ec_http1_head_reset(&h, size > 0 && (data[size - 1] & 1));
    int first = 1, after_empty = 0;
    size_t i = 0;
    while (i < size) {
        const uint8_t *nl = memchr(data + i, '\n', size - i);
        size_t n = nl ? (size_t)(nl - (data + i)) + 1 : size - i;
        /* a copy of exactly n bytes, so ASan sees any read past the line */
        char *line = malloc(n);
        FUZZ_ASSERT(line != NULL, "out of memory");
        memcpy(line, data + i, n);
        size_t body = n;
        if (body > 0 && line[body - 1] == '\n')
            body--;
        if (body > 0 && line[body - 1] == '\r')
            body--;
        int bad_bytes = memchr(line, '\0', body) != NULL || memchr(line, '\r', body) != NULL;
        int starts_ws = body > 0 && (line[0] == ' ' || line[0] == '\t');
        int r = ec_http1_head_line(&h, line, n);
        free(line);
        FUZZ_ASSERT(r == -1 || r == 0 || r == 1, "verdict %d", r);
        if (r < 0) {
            FUZZ_ASSERT(h.why != NULL && h.why[0] != '\0', "a refusal without a reason");
            break;
        }
        FUZZ_ASSERT(!bad_bytes, "a line holding a NUL or a bare CR was accepted");
        if (r == 1) {
            FUZZ_ASSERT(starts_ws, "a fold that does not start with whitespace");
            FUZZ_ASSERT(!first && !after_empty, "a fold with nothing to continue");
        }
        first = 0;
        after_empty = body == 0;
        i += n;
    }
    (void)ec_http1_head_complete(&h);
    return 0;
}
