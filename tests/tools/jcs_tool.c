/*
 * jcs_tool: RFC 8785 canonical form of JSON texts, one per input line, for cross-checking
 * against independent implementations (tests/integration/test_jcs_crosscheck.py).
 *
 * Reads stdin line by line (a line is one JSON text; JSON never needs a raw newline), writes
 * one line per input: the canonical form, or "ERROR <reason>" (bad_json, too_deep, too_large,
 * line_too_long, no_memory). Exits 0 when all input was read, 1 on an I/O error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/lmq.h"
#include "crypto/jcs.h"

/* Longest input line and canonical output accepted. */
#define JCS_TOOL_LINE_MAX_BYTES (1024u * 1024u)

static const char *jcs_tool_reason(int rc)
{
    switch (rc) {
    case LMQ_EPROTO:
        return "bad_json";
    case LMQ_ELIMIT:
        return "too_deep";
    case LMQ_ETOOBIG:
        return "too_large";
    case LMQ_ENOMEM:
        return "no_memory";
    default:
        return "error";
    }
}

int main(void)
{
    char *line = NULL;
    size_t cap = 0;
    struct lmq_buf out = {0};
    int status = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        size_t len = (size_t)n;
        if (len > 0 && line[len - 1] == '\n')
            len--;
        out.len = 0;
        if (len > JCS_TOOL_LINE_MAX_BYTES) {
            printf("ERROR line_too_long\n");
            continue;
        }
        int rc = crypto_jcs_canonicalize((const uint8_t *)line, len, &out, JCS_TOOL_LINE_MAX_BYTES);
        if (rc == LMQ_OK) {
            LMQ_ASSERT(memchr(out.data, '\n', out.len) == NULL); /* canonical JSON escapes it */
            fwrite(out.data, 1, out.len, stdout);
            putchar('\n');
        } else {
            printf("ERROR %s\n", jcs_tool_reason(rc));
        }
    }
    if (ferror(stdin) || fflush(stdout) != 0)
        status = 1;
    free(line);
    lmq_buf_release(&out);
    return status;
}
