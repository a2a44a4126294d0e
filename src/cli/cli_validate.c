/*
 * ledgermq validate --schema FILE [--draft 2020-12|7] [--assert-formats] [--jsonl] [FILE...]:
 * checks JSON documents against a JSON Schema offline (src/schema); or --models DIR --type T:
 * against model T of a models directory loaded as serve loads it, each document an object's
 * body (its _t/_prevlink/_permalink/_deleted dropped first, as the server does). The schema is
 * compiled once; each instance gets one JSON line on stdout, in input order:
 *   {"file":"a.json","valid":true}
 *   {"file":"-","line":3,"valid":false,"errors":[{"instance":..,"schema":..,"keyword":..,
 *    "message":..}]}
 *   {"file":"-","line":4,"error":"not JSON: ..."}
 * Exit 0 all valid, 3 at least one invalid, 1 usage or unusable input (1 wins over 3).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/buf.h"
#include "core/lmq.h"
#include "data/data.h"
#include "schema/schema.h"

/* One schema or instance document (file or JSON line): larger is refused, not read. */
#define CLI_VALIDATE_DOC_MAX_BYTES (64u * 1024u * 1024u)
#define CLI_VALIDATE_ERR_MAX_BYTES 1024u

struct cli_validate {
    struct schema *schema;      /* --schema: compiled here */
    struct data_models *models; /* --models: the set the schema comes from */
    bool object_body;           /* --models: the server's reserved members are dropped first */
    struct schema_validator *v;
    struct schema_result result;
    bool jsonl;
    bool any_invalid;
    bool any_unusable;
};

static int cli_validate__usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "ledgermq: validate: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see ledgermq validate --help)\n");
    return CLI_EXIT_USAGE;
}

/* Prints obj as one line and frees it. */
static void cli_validate__emit(json_t *obj)
{
    char *text = obj != NULL ? json_dumps(obj, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    if (text == NULL) {
        fprintf(stderr, "ledgermq: validate: out of memory\n");
        exit(CLI_EXIT_USAGE);
    }
    fputs(text, stdout);
    fputc('\n', stdout);
    free(text);
    json_decref(obj);
}

static json_t *cli_validate__head(const char *file, size_t line)
{
    json_t *o = json_object();
    if (o != NULL) {
        json_object_set_new(o, "file", json_string(file));
        if (line > 0) {
            json_object_set_new(o, "line", json_integer((json_int_t)line));
        }
    }
    return o;
}

/* One instance (text of len bytes) from file (line 0: the whole file). */
static void cli_validate__one(struct cli_validate *c, const char *file, size_t line,
                              const char *text, size_t len)
{
    json_t *out = cli_validate__head(file, line);
    json_error_t jerr;
    json_t *inst = schema_json_loadb(text, len, &jerr);
    if (inst == NULL) {
        char msg[CLI_VALIDATE_ERR_MAX_BYTES];
        lmq_errf(msg, sizeof(msg), "not JSON: %s (column %d)", jerr.text, jerr.column);
        json_object_set_new(out, "error", json_string(msg));
        c->any_unusable = true;
        cli_validate__emit(out);
        return;
    }
    for (size_t i = 0; c->object_body && i < LMQ_ARRAY_LEN(data_reserved_members); i++) {
        json_object_del(inst, data_reserved_members[i]);
    }
    struct schema_result *r = &c->result;
    int rc = schema_validate(c->v, inst, r);
    json_object_set_new(out, "valid", json_boolean(rc == 0 && r->valid));
    if (rc != 0 || !r->valid) {
        c->any_invalid = true;
        json_t *errors = json_array();
        for (size_t i = 0; i < r->error_count; i++) {
            const struct schema_error *e = &r->errors[i];
            json_t *eo = json_object();
            json_object_set_new(eo, "instance", json_string(e->instance));
            json_object_set_new(eo, "schema", json_string(e->schema));
            json_object_set_new(eo, "keyword", json_string(e->keyword));
            json_object_set_new(eo, "message", json_string(e->message));
            json_array_append_new(errors, eo);
        }
        json_object_set_new(out, "errors", errors);
    }
    json_decref(inst);
    cli_validate__emit(out);
}

/* Every non-empty line of f is an instance. A line over the bound is an unusable instance. */
static void cli_validate__lines(struct cli_validate *c, const char *name, FILE *f)
{
    struct lmq_buf b = {0};
    size_t line = 0;
    bool too_long = false;
    int ch;
    /* One round per byte of input; the buffer is bounded by CLI_VALIDATE_DOC_MAX_BYTES. */
    do {
        ch = getc_unlocked(f);
        if (ch != '\n' && ch != EOF) {
            char byte = (char)ch;
            if (!too_long && lmq_buf_append(&b, &byte, 1, CLI_VALIDATE_DOC_MAX_BYTES) != 0) {
                too_long = true;
            }
            continue;
        }
        if (ch == EOF && b.len == 0 && !too_long) {
            break;
        }
        line++;
        size_t start = 0;
        while (start < b.len &&
               (b.data[start] == ' ' || b.data[start] == '\t' || b.data[start] == '\r')) {
            start++;
        }
        if (too_long) {
            json_t *out = cli_validate__head(name, line);
            json_object_set_new(out, "error", json_string("line longer than 64 MiB"));
            c->any_unusable = true;
            cli_validate__emit(out);
        } else if (start < b.len) {
            cli_validate__one(c, name, line, (const char *)b.data, b.len);
        }
        b.len = 0;
        too_long = false;
    } while (ch != EOF);
    if (ferror(f)) {
        fprintf(stderr, "ledgermq: validate: %s: read error\n", name);
        c->any_unusable = true;
    }
    lmq_buf_release(&b);
}

/* The whole of f (stdin) into a buffer. */
static int cli_validate__slurp(FILE *f, struct lmq_buf *b)
{
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        int rc = lmq_buf_append(b, chunk, n, CLI_VALIDATE_DOC_MAX_BYTES);
        if (rc != 0) {
            return rc;
        }
    }
    return ferror(f) ? LMQ_EIO : 0;
}

static void cli_validate__input(struct cli_validate *c, const char *path)
{
    bool is_stdin = path == NULL;
    const char *name = is_stdin ? "-" : path;
    if (c->jsonl) {
        FILE *f = is_stdin ? stdin : fopen(path, "r");
        if (f == NULL) {
            fprintf(stderr, "ledgermq: validate: %s: %s\n", path, strerror(errno));
            c->any_unusable = true;
            return;
        }
        cli_validate__lines(c, name, f);
        if (!is_stdin) {
            fclose(f);
        }
        return;
    }
    char err[CLI_VALIDATE_ERR_MAX_BYTES];
    char *text = NULL;
    size_t len = 0;
    struct lmq_buf b = {0};
    int rc = 0;
    if (is_stdin) {
        rc = cli_validate__slurp(stdin, &b);
        lmq_errf(err, sizeof(err), "-: %s", lmq_strerror(rc));
    } else {
        rc = lmq_file_read(path, CLI_VALIDATE_DOC_MAX_BYTES, &text, &len, err, sizeof(err));
    }
    if (rc != 0) {
        fprintf(stderr, "ledgermq: validate: %s\n", err);
        c->any_unusable = true;
    } else {
        cli_validate__one(c, name, 0, is_stdin ? (const char *)b.data : text,
                          is_stdin ? b.len : len);
    }
    free(text);
    lmq_buf_release(&b);
}

static int cli_validate__compile(struct cli_validate *c, const char *path,
                                 const struct schema_options *opt)
{
    char err[CLI_VALIDATE_ERR_MAX_BYTES];
    char *text = NULL;
    size_t len = 0;
    if (lmq_file_read(path, CLI_VALIDATE_DOC_MAX_BYTES, &text, &len, err, sizeof(err)) != 0) {
        fprintf(stderr, "ledgermq: validate: %s\n", err);
        return CLI_EXIT_USAGE;
    }
    json_error_t jerr;
    json_t *doc = schema_json_loadb(text, len, &jerr);
    free(text);
    if (doc == NULL) {
        fprintf(stderr, "ledgermq: validate: %s: not JSON: %s (line %d)\n", path, jerr.text,
                jerr.line);
        return CLI_EXIT_USAGE;
    }
    int rc = schema_compile(NULL, doc, NULL, opt, &c->schema, err, sizeof(err));
    json_decref(doc);
    if (rc == 0) {
        rc = schema_validator_new(c->schema, &c->v);
        lmq_errf(err, sizeof(err), "%s", lmq_strerror(rc));
    }
    if (rc != 0) {
        fprintf(stderr, "ledgermq: validate: %s: %s\n", path, err);
        return CLI_EXIT_USAGE;
    }
    return 0;
}

/* --models DIR --type T: T's schema from the directory, loaded as serve loads it. */
static int cli_validate__model(struct cli_validate *c, const char *dir, const char *type,
                               const struct schema_options *opt)
{
    char err[CLI_VALIDATE_ERR_MAX_BYTES];
    int rc = data_models_load(dir, opt->assert_formats, &c->models, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "ledgermq: validate: --models: %s\n",
                rc == LMQ_ENOMEM ? "out of memory" : err);
        return CLI_EXIT_USAGE;
    }
    const struct schema *s = data_models_schema(c->models, type);
    if (s == NULL) {
        data_models_names(c->models, err, sizeof(err));
        fprintf(stderr, "ledgermq: validate: --type %s: no such model in %s (models: %s)\n", type,
                dir, err[0] != '\0' ? err : "none");
        return CLI_EXIT_USAGE;
    }
    c->object_body = true;
    if (schema_validator_new(s, &c->v) != 0) {
        fprintf(stderr, "ledgermq: validate: out of memory\n");
        return CLI_EXIT_USAGE;
    }
    return 0;
}

int cli_validate(int argc, char **argv)
{
    const char *schema_path = NULL, *models_dir = NULL, *type = NULL;
    struct schema_options opt = {0};
    struct cli_validate c = {0};
    /* Positional arguments (instance files) keep their order; flags may come anywhere. */
    char **files = calloc((size_t)argc + 1, sizeof(*files));
    size_t file_count = 0;
    bool only_files = false;
    if (files == NULL) {
        return cli_validate__usage("%s", "out of memory");
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (only_files || a[0] != '-' || a[1] == '\0') {
            files[file_count++] = argv[i];
        } else if (strcmp(a, "--schema") == 0 && i + 1 < argc) {
            schema_path = argv[++i];
        } else if (strncmp(a, "--schema=", 9) == 0) {
            schema_path = a + 9;
        } else if ((strcmp(a, "--draft") == 0 && i + 1 < argc) || strncmp(a, "--draft=", 8) == 0) {
            const char *d = a[7] == '=' ? a + 8 : argv[++i];
            if (strcmp(d, "2020-12") == 0) {
                opt.draft = SCHEMA_DRAFT_2020_12;
            } else if (strcmp(d, "7") == 0) {
                opt.draft = SCHEMA_DRAFT_7;
            } else {
                free(files);
                return cli_validate__usage("--draft: expected 2020-12 or 7, got \"%s\"", d);
            }
        } else if (strcmp(a, "--models") == 0 && i + 1 < argc) {
            models_dir = argv[++i];
        } else if (strncmp(a, "--models=", 9) == 0) {
            models_dir = a + 9;
        } else if (strcmp(a, "--type") == 0 && i + 1 < argc) {
            type = argv[++i];
        } else if (strncmp(a, "--type=", 7) == 0) {
            type = a + 7;
        } else if (strcmp(a, "--assert-formats") == 0) {
            opt.assert_formats = true;
        } else if (strcmp(a, "--jsonl") == 0) {
            c.jsonl = true;
        } else if (strcmp(a, "--") == 0) {
            only_files = true;
        } else {
            free(files);
            return cli_validate__usage("unexpected argument \"%s\"", a);
        }
    }
    if ((schema_path == NULL) == (models_dir == NULL) || (models_dir == NULL) != (type == NULL)) {
        free(files);
        return cli_validate__usage("%s", "expected --schema FILE, or --models DIR --type T");
    }
    int rc = schema_path != NULL ? cli_validate__compile(&c, schema_path, &opt)
                                 : cli_validate__model(&c, models_dir, type, &opt);
    if (rc == 0) {
        if (file_count == 0) {
            cli_validate__input(&c, NULL);
        }
        for (size_t i = 0; i < file_count; i++) {
            cli_validate__input(&c, strcmp(files[i], "-") == 0 ? NULL : files[i]);
        }
        fflush(stdout);
        rc = c.any_unusable ? CLI_EXIT_USAGE : c.any_invalid ? CLI_EXIT_REJECTED : CLI_EXIT_OK;
    }
    schema_validator_free(c.v);
    schema_free(c.schema);
    data_models_free(c.models);
    free(files);
    return rc;
}
