/*
 * ledgermq: subcommand dispatch. `serve` builds the configuration from the
 * defaults, then the config file, then the flags (flags win), creates the
 * data directory and runs the broker. Usage and config errors are one line
 * on stderr, "ledgermq: <message>", and exit code 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/bench.h"
#include "cli/cli.h"
#include "broker/broker.h"
#include "core/config.h"
#include "core/lmq.h"
#include "verify/verify.h"
#include "crypto/passwd.h"

#define MAIN_EXIT_OK 0
#define MAIN_EXIT_USAGE 1
#define MAIN_EXIT_IO 2 /* passwd: the password file could not be read or written */
/* Room for a message naming a file, a line, a key and a quoted value. */
#define MAIN_ERR_MAX_BYTES 2048

static const char main__usage[] =
    "usage: ledgermq <command> [options]\n"
    "\n"
    "commands:\n"
    "  serve   [--config FILE] [--data DIR] [--mqtt HOST:PORT]... [--mqtts HOST:PORT]...\n"
    "          [--http HOST:PORT] [--https HOST:PORT] [--tls-cert FILE --tls-key FILE]\n"
    "          [--tls-client-ca FILE] [--tls-client-cert none|optional|required]\n"
    "          [--password-file FILE] [--acl-file FILE]\n"
    "          [--sync always|off] [--log-level debug|info|warn|error]\n"
    "          run the broker (flags override the config file; the first --mqtt\n"
    "          replaces the listener list, repeats add listeners; --http/--https\n"
    "          serve MQTT over WebSocket at /mqtt, /healthz, /metrics and /version;\n"
    "          no HTTP listener without them; SIGHUP re-reads the TLS, password\n"
    "          and ACL files)\n"
    "  passwd  [--file FILE] USER    read a password from stdin, print (or append to\n"
    "                                FILE, created 0600) the password file line for\n"
    "                                USER; exit 1 on bad input, 2 on a file error\n"
    "  keygen  [--out FILE]          new Ed25519 identity key file (default ./identity.json,\n"
    "          never overwritten); prints its id\n"
    "  send    --key FILE --to ID [--type T] [--server HOST:PORT] [--http HOST:PORT]\n"
    "          [--state DIR] [--timeout-ms MS] JSON\n"
    "          guaranteed delivery of one envelope with body JSON (an object): stored in\n"
    "          the outbox of DIR (default: FILE without .json plus .state, see README\n"
    "          \"State directory\") before it is sent, prints the server's ack line with\n"
    "          the envelope added ({\"envelope\":{...},...ack}); exit 0 acked, 3 rejected\n"
    "          (prints the reject likewise; a fork from a state DIR that never had an\n"
    "          envelope accepted adopts the server's chain head and sends again),\n"
    "          4 timed out (default 30000 ms; the envelope stays in the outbox and the next\n"
    "          send or listen with DIR sends it again), 5 the server's ledger key, its\n"
    "          history or the ack's receipt failed verification (the envelope stays\n"
    "          pending), 1 usage or setup error. The server's ledger key is pinned in\n"
    "          DIR on first use\n"
    "  listen  --key FILE [--server HOST:PORT] [--http HOST:PORT] [--state DIR]\n"
    "          [--count N] [--timeout-ms MS]\n"
    "          prints each inbox envelope as one JSON line {envelope,index,position},\n"
    "          exactly once per state DIR (default as for send); exit 0 after N\n"
    "          envelopes (or at the timeout without --count, or on SIGINT/SIGTERM), 4\n"
    "          timed out before N, 1 errors\n"
    "          (--server is MQTT, default 127.0.0.1:1883; --http is the login server,\n"
    "          default 127.0.0.1:8080)\n"
    "  verify  --key VKEY --checkpoint F | --receipt F [--envelope F] |\n"
    "          --old-checkpoint F --checkpoint F --proof F | --data DIR\n"
    "                                check checkpoints, receipts, consistency, a database;\n"
    "          F may be what the HTTP API or send/listen print; exit 0 verified, 3 not\n"
    "          verified, 1 usage, I/O or unusable input\n"
    "  revoke  --data DIR --identity ID [--before UNIX_SECONDS]\n"
    "          revoke the identity's login tokens issued before the time (default: up to\n"
    "          now) in DIR's database; a running broker applies it on SIGHUP, a stopped one\n"
    "          when it starts; prints {\"id\":ID,\"revoked_before\":T}\n"
    "  bench   [--scenario S] ...    load generator for any MQTT broker (bench --help)\n"
    "  version                       print the version\n"
    "  help                          print this help\n"
    "\n"
    "HOST:PORT is a numeric IPv4 address, [IPv6] or localhost; port 0 picks a free port.\n";

enum main_flag_kind {
    MAIN_FLAG_CONFIG,
    MAIN_FLAG_SERVER_KEY, /* applied with lmq_config_set("server", key) */
    MAIN_FLAG_TLS_KEY,    /* applied with lmq_config_set("tls", key) */
    MAIN_FLAG_AUTH_KEY,   /* applied with lmq_config_set("auth", key) */
    MAIN_FLAG_MQTT,       /* first replaces the listeners, repeats append */
    MAIN_FLAG_MQTTS,      /* each appends TLS listeners */
};

struct main_flag {
    const char *name; /* without the leading "--" */
    enum main_flag_kind kind;
    const char *key; /* [server] key for MAIN_FLAG_SERVER_KEY */
};

static const struct main_flag main__serve_flags[] = {
    {"config", MAIN_FLAG_CONFIG, NULL},
    {"data", MAIN_FLAG_SERVER_KEY, "data"},
    {"mqtt", MAIN_FLAG_MQTT, "mqtt"},
    {"sync", MAIN_FLAG_SERVER_KEY, "sync"},
    {"log-level", MAIN_FLAG_SERVER_KEY, "log_level"},
    {"mqtts", MAIN_FLAG_MQTTS, "mqtts"},
    {"http", MAIN_FLAG_SERVER_KEY, "http"},
    {"https", MAIN_FLAG_SERVER_KEY, "https"},
    {"tls-cert", MAIN_FLAG_TLS_KEY, "cert"},
    {"tls-key", MAIN_FLAG_TLS_KEY, "key"},
    {"tls-client-ca", MAIN_FLAG_TLS_KEY, "client_ca"},
    {"tls-client-cert", MAIN_FLAG_TLS_KEY, "client_cert"},
    {"password-file", MAIN_FLAG_AUTH_KEY, "password_file"},
    {"acl-file", MAIN_FLAG_AUTH_KEY, "acl_file"},
};

__attribute__((format(printf, 1, 2))) static int main__fail(const char *fmt, ...)
{
    char msg[MAIN_ERR_MAX_BYTES];
    va_list ap;
    va_start(ap, fmt);
    int n = lmq_verrf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* A message cut at the buffer size is still worth printing. */
    fprintf(stderr, "ledgermq: %s\n", n < 0 ? "error" : msg);
    return MAIN_EXIT_USAGE;
}

static const struct main_flag *main__find_flag(const char *name, size_t name_len)
{
    for (size_t i = 0; i < LMQ_ARRAY_LEN(main__serve_flags); i++) {
        const char *candidate = main__serve_flags[i].name;
        if (strlen(candidate) == name_len && memcmp(candidate, name, name_len) == 0) {
            return &main__serve_flags[i];
        }
    }
    return NULL;
}

/*
 * Reads the flag at argv[*i] ("--name value" or "--name=value") and advances
 * *i past it. Returns 0, or prints the error and returns MAIN_EXIT_USAGE.
 */
static int main__next_flag(int argc, char **argv, int *i, const struct main_flag **flag,
                           const char **value)
{
    LMQ_ASSERT(*i < argc);
    const char *arg = argv[*i];
    if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
        return main__fail("serve: unexpected argument \"%s\"", arg);
    }
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    *value = NULL;
    size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
    *flag = main__find_flag(name, name_len);
    if (*flag == NULL) {
        return main__fail("serve: unknown flag --%.*s (see ledgermq help)", (int)name_len, name);
    }
    if (eq != NULL) {
        *value = eq + 1;
    } else if (*i + 1 < argc && strncmp(argv[*i + 1], "--", 2) != 0) {
        *i += 1;
        *value = argv[*i];
    }
    if (*value == NULL || (*value)[0] == '\0') {
        return main__fail("--%s needs a value", (*flag)->name);
    }
    *i += 1;
    return 0;
}

/*
 * Shortens "[server] key: expected ..." from lmq_config_set() to
 * "expected ..." so the message can name the flag instead.
 */
static const char *main__strip_key(const char *err, const char *key)
{
    char prefix[64];
    static const char *const sections[] = {"server", "tls", "auth"};
    for (size_t i = 0; i < LMQ_ARRAY_LEN(sections); i++) {
        int n = snprintf(prefix, sizeof(prefix), "[%s] %s: ", sections[i], key);
        LMQ_ASSERT(n > 0 && (size_t)n < sizeof(prefix));
        if (strncmp(err, prefix, (size_t)n) == 0)
            return err + n;
    }
    return err;
}

/* Applies one already validated flag to cfg. */
static int main__apply_flag(struct lmq_config *cfg, const struct main_flag *flag, const char *value,
                            bool *mqtt_seen)
{
    char err[MAIN_ERR_MAX_BYTES];
    int rc = 0;
    LMQ_ASSERT(flag != NULL && value != NULL);
    if (flag->kind == MAIN_FLAG_CONFIG) {
        return 0; /* loaded before any flag is applied */
    }
    if (flag->kind == MAIN_FLAG_MQTT && *mqtt_seen) {
        rc = lmq_config_append_listeners(cfg, value, err, sizeof(err));
    } else if (flag->kind == MAIN_FLAG_MQTTS) {
        rc = lmq_config_append_tls_listeners(cfg, value, err, sizeof(err));
    } else if (flag->kind == MAIN_FLAG_TLS_KEY) {
        rc = lmq_config_set(cfg, "tls", flag->key, value, err, sizeof(err));
    } else if (flag->kind == MAIN_FLAG_AUTH_KEY) {
        rc = lmq_config_set(cfg, "auth", flag->key, value, err, sizeof(err));
    } else {
        rc = lmq_config_set(cfg, "server", flag->key, value, err, sizeof(err));
        *mqtt_seen = *mqtt_seen || flag->kind == MAIN_FLAG_MQTT;
    }
    if (rc != 0) {
        return main__fail("--%s: %s", flag->name, main__strip_key(err, flag->key));
    }
    return 0;
}

/*
 * Validates the flags and finds --config (first pass), so the file is loaded
 * before any flag is applied whatever the order on the command line.
 */
static int main__find_config(int argc, char **argv, const char **config_path)
{
    *config_path = NULL;
    for (int i = 0; i < argc;) { /* main__next_flag advances i by 1 or 2 */
        const struct main_flag *flag = NULL;
        const char *value = NULL;
        if (main__next_flag(argc, argv, &i, &flag, &value) != 0) {
            return MAIN_EXIT_USAGE;
        }
        LMQ_ASSERT(flag != NULL && value != NULL);
        if (flag->kind == MAIN_FLAG_CONFIG) {
            if (*config_path != NULL) {
                return main__fail("--config given more than once");
            }
            *config_path = value;
        }
    }
    return 0;
}

static int main__serve(int argc, char **argv)
{
    struct lmq_config cfg;
    const char *config_path = NULL;
    char err[MAIN_ERR_MAX_BYTES];
    bool mqtt_seen = false;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            fputs(main__usage, stdout);
            return MAIN_EXIT_OK;
        }
    }
    if (main__find_config(argc, argv, &config_path) != 0) {
        return MAIN_EXIT_USAGE;
    }
    lmq_config_defaults(&cfg);
    if (config_path != NULL && lmq_config_load_file(&cfg, config_path, err, sizeof(err)) != 0) {
        return main__fail("%s", err);
    }
    for (int i = 0; i < argc;) { /* the first pass has validated every flag */
        const struct main_flag *flag = NULL;
        const char *value = NULL;
        int rc = main__next_flag(argc, argv, &i, &flag, &value);
        LMQ_ASSERT(rc == 0 && flag != NULL && value != NULL);
        if (main__apply_flag(&cfg, flag, value, &mqtt_seen) != 0) {
            return MAIN_EXIT_USAGE;
        }
    }
    LMQ_ASSERT(cfg.mqtt_count >= 1 && cfg.mqtt_count <= LMQ_LISTENERS_MAX);
    if (lmq_config_validate(&cfg, err, sizeof(err)) != 0) {
        return main__fail("%s", err);
    }
    lmq_log_set_level(cfg.log_level);
    return broker_run(&cfg);
}

/* Reads the password: one line of stdin without its line end. 0 or MAIN_EXIT_USAGE. */
static int main__read_password(char *pw, size_t cap, size_t *len)
{
    LMQ_ASSERT(pw != NULL && cap > CRYPTO_PASSWD_PASSWORD_MAX_BYTES + 2);
    if (fgets(pw, (int)cap, stdin) == NULL)
        return main__fail("passwd: expected the password on stdin (one line)");
    *len = strlen(pw);
    bool newline = *len > 0 && pw[*len - 1] == '\n';
    if (!newline && !feof(stdin))
        return main__fail("passwd: password longer than %d bytes",
                          CRYPTO_PASSWD_PASSWORD_MAX_BYTES);
    while (*len > 0 && (pw[*len - 1] == '\n' || pw[*len - 1] == '\r'))
        pw[--*len] = '\0';
    if (*len == 0)
        return main__fail("passwd: empty password");
    if (*len > CRYPTO_PASSWD_PASSWORD_MAX_BYTES)
        return main__fail("passwd: password longer than %d bytes",
                          CRYPTO_PASSWD_PASSWORD_MAX_BYTES);
    return 0;
}

/* Appends line to the password file at path (created 0600), refusing a user already in it. */
static int main__passwd_append(const char *path, const char *user, const char *line)
{
    struct crypto_passwd_file *f = NULL;
    char err[MAIN_ERR_MAX_BYTES];
    bool exists = access(path, F_OK) == 0;
    if (exists && crypto_passwd_file_load(path, &f, err, sizeof(err)) != LMQ_OK) {
        main__fail("passwd: %s", err);
        return MAIN_EXIT_IO;
    }
    bool dup = f != NULL && crypto_passwd_file_lookup(f, (const uint8_t *)user, strlen(user));
    crypto_passwd_file_free(f);
    if (dup)
        return main__fail("passwd: %s is already in %s (remove its line first)", user, path);
    int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600); /* read: the last byte */
    struct stat st;
    bool needs_newline = false;
    if (fd >= 0 && fstat(fd, &st) == 0 && st.st_size > 0) {
        char last = '\n';
        needs_newline = pread(fd, &last, 1, st.st_size - 1) == 1 && last != '\n';
    }
    size_t len = strlen(line);
    if (fd < 0 || (needs_newline && write(fd, "\n", 1) != 1) ||
        write(fd, line, len) != (ssize_t)len || fsync(fd) != 0) {
        main__fail("passwd: cannot write %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return MAIN_EXIT_IO;
    }
    if (close(fd) != 0) {
        main__fail("passwd: cannot write %s: %s", path, strerror(errno));
        return MAIN_EXIT_IO;
    }
    return MAIN_EXIT_OK;
}

/* ledgermq passwd [--file FILE] USER */
static int main__passwd(int argc, char **argv)
{
    const char *file = NULL, *user = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--file") == 0 && i + 1 < argc)
            file = argv[++i];
        else if (strncmp(argv[i], "--file=", 7) == 0 && argv[i][7] != '\0')
            file = argv[i] + 7;
        else if (strncmp(argv[i], "--", 2) == 0 || user != NULL)
            return main__fail("usage: ledgermq passwd [--file FILE] USER");
        else
            user = argv[i];
    }
    if (user == NULL)
        return main__fail("usage: ledgermq passwd [--file FILE] USER");
    if (!crypto_passwd_user_valid((const uint8_t *)user, strlen(user)))
        return main__fail("passwd: bad user name \"%s\" (1..%d bytes, no ':', spaces or control "
                          "characters, not an identity id)",
                          user, CRYPTO_PASSWD_USER_MAX_BYTES);
    char pw[CRYPTO_PASSWD_PASSWORD_MAX_BYTES + 3];
    size_t pw_len = 0;
    if (main__read_password(pw, sizeof(pw), &pw_len) != 0)
        return MAIN_EXIT_USAGE;
    const struct crypto_scrypt_params params = {
        .n = CRYPTO_PASSWD_DEFAULT_N, .r = CRYPTO_PASSWD_DEFAULT_R, .p = CRYPTO_PASSWD_DEFAULT_P};
    char hash[CRYPTO_PASSWD_HASH_MAX_CHARS + 1];
    int rc = crypto_passwd_hash((const uint8_t *)pw, pw_len, &params, hash, sizeof(hash));
    explicit_bzero(pw, sizeof(pw));
    if (rc != LMQ_OK)
        return main__fail("passwd: cannot hash the password: %s", lmq_strerror(rc));
    char line[CRYPTO_PASSWD_USER_MAX_BYTES + CRYPTO_PASSWD_HASH_MAX_CHARS + 3];
    int n = snprintf(line, sizeof(line), "%s:%s\n", user, hash);
    LMQ_ASSERT(n > 0 && (size_t)n < sizeof(line));
    if (file == NULL) {
        fputs(line, stdout);
        return fflush(stdout) == 0 ? MAIN_EXIT_OK : MAIN_EXIT_IO;
    }
    return main__passwd_append(file, user, line);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(main__usage, stderr);
        return MAIN_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        fputs(main__usage, stdout);
        return MAIN_EXIT_OK;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        if (argc > 2) {
            return main__fail("version takes no arguments");
        }
        printf("ledgermq %s\n", LMQ_VERSION);
        return MAIN_EXIT_OK;
    }
    if (strcmp(cmd, "serve") == 0) {
        return main__serve(argc - 2, argv + 2);
    }
    if (strcmp(cmd, "passwd") == 0) {
        return main__passwd(argc - 2, argv + 2);
    }
    if (strcmp(cmd, "bench") == 0) {
        return bench_main(argc - 2, argv + 2);
    }
    if (strcmp(cmd, "verify") == 0) {
        return verify_main(argc - 2, argv + 2);
    }
    if (strcmp(cmd, "keygen") == 0) {
        return cli_keygen(argc - 2, argv + 2);
    }
    if (strcmp(cmd, "send") == 0) {
        return cli_send(argc - 2, argv + 2);
    }
    if (strcmp(cmd, "listen") == 0) {
        return cli_listen(argc - 2, argv + 2);
    }
    if (strcmp(cmd, "revoke") == 0) {
        return cli_revoke(argc - 2, argv + 2);
    }
    main__fail("unknown command \"%s\"", cmd);
    fputs(main__usage, stderr);
    return MAIN_EXIT_USAGE;
}
