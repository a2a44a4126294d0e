/*
 * What verify.c shares with verify_seal.c. Not part of verify.h.
 */
#ifndef LMQ_VERIFY_INTERNAL_H
#define LMQ_VERIFY_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "crypto/ed25519.h"
#include "ledger/checkpoint.h"

/* The server's verifier key (--key). */
struct verify_key {
    char name[LEDGER_CHECKPOINT_KEY_NAME_MAX_BYTES + 1];
    uint8_t pub[CRYPTO_ED25519_PUB_BYTES];
};

/* Prints one line (stdout for VERIFY_EXIT_OK, else "ledgermq: verify: ..." on stderr); returns
 * code. */
__attribute__((format(printf, 2, 3))) int verify_say(int code, const char *fmt, ...);
/* Reads a file and, when it starts with '{', its JSON values (*values; NULL for plain text).
 * Returns VERIFY_EXIT_OK, or VERIFY_EXIT_USAGE (said) when unreadable or not JSON. */
int verify_input(const char *path, char **text, size_t *len, json_t **values);
/* The first object among values that has member (an object or a string as wanted); NULL. */
json_t *verify_find(json_t *values, const char *member, bool want_object);
/* --key VKEY or @FILE. VERIFY_EXIT_OK or VERIFY_EXIT_USAGE (said). */
int verify_load_key(const char *arg, struct verify_key *key);
/* Checks a note's signature; fills cp. VERIFY_EXIT_OK, or the code (said). */
int verify_note(const struct verify_key *key, const char *note, size_t len, const char *what,
                struct ledger_checkpoint *cp);
/* ledgermq verify --seal ... (verify_seal.c); argv as verify_main got it. */
int verify_seal_main(int argc, char **argv);

#endif
