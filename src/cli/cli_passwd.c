/*
 * ledgermq passwd: the password file ([auth] password_file), at parity with mosquitto_passwd.
 *
 *   passwd USER                        print USER's line (password: one line of stdin)
 *   passwd --file F USER               append USER's line to F (a USER already in F is refused)
 *   passwd [-c] F USER                 set USER's password in F (added, or its line replaced;
 *                                      -c: F is created or emptied first)
 *   passwd [-c] -b F USER PASSWORD     the same, the password from the command line
 *   passwd -D F USER                   delete USER's line from F
 *   passwd -U F                        hash every plain-text "user:password" line of F
 *
 * On a terminal the password is asked for twice without echo; otherwise it is one line of
 * stdin. A file is rewritten whole (comments, blank lines and other users' lines kept as they
 * are) through a temporary file in its directory, fsynced and renamed over it, mode 0600: a
 * crash leaves the old file or the new one. New hashes are always scrypt; lines with
 * mosquitto's $7$/$6$ hashes are kept (and read by the broker).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/lmq.h"
#include "crypto/passwd.h"

#define CLI_PASSWD_EXIT_IO 2 /* the password file could not be read or written */
#define CLI_PASSWD_LINE_MAX_BYTES (CRYPTO_PASSWD_USER_MAX_BYTES + CRYPTO_PASSWD_HASH_MAX_CHARS + 3)

enum cli_passwd_mode {
    CLI_PASSWD_PRINT,  /* USER */
    CLI_PASSWD_APPEND, /* --file F USER */
    CLI_PASSWD_SET,    /* [-c] [-b] F USER [PASSWORD] */
    CLI_PASSWD_DELETE, /* -D F USER */
    CLI_PASSWD_UPDATE, /* -U F */
};

__attribute__((format(printf, 2, 3))) static int cli_passwd__fail(int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = lmq_verrf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "ledgermq: passwd: %s\n", n < 0 ? "error" : msg);
    return code;
}

/* Checks a password's length (1..CRYPTO_PASSWD_PASSWORD_MAX_BYTES). */
static int cli_passwd__check_password(size_t len)
{
    if (len == 0)
        return cli_passwd__fail(CLI_EXIT_USAGE, "empty password");
    if (len > CRYPTO_PASSWD_PASSWORD_MAX_BYTES)
        return cli_passwd__fail(CLI_EXIT_USAGE, "password longer than %d bytes",
                                CRYPTO_PASSWD_PASSWORD_MAX_BYTES);
    return 0;
}

/* One line of fd's input without its line end, echo off when fd is a terminal. */
static int cli_passwd__read_line(FILE *in, bool tty, const char *prompt, char *pw, size_t cap,
                                 size_t *len)
{
    struct termios saved, quiet;
    bool restore = false;
    if (tty) {
        /* Echo off before the prompt: what is typed after the prompt is never flushed (typed
         * ahead of it, it is: TCSAFLUSH, as getpass does). */
        if (tcgetattr(fileno(in), &saved) == 0) {
            quiet = saved;
            quiet.c_lflag &= ~(tcflag_t)ECHO;
            quiet.c_lflag |= ECHONL;
            restore = tcsetattr(fileno(in), TCSAFLUSH, &quiet) == 0;
        }
        fputs(prompt, stderr);
        fflush(stderr);
    }
    char *got = fgets(pw, (int)cap, in);
    if (restore)
        (void)tcsetattr(fileno(in), TCSANOW, &saved);
    if (got == NULL)
        return cli_passwd__fail(CLI_EXIT_USAGE, "expected the password on stdin (one line)");
    *len = strlen(pw);
    bool newline = *len > 0 && pw[*len - 1] == '\n';
    if (!newline && !feof(in))
        return cli_passwd__fail(CLI_EXIT_USAGE, "password longer than %d bytes",
                                CRYPTO_PASSWD_PASSWORD_MAX_BYTES);
    while (*len > 0 && (pw[*len - 1] == '\n' || pw[*len - 1] == '\r'))
        pw[--*len] = '\0';
    return cli_passwd__check_password(*len);
}

/* The password: asked twice without echo on a terminal, else one line of stdin. */
static int cli_passwd__read_password(char *pw, size_t cap, size_t *len)
{
    LMQ_ASSERT(cap > CRYPTO_PASSWD_PASSWORD_MAX_BYTES + 2);
    bool tty = isatty(STDIN_FILENO) == 1;
    int rc = cli_passwd__read_line(stdin, tty, "Password: ", pw, cap, len);
    if (rc != 0 || !tty)
        return rc;
    char again[CRYPTO_PASSWD_PASSWORD_MAX_BYTES + 3];
    size_t again_len = 0;
    rc = cli_passwd__read_line(stdin, tty, "Reenter password: ", again, sizeof(again), &again_len);
    bool same = rc == 0 && again_len == *len && memcmp(again, pw, *len) == 0;
    explicit_bzero(again, sizeof(again));
    if (rc != 0)
        return rc;
    return same ? 0 : cli_passwd__fail(CLI_EXIT_USAGE, "the passwords do not match");
}

/* "user:<scrypt hash>\n" for password into line. */
static int cli_passwd__line(const char *user, const char *pw, size_t pw_len, char *line, size_t cap)
{
    const struct crypto_scrypt_params params = {
        .n = CRYPTO_PASSWD_DEFAULT_N, .r = CRYPTO_PASSWD_DEFAULT_R, .p = CRYPTO_PASSWD_DEFAULT_P};
    char hash[CRYPTO_PASSWD_HASH_MAX_CHARS + 1];
    int rc = crypto_passwd_hash((const uint8_t *)pw, pw_len, &params, hash, sizeof(hash));
    if (rc != LMQ_OK)
        return cli_passwd__fail(CLI_EXIT_USAGE, "cannot hash the password: %s", lmq_strerror(rc));
    int n = snprintf(line, cap, "%s:%s\n", user, hash);
    LMQ_ASSERT(n > 0 && (size_t)n < cap);
    return 0;
}

/* Appends line to the password file at path (created 0600), refusing a user already in it. */
static int cli_passwd__append(const char *path, const char *user, const char *line)
{
    struct crypto_passwd_file *f = NULL;
    char err[1024];
    bool exists = access(path, F_OK) == 0;
    if (exists && crypto_passwd_file_load(path, &f, err, sizeof(err)) != LMQ_OK)
        return cli_passwd__fail(CLI_PASSWD_EXIT_IO, "%s", err);
    bool dup = f != NULL && crypto_passwd_file_lookup(f, (const uint8_t *)user, strlen(user));
    crypto_passwd_file_free(f);
    if (dup)
        return cli_passwd__fail(CLI_EXIT_USAGE,
                                "%s is already in %s (ledgermq passwd %s %s sets its password)",
                                user, path, path, user);
    int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600); /* read: the last byte */
    struct stat st;
    bool needs_newline = false;
    if (fd >= 0 && fstat(fd, &st) == 0 && st.st_size > 0) {
        char last = '\n';
        needs_newline = pread(fd, &last, 1, st.st_size - 1) == 1 && last != '\n';
    }
    size_t len = strlen(line);
    bool ok = fd >= 0 && (!needs_newline || write(fd, "\n", 1) == 1) &&
              write(fd, line, len) == (ssize_t)len && fsync(fd) == 0;
    int saved = errno;
    if (fd >= 0 && close(fd) != 0 && ok) {
        ok = false;
        saved = errno;
    }
    if (!ok)
        return cli_passwd__fail(CLI_PASSWD_EXIT_IO, "cannot write %s: %s", path, strerror(saved));
    return CLI_EXIT_OK;
}

/* The whole file at path (NUL-terminated; "" when it does not exist and may_be_missing). */
static int cli_passwd__slurp(const char *path, bool may_be_missing, char **text, size_t *len)
{
    char err[1024];
    if (may_be_missing && access(path, F_OK) != 0 && errno == ENOENT) {
        *text = calloc(1, 1);
        *len = 0;
        return *text != NULL ? 0 : cli_passwd__fail(CLI_PASSWD_EXIT_IO, "out of memory");
    }
    if (lmq_file_read(path, CRYPTO_PASSWD_FILE_MAX_BYTES, text, len, err, sizeof(err)) != LMQ_OK)
        return cli_passwd__fail(CLI_PASSWD_EXIT_IO, "%s", err);
    return 0;
}

/* Replaces the file at path with text: a temporary file beside it, fsynced, renamed over it,
 * the directory fsynced. Mode 0600. */
static int cli_passwd__replace(const char *path, const char *text, size_t len)
{
    char tmp[4096];
    int n = snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", path);
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return cli_passwd__fail(CLI_EXIT_USAGE, "path too long: %s", path);
    int fd = mkstemp(tmp);
    if (fd < 0)
        return cli_passwd__fail(CLI_PASSWD_EXIT_IO, "cannot write %s: %s", path, strerror(errno));
    bool ok = fchmod(fd, 0600) == 0 && write(fd, text, len) == (ssize_t)len && fsync(fd) == 0;
    int saved = errno;
    if (close(fd) != 0 && ok) {
        ok = false;
        saved = errno;
    }
    if (ok && rename(tmp, path) != 0) {
        ok = false;
        saved = errno;
    }
    if (!ok) {
        unlink(tmp);
        return cli_passwd__fail(CLI_PASSWD_EXIT_IO, "cannot write %s: %s", path, strerror(saved));
    }
    char dir[4096];
    const char *slash = strrchr(path, '/');
    n = snprintf(dir, sizeof(dir), "%.*s", slash == NULL ? 1 : (int)(slash - path + 1),
                 slash == NULL ? "." : path);
    int dfd = n > 0 && (size_t)n < sizeof(dir) ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (dfd >= 0) {
        (void)fsync(dfd); /* the rename survives a crash */
        close(dfd);
    }
    return CLI_EXIT_OK;
}

/* The length of the user name of a "user:..." line, 0 for a comment, a blank line or no ':'. */
static size_t cli_passwd__line_user(const char *line, size_t len)
{
    if (len == 0 || line[0] == '#')
        return 0;
    const char *colon = memchr(line, ':', len);
    return colon == NULL ? 0 : (size_t)(colon - line);
}

/*
 * Rewrites the file at path line by line: the line of user (when user is not NULL) is
 * replaced by replacement (NULL: deleted; when there is none, replacement is appended);
 * with hash_plain, every "user:value" line whose value is not a hash is hashed. *found says
 * whether user had a line.
 */
static int cli_passwd__rewrite(const char *path, bool may_be_missing, const char *user,
                               const char *replacement, bool hash_plain, bool *found)
{
    char *text = NULL;
    size_t len = 0;
    int rc = cli_passwd__slurp(path, may_be_missing, &text, &len);
    if (rc != 0)
        return rc;
    size_t lines = 1;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    /* Room for every line to become a hashed one (-U), one appended line and newlines. */
    size_t cap = len + (lines + 1) * (CLI_PASSWD_LINE_MAX_BYTES + 1);
    size_t user_len = user != NULL ? strlen(user) : 0;
    char *out = malloc(cap);
    if (out == NULL) {
        free(text);
        return cli_passwd__fail(CLI_PASSWD_EXIT_IO, "out of memory");
    }
    size_t used = 0, lineno = 0;
    *found = false;
    for (size_t pos = 0; pos < len && rc == 0;) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t line_len = nl != NULL ? (size_t)(nl - line) : len - pos;
        size_t next = pos + line_len + (nl != NULL ? 1 : 0);
        lineno++;
        size_t body = line_len > 0 && line[line_len - 1] == '\r' ? line_len - 1 : line_len;
        size_t ul = cli_passwd__line_user(line, body);
        char hashed[CLI_PASSWD_LINE_MAX_BYTES];
        const char *emit = line;
        size_t emit_len = next - pos;
        if (user != NULL && ul == user_len && memcmp(line, user, ul) == 0) {
            *found = true;
            emit = replacement;
            emit_len = replacement != NULL ? strlen(replacement) : 0;
        } else if (hash_plain && ul > 0 &&
                   crypto_passwd_hash_valid(line + ul + 1, body - ul - 1) != LMQ_OK) {
            char user_buf[CRYPTO_PASSWD_USER_MAX_BYTES + 1];
            if (ul > CRYPTO_PASSWD_USER_MAX_BYTES ||
                !crypto_passwd_user_valid((const uint8_t *)line, ul)) {
                rc = cli_passwd__fail(CLI_EXIT_USAGE, "%s: line %zu: bad user name", path, lineno);
                break;
            }
            memcpy(user_buf, line, ul);
            user_buf[ul] = '\0';
            size_t pw_len = body - ul - 1;
            rc = cli_passwd__check_password(pw_len);
            if (rc == 0)
                rc = cli_passwd__line(user_buf, line + ul + 1, pw_len, hashed, sizeof(hashed));
            emit = hashed;
            emit_len = strlen(hashed);
        }
        if (rc == 0 && emit != NULL) {
            LMQ_ASSERT(used + emit_len <= cap);
            memcpy(out + used, emit, emit_len);
            used += emit_len;
            if (emit == line && nl == NULL && emit_len > 0) /* the last line had no newline */
                out[used++] = '\n';
        }
        pos = next;
    }
    if (rc == 0 && user != NULL && !*found && replacement != NULL) {
        size_t r = strlen(replacement);
        memcpy(out + used, replacement, r);
        used += r;
    }
    explicit_bzero(text, len);
    free(text);
    if (rc == 0 && (user == NULL || *found || replacement != NULL))
        rc = cli_passwd__replace(path, out, used);
    explicit_bzero(out, cap);
    free(out);
    return rc;
}

/* Reads the flags; fills mode, the file, the user and a -b password. */
struct cli_passwd_args {
    enum cli_passwd_mode mode;
    bool create, batch;
    const char *file, *user, *password;
};

static bool cli_passwd__is(const char *arg, const char *s, const char *l)
{
    return strcmp(arg, s) == 0 || strcmp(arg, l) == 0;
}

static int cli_passwd__args(int argc, char **argv, struct cli_passwd_args *a)
{
    const char *pos[3] = {NULL, NULL, NULL};
    int npos = 0;
    bool del = false, update = false;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (cli_passwd__is(arg, "-c", "--create")) {
            a->create = true;
        } else if (cli_passwd__is(arg, "-b", "--batch")) {
            a->batch = true;
        } else if (cli_passwd__is(arg, "-D", "--delete")) {
            del = true;
        } else if (cli_passwd__is(arg, "-U", "--update")) {
            update = true;
        } else if (strcmp(arg, "--file") == 0 && i + 1 < argc) {
            a->file = argv[++i];
            a->mode = CLI_PASSWD_APPEND;
        } else if (strncmp(arg, "--file=", 7) == 0 && arg[7] != '\0') {
            a->file = arg + 7;
            a->mode = CLI_PASSWD_APPEND;
        } else if (arg[0] == '-' && arg[1] != '\0') {
            return cli_passwd__fail(CLI_EXIT_USAGE,
                                    "unexpected argument \"%s\" (see ledgermq passwd --help)", arg);
        } else if (npos < 3) {
            pos[npos++] = arg;
        } else {
            return cli_passwd__fail(CLI_EXIT_USAGE,
                                    "unexpected argument \"%s\" (see ledgermq passwd --help)", arg);
        }
    }
    int modes = (a->file != NULL) + del + update + (a->create || a->batch);
    if (modes > 1)
        return cli_passwd__fail(CLI_EXIT_USAGE, "--file, -D, -U and -c/-b do not go together "
                                                "(see ledgermq passwd --help)");
    int want = 0;
    if (a->file != NULL) {
        want = 1;
        a->user = pos[0];
    } else if (del) {
        a->mode = CLI_PASSWD_DELETE;
        want = 2;
    } else if (update) {
        a->mode = CLI_PASSWD_UPDATE;
        want = 1;
        a->file = pos[0];
    } else if (a->batch) {
        a->mode = CLI_PASSWD_SET;
        want = 3;
        a->password = npos == 3 ? pos[2] : NULL;
    } else if (a->create || npos == 2) {
        a->mode = CLI_PASSWD_SET;
        want = 2;
    } else {
        a->mode = CLI_PASSWD_PRINT;
        want = 1;
        a->user = pos[0];
    }
    if (npos != want)
        return cli_passwd__fail(CLI_EXIT_USAGE, "expected %s (see ledgermq passwd --help)",
                                a->mode == CLI_PASSWD_UPDATE ? "FILE"
                                : a->batch                   ? "FILE USER PASSWORD"
                                : want == 2                  ? "FILE USER"
                                                             : "USER");
    if (want >= 2) {
        a->file = pos[0];
        a->user = pos[1];
    }
    if (a->user != NULL && !crypto_passwd_user_valid((const uint8_t *)a->user, strlen(a->user)))
        return cli_passwd__fail(CLI_EXIT_USAGE,
                                "bad user name \"%s\" (1..%d bytes, no ':', spaces or control "
                                "characters, not an identity id)",
                                a->user, CRYPTO_PASSWD_USER_MAX_BYTES);
    return 0;
}

int cli_passwd(int argc, char **argv)
{
    struct cli_passwd_args a = {.mode = CLI_PASSWD_PRINT};
    int rc = cli_passwd__args(argc, argv, &a);
    if (rc != 0)
        return rc;
    bool found = false;
    if (a.mode == CLI_PASSWD_DELETE) {
        rc = cli_passwd__rewrite(a.file, false, a.user, NULL, false, &found);
        if (rc == 0 && !found)
            return cli_passwd__fail(CLI_EXIT_USAGE, "%s is not in %s", a.user, a.file);
        return rc;
    }
    if (a.mode == CLI_PASSWD_UPDATE)
        return cli_passwd__rewrite(a.file, false, NULL, NULL, true, &found);
    char pw[CRYPTO_PASSWD_PASSWORD_MAX_BYTES + 3];
    size_t pw_len = 0;
    if (a.password != NULL) {
        pw_len = strlen(a.password);
        rc = cli_passwd__check_password(pw_len);
        if (rc == 0)
            memcpy(pw, a.password, pw_len + 1);
    } else {
        rc = cli_passwd__read_password(pw, sizeof(pw), &pw_len);
    }
    char line[CLI_PASSWD_LINE_MAX_BYTES];
    if (rc == 0)
        rc = cli_passwd__line(a.user, pw, pw_len, line, sizeof(line));
    explicit_bzero(pw, sizeof(pw));
    if (rc != 0)
        return rc;
    switch (a.mode) {
    case CLI_PASSWD_PRINT:
        fputs(line, stdout);
        return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_PASSWD_EXIT_IO;
    case CLI_PASSWD_APPEND:
        return cli_passwd__append(a.file, a.user, line);
    case CLI_PASSWD_SET:
        if (a.create)
            return cli_passwd__replace(a.file, line, strlen(line));
        return cli_passwd__rewrite(a.file, true, a.user, line, false, &found);
    case CLI_PASSWD_DELETE:
    case CLI_PASSWD_UPDATE:
        break;
    }
    LMQ_UNREACHABLE("every mode returned above");
}
