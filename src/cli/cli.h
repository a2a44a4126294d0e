/*
 * The client commands of the ledgermq binary, built on libledgermq. Each takes the arguments
 * after the command name and returns the process exit code (CLI_EXIT_*); errors are one line
 * "ledgermq: ..." on stderr.
 */
#ifndef LMQ_CLI_H
#define LMQ_CLI_H

#define CLI_EXIT_OK 0
#define CLI_EXIT_USAGE 1 /* also: cannot open the key or the state */
#define CLI_EXIT_REJECTED 3
#define CLI_EXIT_TIMEOUT 4
#define CLI_EXIT_LEDGER 5 /* the ack's receipt or the server's ledger history did not verify */

/* ledgermq keygen [--out FILE]: writes a new identity (never over an existing file), prints
 * its id. */
int cli_keygen(int argc, char **argv);
/* ledgermq send ... JSON: stores, publishes and waits for the server's ack of one envelope;
 * prints the ack (or reject) with the envelope added as "envelope". */
int cli_send(int argc, char **argv);
/* ledgermq listen ...: prints inbox messages, one JSON line each, exactly once per state dir. */
int cli_listen(int argc, char **argv);
/* ledgermq token: logs in and prints a login token (bearer token for the HTTP API). */
int cli_token(int argc, char **argv);
/* ledgermq revoke --data DIR --identity ID [--before UNIX_S]: revokes the identity's login
 * tokens issued before the time (default: up to now) in the broker's database (cli_revoke.c). */
int cli_revoke(int argc, char **argv);
/* ledgermq passwd: the password file, at parity with mosquitto_passwd (cli_passwd.c). Exit 0,
 * 1 usage or bad input, 2 the file could not be read or written. */
int cli_passwd(int argc, char **argv);

/* ledgermq admin SUBCOMMAND --key FILE [--http HOST:PORT] [--json]: the admin API's client
 * (cli_admin.c). Exit 0 done, 1 usage, 3 refused (its reason on stderr), 4 no answer or a
 * server error. */
int cli_admin(int argc, char **argv);

/* ledgermq validate --schema FILE [--draft 2020-12|7] [--assert-formats] [--jsonl] [FILE...]:
 * one JSON verdict line per instance (cli_validate.c). Exit 0 all valid, 3 some invalid, 1
 * usage or unusable input (a bad schema, an unreadable file, an instance that is not JSON). */
int cli_validate(int argc, char **argv);

#endif
