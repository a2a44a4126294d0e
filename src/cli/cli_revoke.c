/*
 * ledgermq revoke --data DIR --identity ID [--before UNIX_S]: the operator's revocation of an
 * identity's login tokens, written to the broker's database (DIR/ledgermq.db). Tokens of ID
 * whose iat is before the revocation time (default and latest: now + 1, i.e. every token
 * issued up to this second) are refused at CONNECT and on /auth/revoke. The time is only ever
 * raised.
 *
 * A stopped broker applies it when it starts; a running one when it gets SIGHUP (it then also
 * ends ID's connections that use such a token). Prints one JSON line
 * {"id":ID,"revoked_before":T} with the time in force.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "core/config.h"
#include "core/lmq.h"
#include "crypto/keyfile.h"
#include "store/store.h"

static int cli_revoke__usage(const char *why)
{
    fprintf(stderr, "ledgermq: revoke: %s (see ledgermq revoke --help)\n", why);
    return CLI_EXIT_USAGE;
}

/* "--name value" or "--name=value" at argv[*i]; advances *i. NULL when argv[*i] is not it. */
static const char *cli_revoke__flag(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0)
        return NULL;
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (argv[*i][n] == '\0' && *i + 1 < argc)
        return argv[++*i];
    return NULL;
}

int cli_revoke(int argc, char **argv)
{
    const char *data = NULL, *id = NULL, *before = NULL;
    for (int i = 0; i < argc; i++) {
        const char *v;
        if ((v = cli_revoke__flag(argc, argv, &i, "--data")) != NULL)
            data = v;
        else if ((v = cli_revoke__flag(argc, argv, &i, "--identity")) != NULL)
            id = v;
        else if ((v = cli_revoke__flag(argc, argv, &i, "--before")) != NULL)
            before = v;
        else {
            fprintf(stderr,
                    "ledgermq: revoke: unexpected argument \"%s\" (see ledgermq revoke "
                    "--help)\n",
                    argv[i]);
            return CLI_EXIT_USAGE;
        }
    }
    if (data == NULL || data[0] == '\0' || id == NULL)
        return cli_revoke__usage("--data and --identity are required");
    if (!crypto_identity_id_valid(id, strlen(id)))
        return cli_revoke__usage("--identity: expected a 64-character identity id");
    /* Not later than now + 1: revocation is of tokens already issued, not a ban on logins. */
    int64_t now_s = (int64_t)time(NULL);
    int64_t before_s = now_s + 1;
    if (before != NULL) {
        char *end = NULL;
        long long v = strtoll(before, &end, 10);
        if (end == before || *end != '\0' || v < 1 || v > now_s + 1)
            return cli_revoke__usage("--before: expected unix seconds, at most now + 1");
        before_s = (int64_t)v;
    }
    char path[LMQ_PATH_MAX_BYTES + 32];
    int n = snprintf(path, sizeof(path), "%s/ledgermq.db", data);
    if (n < 0 || (size_t)n >= sizeof(path))
        return cli_revoke__usage("--data: path too long");
    char err[512];
    int64_t stored_s = 0;
    if (store_token_revoke_file(path, (struct lmq_bytes){(const uint8_t *)id, strlen(id)}, before_s,
                                &stored_s, err, sizeof(err)) != LMQ_OK) {
        fprintf(stderr, "ledgermq: revoke: %s\n", err);
        return CLI_EXIT_USAGE;
    }
    printf("{\"id\":\"%s\",\"revoked_before\":%" PRId64 "}\n", id, stored_s);
    return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
}
