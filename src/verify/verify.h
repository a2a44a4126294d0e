/*
 * `ledgermq verify`: offline checks of what a LedgerMQ server said, with its public key only
 * (and of a server's own database). Exit 0 only when everything verifies; 3 when something
 * does not, with one line naming what failed; 1 for usage and I/O errors.
 */
#ifndef LMQ_VERIFY_H
#define LMQ_VERIFY_H

#include <jansson.h>

#define VERIFY_EXIT_OK 0
#define VERIFY_EXIT_USAGE 1
#define VERIFY_EXIT_FAILED 3

/* The usage text (listed in the table of src/cli/usage.c). */
extern const char verify_usage[];

/* argv holds the arguments after "verify". */
int verify_main(int argc, char **argv);
/* A ledgermq.chain.log envelope checked against the node at rpc_url (verify_chain.c): the exit
 * code, with one line on stdout (verified) or stderr (why not). */
int verify_notification(const json_t *envelope, const char *rpc_url);

#endif
