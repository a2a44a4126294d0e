/*
 * One usage text per command (see usage.h). verify's text lives beside its parser in
 * src/verify/verify.c (verify_usage), which prints it with some errors; the table points to it.
 */
#include "cli/usage.h"

#include <string.h>

#include "core/lmq.h"
#include "verify/verify.h"

static const char usage__serve[] =
    "usage: ledgermq serve [--config FILE] [--data DIR] [--mqtt HOST:PORT]... [--mqtts "
    "HOST:PORT]...\n"
    "                      [--http HOST:PORT|none] [--https HOST:PORT|none]\n"
    "                      [--tls-cert FILE --tls-key FILE] [--tls-client-ca FILE]\n"
    "                      [--tls-client-cert none|optional|required]\n"
    "                      [--password-file FILE] [--acl-file FILE]\n"
    "                      [--models DIR]\n"
    "                      [--sync always|off] [--log-level debug|info|warn|error]\n"
    "\n"
    "Runs the broker: MQTT 3.1.1/5.0 over TCP, TLS and WebSocket, the login server and the\n"
    "ledger API. The configuration is the defaults, then the --config file, then the flags\n"
    "(flags win). With no flags: MQTT on 127.0.0.1:1883, HTTP on 127.0.0.1:8080, data in ./data.\n"
    "\n"
    "options:\n"
    "  --config FILE           INI configuration file (README, \"Configuration\")\n"
    "  --data DIR              data directory, created if missing (default ./data)\n"
    "  --mqtt HOST:PORT        MQTT listener (default 127.0.0.1:1883); the first replaces the\n"
    "                          configured list, repeats add listeners\n"
    "  --mqtts HOST:PORT       MQTT over TLS listener (none by default); repeats add listeners\n"
    "  --http HOST:PORT|none   HTTP listener (default 127.0.0.1:8080; none: no HTTP listener):\n"
    "                          MQTT over WebSocket at /mqtt, /healthz, /metrics, /version,\n"
    "                          login (/auth/...) and the ledger API (/ledger/...)\n"
    "  --https HOST:PORT|none  the same over TLS (none by default)\n"
    "  --tls-cert FILE         PEM certificate (chain) for --mqtts and --https\n"
    "  --tls-key FILE          PEM private key of --tls-cert\n"
    "  --tls-client-ca FILE    PEM CA certificates that client certificates must chain to\n"
    "  --tls-client-cert MODE  none (default), optional or required (needs --tls-client-ca)\n"
    "  --password-file FILE    user:hash lines (ledgermq passwd); none by default\n"
    "  --acl-file FILE         topic ACL, as mosquitto's acl_file; none: all allowed\n"
    "  --models DIR            JSON Schema models of typed objects ([data] models); none by\n"
    "                          default\n"
    "  --sync always|off       fsync before every acknowledgement (always, the default) or never\n"
    "  --log-level LEVEL       debug, info (default), warn or error\n"
    "  -h, --help              print this help\n"
    "\n"
    "HOST:PORT is a numeric IPv4 address, [IPv6], localhost (127.0.0.1) or a host name,\n"
    "resolved once at start (the first address it resolves to); port 0 picks a free port (the\n"
    "\"ready\" log line names it). SIGTERM and SIGINT shut down gracefully; SIGHUP re-reads the\n"
    "log level, the TLS, password and ACL files, [auth] auditors and token revocations.\n"
    "\n"
    "exit codes:\n"
    "  0  stopped by SIGTERM or SIGINT\n"
    "  1  usage or configuration error (one line on stderr)\n"
    "  2  storage failure, or out of memory for a message it must not lose (a store_failure\n"
    "     log line); a restart recovers what was durable\n";

static const char usage__passwd[] =
    "usage: ledgermq passwd USER\n"
    "       ledgermq passwd --file FILE USER\n"
    "       ledgermq passwd [-c] FILE USER\n"
    "       ledgermq passwd [-c] -b FILE USER PASSWORD\n"
    "       ledgermq passwd -D FILE USER\n"
    "       ledgermq passwd -U FILE\n"
    "\n"
    "The password file ([auth] password_file), as mosquitto_passwd manages it. USER: no ':',\n"
    "spaces or control characters, not an identity id. The password is asked for twice\n"
    "without echo on a terminal, else read as one line of stdin. New hashes are scrypt\n"
    "(USER:$scrypt$...); mosquitto's $7$ and $6$ lines are kept and work as they are.\n"
    "\n"
    "  USER                 print USER's line\n"
    "  FILE USER            set USER's password in FILE: its line replaced, or added\n"
    "  -b FILE USER PASS    the same with the password from the command line (visible to\n"
    "                       other users in the process list: for scripts on a private host)\n"
    "\n"
    "options:\n"
    "  --file FILE          append USER's line to FILE; a USER already in it is refused\n"
    "  -c, --create         create FILE, or empty it, before setting USER\n"
    "  -b, --batch          take the password from the command line\n"
    "  -D, --delete         delete USER's line from FILE\n"
    "  -U, --update         hash every plain-text USER:PASSWORD line of FILE (hashed lines\n"
    "                       are left as they are)\n"
    "  -h, --help           print this help\n"
    "\n"
    "FILE is rewritten whole through a temporary file beside it (mode 0600), comments and\n"
    "other lines kept; a crash leaves the old file or the new one. A running broker reads it\n"
    "again on SIGHUP.\n"
    "\n"
    "exit codes:\n"
    "  0  done\n"
    "  1  usage error, bad user name or password, the passwords differ, USER already in FILE\n"
    "     (--file) or not in it (-D)\n"
    "  2  FILE could not be read or written\n";

static const char usage__keygen[] =
    "usage: ledgermq keygen [--out FILE]\n"
    "       ledgermq keygen --eth FILE\n"
    "\n"
    "Writes a new Ed25519 identity key file (a JWK, mode 0600) and prints its id (64 hex\n"
    "characters). With --eth, writes instead an Ethereum sealing key file (a secp256k1 key:\n"
    "JSON {\"type\":\"ledgermq-eth-key\",\"version\":1,\"address\",\"private_key\"}, mode\n"
    "0600) and prints its EIP-55 address; it is never an identity key, and an identity key is\n"
    "never accepted as one. An existing file is never overwritten.\n"
    "\n"
    "options:\n"
    "  --out FILE   where to write the identity key (default ./identity.json)\n"
    "  --eth FILE   write an Ethereum sealing key to FILE instead (not with --out)\n"
    "  -h, --help   print this help\n"
    "\n"
    "exit codes:\n"
    "  0  written\n"
    "  1  usage error, FILE exists or cannot be written\n";

static const char usage__token[] =
    "usage: ledgermq token --key FILE [--http HOST:PORT] [--timeout-ms MS]\n"
    "\n"
    "Logs in as the identity of FILE (POST /auth/challenge, then /auth/token with the signed\n"
    "nonce) and prints the login token: a bearer token for the HTTP API, such as\n"
    "curl -H \"Authorization: Bearer $(ledgermq token --key alice.json)\" .../api/v1/\n"
    "It expires after the server's [auth] token_ttl_s (15 minutes by default).\n"
    "\n"
    "options:\n"
    "  --key FILE          the identity's key file (ledgermq keygen)\n"
    "  --http HOST:PORT    the broker's HTTP listener (default 127.0.0.1:8080)\n"
    "  --timeout-ms MS     give up after MS milliseconds (default 10000)\n"
    "  -h, --help          print this help\n"
    "\n"
    "exit codes:\n"
    "  0  printed\n"
    "  1  usage error, unreadable key file, an address that does not resolve\n"
    "  3  the server refused the login (its reason on stderr)\n"
    "  4  the server could not be reached, or answered badly\n";

static const char usage__send[] =
    "usage: ledgermq send --key FILE --to ID [--type T] [--server HOST:PORT] [--http HOST:PORT]\n"
    "                     [--state DIR] [--timeout-ms MS] JSON\n"
    "\n"
    "Guaranteed delivery of one envelope with body JSON (an object): stored in the outbox of\n"
    "the state directory before it is sent, then printed with the server's ack (or reject) as\n"
    "{\"envelope\":<as sent>,<the ack's fields>}. The server's ledger key is pinned in the state\n"
    "directory on first use. A state directory that never had an envelope accepted, refused as\n"
    "fork (the key sent with another one), adopts the server's chain head and sends again.\n"
    "\n"
    "options:\n"
    "  --key FILE          identity key file (ledgermq keygen)\n"
    "  --to ID             the recipient's identity id (64 lowercase hex characters)\n"
    "  --type T            envelope type, 1..64 of A-Za-z0-9._:- (default message)\n"
    "  --server HOST:PORT  the broker's MQTT listener (default 127.0.0.1:1883)\n"
    "  --http HOST:PORT    the broker's HTTP listener, where identities log in\n"
    "                      (default 127.0.0.1:8080)\n"
    "  --state DIR         client state directory (default: FILE without .json plus .state,\n"
    "                      see README \"State directory\")\n"
    "  --timeout-ms MS     give up after MS milliseconds (default 30000)\n"
    "  -h, --help          print this help\n"
    "\n"
    "exit codes:\n"
    "  0  acknowledged\n"
    "  1  usage or setup error\n"
    "  3  rejected (the reject is printed with the envelope)\n"
    "  4  timed out, or the server could not be reached (the error names the address and\n"
    "     its flag); the envelope stays in the outbox and the next send or listen with the\n"
    "     same state directory sends it again\n"
    "  5  the server's ledger key, its history or the ack's receipt failed verification (the\n"
    "     envelope stays pending)\n";

static const char usage__listen[] =
    "usage: ledgermq listen --key FILE [--server HOST:PORT] [--http HOST:PORT] [--state DIR]\n"
    "                       [--count N] [--timeout-ms MS]\n"
    "\n"
    "Prints each inbox envelope as one JSON line {envelope,index,position}, exactly once per\n"
    "state directory.\n"
    "\n"
    "options:\n"
    "  --key FILE          identity key file (ledgermq keygen)\n"
    "  --server HOST:PORT  the broker's MQTT listener (default 127.0.0.1:1883)\n"
    "  --http HOST:PORT    the broker's HTTP listener, where identities log in\n"
    "                      (default 127.0.0.1:8080)\n"
    "  --state DIR         client state directory (default: as for send, FILE without .json\n"
    "                      plus .state)\n"
    "  --count N           stop after N envelopes\n"
    "  --timeout-ms MS     stop after MS milliseconds (default: no limit)\n"
    "  -h, --help          print this help\n"
    "\n"
    "exit codes:\n"
    "  0  N envelopes printed, or the timeout without --count, or SIGINT/SIGTERM\n"
    "  1  usage or setup error\n"
    "  4  timed out before N envelopes, or the server could not be reached (the error names\n"
    "     the address and its flag)\n"
    "  5  the server's ledger key or history failed verification\n";

static const char usage__revoke[] =
    "usage: ledgermq revoke --data DIR --identity ID [--before UNIX_SECONDS]\n"
    "\n"
    "Revokes the identity's login tokens issued before the time (default: up to now) in DIR's\n"
    "database; a running broker applies it on SIGHUP, a stopped one when it starts. Prints\n"
    "{\"id\":ID,\"revoked_before\":T}.\n"
    "\n"
    "options:\n"
    "  --data DIR              the broker's data directory\n"
    "  --identity ID           the identity id (64 lowercase hex characters)\n"
    "  --before UNIX_SECONDS   revoke tokens issued before this time (at most now + 1)\n"
    "  -h, --help              print this help\n"
    "\n"
    "exit codes:\n"
    "  0  revoked (or already revoked up to a later time)\n"
    "  1  usage error, or the database could not be opened or written\n";

static const char usage__validate[] =
    "usage: ledgermq validate --schema FILE [--draft 2020-12|7] [--assert-formats] [--jsonl]\n"
    "                         [FILE...]\n"
    "       ledgermq validate --models DIR --type T [--assert-formats] [--jsonl] [FILE...]\n"
    "\n"
    "Checks JSON documents against a JSON Schema (2020-12, or draft 7) offline. The schema is\n"
    "checked against its meta-schema and compiled once. Each FILE is one JSON document (none or\n"
    "\"-\": stdin); with --jsonl every non-empty line is one. One JSON line per instance, in\n"
    "order: {\"file\":F,\"valid\":true}, or with \"valid\":false an \"errors\" list (at most 10) "
    "of\n"
    "{\"instance\":PTR,\"schema\":PTR,\"keyword\":K,\"message\":M} (JSON Pointers: the value, and\n"
    "the failing keyword through $refs as 2020-12's basic output has it); --jsonl adds \"line\";\n"
    "an instance that is not JSON gets {\"file\":F,\"error\":\"not JSON: ...\"}.\n"
    "\n"
    "options:\n"
    "  --schema FILE      the schema; $refs to other files are not followed\n"
    "  --models DIR       a models directory, loaded as serve --models loads it (its models\n"
    "                     name each other by type); a broken model is a usage error\n"
    "  --type T           with --models: validate against model T, each document an object's\n"
    "                     body (_t, _prevlink, _permalink, _deleted dropped, as the server does)\n"
    "  --draft D          2020-12 or 7 (default: the schema's $schema, else 2020-12)\n"
    "  --assert-formats   \"format\" fails invalid date-time, date, time, email, hostname,\n"
    "                     idn-email, ipv4, ipv6, uri, uri-reference, iri, iri-reference,\n"
    "                     uri-template, uuid, json-pointer, relative-json-pointer, regex,\n"
    "                     duration\n"
    "                     (default: format is only an annotation; other formats never fail)\n"
    "  --jsonl            one instance per line (of stdin or of each FILE)\n"
    "  -h, --help         print this help\n"
    "\n"
    "exit codes:\n"
    "  0  every instance valid\n"
    "  1  usage error, bad schema or model (invalid, unresolvable $ref, over a limit), unknown\n"
    "     type, unreadable file,\n"
    "     or an instance that is not JSON (1 wins over 3)\n"
    "  3  at least one instance invalid (or over a validation limit: instance depth,\n"
    "     evaluation budget, regex match limit)\n";

static const char usage__bench[] =
    "usage: ledgermq bench [options]\n"
    "\n"
    "Load generator for any MQTT 3.1.1/5.0 broker. Connects everything, subscribes, then\n"
    "publishes for --warmup + --duration seconds, stops, waits (bounded) for what is in\n"
    "flight and reports rates, publish->delivery latency and losses.\n"
    "\n"
    "options:\n"
    "  --host ADDR            broker address (default 127.0.0.1)\n"
    "  --port N               broker port (default 1883)\n"
    "  --scenario S           fan-in (N publishers -> 1 subscriber, default),\n"
    "                         fan-out (1 publisher -> N subscribers),\n"
    "                         pairs (publisher i -> subscriber i), or\n"
    "                         fill (N persistent subscribers leave, then --messages M\n"
    "                         QoS 1 messages queue up for them; reports acked/s)\n"
    "  --publishers N         default 4 (fan-in, pairs) or 1 (fan-out, fill)\n"
    "  --subscribers N        default 1 (fan-in, fill), 4 (fan-out), = publishers (pairs)\n"
    "  --qos 0|1|2            publish and subscription QoS (default 0; fill: 1)\n"
    "  --payload BYTES        payload size, 16..1048576 (default 64); carries the send\n"
    "                         time (CLOCK_MONOTONIC ns) and a sequence number\n"
    "  --mqtt-version 4|5     protocol level (default 5)\n"
    "  --duration S           measured seconds after the warm-up (default 10; fill: time\n"
    "                         limit, default 600)\n"
    "  --warmup S             seconds before measuring (default 1)\n"
    "  --rate MSG_PER_S       total target publish rate, 0 = as fast as possible (default)\n"
    "  --inflight N           unacknowledged QoS 1/2 publishes per publisher (default 64)\n"
    "  --messages M           fill: messages to publish\n"
    "  --pid PID              broker pid: its CPU use and RSS (/proc) go in the report\n"
    "  --clean-start 0|1      subscribers' clean start (default 1)\n"
    "  --session-expiry S     subscribers' session expiry (MQTT 5, default 0)\n"
    "  --topic-length N       pad every topic to N bytes (32..65535; default: as named,\n"
    "                         lmqbench/RUN/all or lmqbench/RUN/I, at most 28 bytes)\n"
    "  --topic-alias-max N    subscribers' Topic Alias Maximum (MQTT 5, 0..65535, default\n"
    "                         0): the broker may then send alias-only PUBLISHes, which\n"
    "                         the subscribers resolve; the report counts the bytes\n"
    "  --json                 print one JSON object instead of the table\n"
    "  -h, --help             print this help\n"
    "\n"
    "exit codes:\n"
    "  0  done\n"
    "  1  usage error\n"
    "  2  the broker refused or disconnected unexpectedly\n";

static const char usage__version[] =
    "usage: ledgermq version\n"
    "\n"
    "Prints \"ledgermq\" and the version (also: ledgermq --version).\n"
    "\n"
    "options:\n"
    "  -h, --help   print this help\n"
    "\n"
    "exit codes:\n"
    "  0  printed\n"
    "  1  usage error\n";

static const char usage__admin[] =
    "usage: ledgermq admin status|sessions|identities|webhooks|jobs|plugins|log-level|reload ...\n"
    "                      --key FILE\n"
    "                      [--http HOST:PORT] [--json] [--timeout-ms MS]\n"
    "\n"
    "The admin API's client (/admin/v1/..., docs/PROTOCOL.md \"Admin API\"): logs in as the\n"
    "identity of FILE, which must be in the server's [admin] ids, and prints the answer as a\n"
    "table, or with --json as the server's JSON (one line).\n"
    "\n"
    "subcommands:\n"
    "  status                           version, uptime, connections, sessions, ledger, events\n"
    "  sessions list [--limit N] [--after CLIENT_ID]\n"
    "                                   sessions by client id, a page (limit 1..1000, 100)\n"
    "  sessions kick CLIENT_ID [--end]  disconnect it (MQTT 5: reason 0x98); --end also ends\n"
    "                                   the session as if it expired\n"
    "  identities list [--limit N] [--after ID]\n"
    "                                   identities the pipeline knows: last seq, inbox position\n"
    "  webhooks list                    endpoints: position, lag, circuit, counts\n"
    "  webhooks dead NAME [--limit N] [--after EVENT_ID]\n"
    "                                   an endpoint's dead-letter list, oldest first\n"
    "  webhooks redeliver NAME EVENT_ID send a dead event again (it leaves the list once\n"
    "                                   delivered)\n"
    "  jobs list                        scheduled jobs: schedule, next tick, runs since start\n"
    "  jobs history NAME [--limit N]    a job's last runs, newest first (limit 1..1000, 20)\n"
    "  jobs run NAME                    run it now (a manual run, recorded like a tick)\n"
    "  plugins list                     loaded plugins: hooks, position, calls, refusals\n"
    "  log-level set LEVEL              debug, info, warn or error, at once (until a reload)\n"
    "  reload                           re-read the config file, as SIGHUP does\n"
    "\n"
    "options:\n"
    "  --key FILE          the admin identity's key file (ledgermq keygen)\n"
    "  --http HOST:PORT    the broker's HTTP listener (default 127.0.0.1:8080)\n"
    "  --json              print the server's JSON instead of a table\n"
    "  --limit N           a list page's size\n"
    "  --after CURSOR      the page after this client id, identity id or event id (a table\n"
    "                      ends with \"(more: --after CURSOR)\" when more may follow)\n"
    "  --end               with sessions kick: end the session too\n"
    "  --timeout-ms MS     give up after MS milliseconds, per request (default 10000)\n"
    "  -h, --help          print this help\n"
    "\n"
    "exit codes:\n"
    "  0  done\n"
    "  1  usage error, unreadable key file, an address that does not resolve\n"
    "  3  the server refused (401 not logged in, 403 not in [admin] ids, 404 no such session,\n"
    "     webhook or dead event, ...; its reason on stderr)\n"
    "  4  no answer, or a server error\n";

static const char usage__help[] =
    "usage: ledgermq help [COMMAND]\n"
    "\n"
    "Prints the list of commands, or COMMAND's usage (as ledgermq COMMAND --help does).\n"
    "\n"
    "options:\n"
    "  -h, --help   print this help\n"
    "\n"
    "exit codes:\n"
    "  0  printed\n"
    "  1  no such command\n";

static const struct cli_usage usage__table[] = {
    {"serve", "run the broker (MQTT 127.0.0.1:1883, HTTP 127.0.0.1:8080 by default)", usage__serve},
    {"passwd", "print or append a password file line for a user", usage__passwd},
    {"keygen", "create an Ed25519 identity key file (--eth: an Ethereum sealing key)",
     usage__keygen},
    {"send", "deliver one signed envelope to an identity, with its ack and receipt", usage__send},
    {"listen", "print an identity's inbox envelopes, exactly once", usage__listen},
    {"token", "print a login token (a bearer token for the HTTP API)", usage__token},
    {"verify", "check checkpoints, receipts, consistency proofs or a database offline",
     verify_usage},
    {"revoke", "revoke an identity's login tokens", usage__revoke},
    {"validate", "check JSON documents against a JSON Schema (2020-12 or draft 7)",
     usage__validate},
    {"bench", "load generator for any MQTT broker", usage__bench},
    {"admin", "the admin API: status, sessions, identities, webhooks, jobs, plugins, log level",
     usage__admin},
    {"version", "print the version", usage__version},
    {"help", "print the commands, or one command's usage", usage__help},
};

const struct cli_usage *cli_usage_find(const char *name)
{
    LMQ_ASSERT(name != NULL);
    for (size_t i = 0; i < LMQ_ARRAY_LEN(usage__table); i++) {
        if (strcmp(usage__table[i].name, name) == 0)
            return &usage__table[i];
    }
    return NULL;
}

void cli_usage_print(FILE *f, const char *name)
{
    const struct cli_usage *u = cli_usage_find(name);
    LMQ_ASSERT(u != NULL && strncmp(u->text, "usage: ledgermq ", 16) == 0);
    fputs(u->text, f);
}

/* The synopsis of u: its first line and the indented ones after it, without "usage: ". */
static void usage__print_synopsis(FILE *f, const struct cli_usage *u)
{
    const char *line = u->text + strlen("usage: ");
    LMQ_ASSERT(strncmp(u->text, "usage: ", 7) == 0);
    /* One pass over the text: bounded by its length. */
    for (bool first = true; *line != '\0'; first = false) {
        const char *end = strchr(line, '\n');
        size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
        if (!first && (len == 0 || line[0] != ' '))
            break;
        fprintf(f, "  %.*s\n", (int)(first ? len : len - LMQ_MIN(len, 7)),
                first ? line : line + LMQ_MIN(len, 7));
        line += len + (end != NULL ? 1 : 0);
    }
}

void cli_usage_print_all(FILE *f)
{
    fputs("usage: ledgermq <command> [options]\n\ncommands:\n", f);
    for (size_t i = 0; i < LMQ_ARRAY_LEN(usage__table); i++) {
        usage__print_synopsis(f, &usage__table[i]);
        fprintf(f, "      %s\n", usage__table[i].summary);
    }
    fputs("\n"
          "ledgermq help COMMAND (or ledgermq COMMAND --help) prints a command's flags and exit\n"
          "codes. HOST:PORT is a numeric IPv4 address, [IPv6], localhost or a host name; port 0\n"
          "picks a free port. Errors are one line on stderr: \"ledgermq: <command>: <message>\".\n",
          f);
}

bool cli_usage_asks_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return true;
    }
    return false;
}
