/*
 * ledgermq: subcommand dispatch. `serve` builds the configuration from the
 * defaults, then the config file, then the flags (flags win), creates the
 * data directory and runs the broker. Usage and config errors are one line
 * on stderr, "ledgermq: <command>: <message>", and exit code 1. Every
 * command's usage text is in src/cli/usage.c; `CMD --help` and `-h` print it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/bench.h"
#include "cli/cli.h"
#include "cli/usage.h"
#include "broker/broker.h"
#include "core/config.h"
#include "core/lmq.h"
#include "verify/verify.h"
#include "crypto/passwd.h"

#define MAIN_EXIT_OK 0
#define MAIN_EXIT_USAGE 1
/* Room for a message naming a file, a line, a key and a quoted value. */
#define MAIN_ERR_MAX_BYTES 2048

enum main_flag_kind {
    MAIN_FLAG_CONFIG,
    MAIN_FLAG_SERVER_KEY, /* applied with lmq_config_set("server", key) */
    MAIN_FLAG_TLS_KEY,    /* applied with lmq_config_set("tls", key) */
    MAIN_FLAG_AUTH_KEY,   /* applied with lmq_config_set("auth", key) */
    MAIN_FLAG_DATA_KEY,   /* applied with lmq_config_set("data", key) */
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
    {"models", MAIN_FLAG_DATA_KEY, "models"},
};

/* The command running, for the error prefix; NULL before one is known. */
static const char *main__cmd;

__attribute__((format(printf, 1, 2))) static int main__fail(const char *fmt, ...)
{
    char msg[MAIN_ERR_MAX_BYTES];
    va_list ap;
    va_start(ap, fmt);
    int n = lmq_verrf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* A message cut at the buffer size is still worth printing. */
    fprintf(stderr, "ledgermq: %s%s%s\n", main__cmd != NULL ? main__cmd : "",
            main__cmd != NULL ? ": " : "", n < 0 ? "error" : msg);
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
        return main__fail("unexpected argument \"%s\" (see ledgermq serve --help)", arg);
    }
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    *value = NULL;
    size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
    *flag = main__find_flag(name, name_len);
    if (*flag == NULL) {
        return main__fail("unknown flag --%.*s (see ledgermq serve --help)", (int)name_len, name);
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
    } else if (flag->kind == MAIN_FLAG_DATA_KEY) {
        rc = lmq_config_set(cfg, "data", flag->key, value, err, sizeof(err));
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
    if (lmq_config_validate(&cfg, err, sizeof(err)) != 0 ||
        lmq_config_resolve_listeners(&cfg, err, sizeof(err)) != 0) {
        return main__fail("%s", err);
    }
    lmq_log_set_level(cfg.log_level);
    return broker_run(&cfg);
}

/* help [COMMAND]: the overview, or one command's usage. */
static int main__help(int argc, char **argv)
{
    if (argc == 0) {
        cli_usage_print_all(stdout);
        return MAIN_EXIT_OK;
    }
    if (argc > 1)
        return main__fail("expected at most one COMMAND (see ledgermq help --help)");
    if (cli_usage_find(argv[0]) == NULL)
        return main__fail("unknown command \"%s\" (see ledgermq help)", argv[0]);
    cli_usage_print(stdout, argv[0]);
    return MAIN_EXIT_OK;
}

static int main__version(int argc, char **argv)
{
    if (argc > 0)
        return main__fail("takes no arguments, got \"%s\"", argv[0]);
    printf("ledgermq %s\n", LMQ_VERSION);
    return MAIN_EXIT_OK;
}

struct main_command {
    const char *name;
    int (*run)(int argc, char **argv); /* the arguments after the command's name */
};

static const struct main_command main__commands[] = {
    {"serve", main__serve},  {"passwd", cli_passwd}, {"keygen", cli_keygen},
    {"send", cli_send},      {"listen", cli_listen}, {"token", cli_token},
    {"verify", verify_main}, {"revoke", cli_revoke}, {"validate", cli_validate},
    {"bench", bench_main},   {"admin", cli_admin},   {"version", main__version},
    {"help", main__help},
};

int main(int argc, char **argv)
{
    if (argc < 2) {
        cli_usage_print_all(stderr);
        return MAIN_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0)
        cmd = "help";
    else if (strcmp(cmd, "--version") == 0)
        cmd = "version";
    for (size_t i = 0; i < LMQ_ARRAY_LEN(main__commands); i++) {
        if (strcmp(cmd, main__commands[i].name) != 0)
            continue;
        LMQ_ASSERT(cli_usage_find(cmd) != NULL); /* every command has its usage text */
        if (cli_usage_asks_help(argc - 2, argv + 2)) {
            cli_usage_print(stdout, cmd);
            return MAIN_EXIT_OK;
        }
        main__cmd = cmd;
        return main__commands[i].run(argc - 2, argv + 2);
    }
    main__fail("unknown command \"%s\"", cmd);
    cli_usage_print_all(stderr);
    return MAIN_EXIT_USAGE;
}
