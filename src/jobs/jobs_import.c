/*
 * The import job (docs/ARCHITECTURE.md "Scheduled jobs"): reference data from a drop directory.
 * Each run reads the files of [jobs] import.dir, sorted by name: "*.jsonl" (one JSON object per
 * non-empty line) and "*.csv" (RFC 4180, a header row, each row an object of strings keyed by the
 * header). Each row is sent as a server-signed envelope of type "object" to [jobs] import.to, its
 * body the row (with "_t" = import.type when that is set and the row has no "_t"; a row with
 * "_t" is a typed object, validated like any). Nothing is charged to an identity.
 *
 * Exactly once per file line: the file's position, the consumer position
 * "import:<file name>:<sha256 hex of its content>" = the last line done, is written into the
 * SAME open commit batch as the line's envelope (pipeline_server_send appends into the open
 * batch), so both are durable together or neither is. A refused or malformed line is logged
 * (file:line, reason), counted and its position written alone. A run resumes each file after its
 * stored line. A file in which a run finds no line after its stored position (every line done,
 * and durable: the position was read from the store) is moved to import.dir/done/.
 *
 * Bounds: import.batch rows sent per step (one step per loop turn, so one commit batch),
 * JOBS_IMPORT_SKIP_MAX lines skipped per step when resuming, rows of at most
 * JOBS_IMPORT_LINE_MAX_BYTES, files of at most import.max_file_bytes (a larger one is logged and
 * left alone), JOBS_IMPORT_FILES_MAX files per run (the rest at the next run).
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "core/log.h"
#include "crypto/encoding.h"
#include "jobs/jobs_internal.h"
#include "pipeline/pipeline.h"

/* A row (a JSON line, or a CSV record with its quotes) is at most this long. */
#define JOBS_IMPORT_LINE_MAX_BYTES (64 * 1024)
/* Files one run looks at at most (sorted by name; the rest wait for the next run). */
#define JOBS_IMPORT_FILES_MAX 10000
/* Lines already done (before the stored position) one step reads past at most. */
#define JOBS_IMPORT_SKIP_MAX 100000
/* A file name (d_name) at most. */
#define JOBS_IMPORT_NAME_MAX 255
/* "import:" + name + ":" + 64 hex digits */
#define JOBS_IMPORT_CONSUMER_MAX (7 + JOBS_IMPORT_NAME_MAX + 1 + 64)
/* Wait before retrying a row the server's own envelope rate refused. */
#define JOBS_IMPORT_RATE_WAIT_MS 200

struct jobs_import_file {
    char name[JOBS_IMPORT_NAME_MAX + 1];
};

/* One run's state (the scheduler never runs a job twice at once). */
struct jobs_import {
    struct jobs_import_file *files;
    size_t file_count, next_file;
    /* The file being read. */
    FILE *in;
    bool csv;
    char name[JOBS_IMPORT_NAME_MAX + 1];
    char consumer[JOBS_IMPORT_CONSUMER_MAX + 1];
    uint64_t line;   /* physical lines read so far */
    uint64_t stored; /* the stored position when the file was opened */
    bool wrote;      /* this run wrote a position for the file */
    json_t *header;  /* CSV: the header's names */
    char *buf;       /* one row, JOBS_IMPORT_LINE_MAX_BYTES + 1 */
    uint64_t sent, refused, malformed, moved, skipped_files;
};

static struct jobs_import jobs_import_state;

static void jobs_import_close(struct jobs_import *x)
{
    if (x->in != NULL)
        fclose(x->in);
    x->in = NULL;
    json_decref(x->header);
    x->header = NULL;
}

static void jobs_import_reset(struct jobs_import *x)
{
    jobs_import_close(x);
    free(x->files);
    free(x->buf);
    *x = (struct jobs_import){0};
}

static int jobs_import_name_cmp(const void *a, const void *b)
{
    return strcmp(((const struct jobs_import_file *)a)->name,
                  ((const struct jobs_import_file *)b)->name);
}

static bool jobs_import_has_suffix(const char *name, const char *suffix)
{
    size_t n = strlen(name), s = strlen(suffix);
    return n > s && strcmp(name + n - s, suffix) == 0;
}

/* The regular files *.jsonl and *.csv of dir (not hidden), sorted by name. */
static int jobs_import_list(const char *dir, struct jobs_import *x)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return LMQ_EIO;
    x->files = calloc(JOBS_IMPORT_FILES_MAX, sizeof(*x->files));
    int rc = x->files != NULL ? LMQ_OK : LMQ_ENOMEM;
    struct dirent *e;
    while (rc == LMQ_OK && x->file_count < JOBS_IMPORT_FILES_MAX && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strlen(e->d_name) > JOBS_IMPORT_NAME_MAX ||
            !(jobs_import_has_suffix(e->d_name, ".jsonl") ||
              jobs_import_has_suffix(e->d_name, ".csv")))
            continue;
        char path[LMQ_PATH_MAX_BYTES + JOBS_IMPORT_NAME_MAX + 2];
        struct stat sb;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
            continue;
        snprintf(x->files[x->file_count++].name, JOBS_IMPORT_NAME_MAX + 1, "%s", e->d_name);
    }
    closedir(d);
    if (rc == LMQ_OK)
        qsort(x->files, x->file_count, sizeof(*x->files), jobs_import_name_cmp);
    return rc;
}

static int jobs_import_sha256(FILE *f, char hex[65])
{
    EVP_MD_CTX *sha = EVP_MD_CTX_new();
    uint8_t chunk[65536], digest[32];
    unsigned int len = 0;
    int rc = sha != NULL && EVP_DigestInit_ex(sha, EVP_sha256(), NULL) == 1 ? LMQ_OK : LMQ_ENOMEM;
    size_t n;
    while (rc == LMQ_OK && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        rc = EVP_DigestUpdate(sha, chunk, n) == 1 ? LMQ_OK : LMQ_ENOMEM;
    if (rc == LMQ_OK && ferror(f))
        rc = LMQ_EIO;
    if (rc == LMQ_OK)
        rc = EVP_DigestFinal_ex(sha, digest, &len) == 1 ? LMQ_OK : LMQ_ENOMEM;
    if (rc == LMQ_OK)
        rc = crypto_hex_encode(digest, len, hex, 65);
    EVP_MD_CTX_free(sha);
    if (rc == LMQ_OK && fseek(f, 0, SEEK_SET) != 0)
        rc = LMQ_EIO;
    return rc;
}

struct jobs_import_find {
    const char *consumer;
    uint64_t position;
};

static int jobs_import_position_row(void *ctx, struct lmq_bytes consumer, uint64_t position)
{
    struct jobs_import_find *f = ctx;
    if (consumer.len == strlen(f->consumer) &&
        memcmp(consumer.data, f->consumer, consumer.len) == 0)
        f->position = position;
    return 0;
}

static void jobs_import_log(const struct jobs_import *x, uint64_t line, const char *event,
                            const char *reason, const char *detail)
{
    struct lmq_log_line l;
    if (lmq_log_begin(&l, LMQ_LOG_WARN, event)) {
        lmq_log_str(&l, "file", x->name);
        if (line > 0)
            lmq_log_uint(&l, "line", line);
        lmq_log_str(&l, "reason", reason);
        if (detail != NULL)
            lmq_log_str(&l, "detail", detail);
        lmq_log_end(&l);
    }
}

/* Opens files[next_file]: its hash, its stored position. LMQ_OK, or LMQ_EAGAIN: skipped (too
 * large or unreadable, logged). */
static int jobs_import_open(struct broker *b, struct jobs_import *x)
{
    const char *dir = b->cfg.jobs.import_dir;
    snprintf(x->name, sizeof(x->name), "%s", x->files[x->next_file++].name);
    char path[LMQ_PATH_MAX_BYTES + JOBS_IMPORT_NAME_MAX + 2], hex[65];
    snprintf(path, sizeof(path), "%s/%s", dir, x->name);
    struct stat sb;
    x->in = fopen(path, "rb");
    if (x->in == NULL || fstat(fileno(x->in), &sb) != 0 || jobs_import_sha256(x->in, hex) != 0) {
        jobs_import_log(x, 0, "import_file_skipped", "unreadable", strerror(errno));
        jobs_import_close(x);
        x->skipped_files++;
        return LMQ_EAGAIN;
    }
    if ((uint64_t)sb.st_size > b->cfg.jobs.import_max_file_bytes) {
        jobs_import_log(x, 0, "import_file_skipped", "too_large",
                        "larger than import.max_file_bytes");
        jobs_import_close(x);
        x->skipped_files++;
        return LMQ_EAGAIN;
    }
    snprintf(x->consumer, sizeof(x->consumer), "import:%s:%s", x->name, hex);
    struct jobs_import_find f = {.consumer = x->consumer};
    if (store_consumer_positions(b->store, jobs_import_position_row, &f) != LMQ_OK) {
        jobs_import_close(x);
        return LMQ_EIO;
    }
    x->csv = jobs_import_has_suffix(x->name, ".csv");
    x->line = 0;
    x->stored = f.position;
    x->wrote = false;
    return LMQ_OK;
}

/* Moves the file to dir/done/ (a name taken there gets the file's hash appended). */
static void jobs_import_move_done(struct broker *b, struct jobs_import *x)
{
    const char *dir = b->cfg.jobs.import_dir;
    char from[LMQ_PATH_MAX_BYTES + JOBS_IMPORT_NAME_MAX + 2];
    char to[LMQ_PATH_MAX_BYTES + JOBS_IMPORT_CONSUMER_MAX + 8];
    struct stat sb;
    snprintf(from, sizeof(from), "%s/done", dir);
    if (mkdir(from, 0755) != 0 && errno != EEXIST) {
        jobs_import_log(x, 0, "import_file_not_moved", "cannot create done/", strerror(errno));
        return;
    }
    snprintf(from, sizeof(from), "%s/%s", dir, x->name);
    snprintf(to, sizeof(to), "%s/done/%s", dir, x->name);
    if (stat(to, &sb) == 0)
        snprintf(to, sizeof(to), "%s/done/%s.%s", dir, x->name,
                 x->consumer + strlen(x->consumer) - 64);
    if (rename(from, to) != 0) {
        jobs_import_log(x, 0, "import_file_not_moved", "rename failed", strerror(errno));
        return;
    }
    x->moved++;
}

/* Reads the next row into x->buf: a line (JSON lines) or a record (CSV: quotes may hold commas
 * and line breaks). 1: a row, its lines first..x->line; 0: end of file. *too_long: the row
 * passed JOBS_IMPORT_LINE_MAX_BYTES (read to its end, not kept). */
static int jobs_import_read(struct jobs_import *x, size_t *len, uint64_t *first, bool *too_long)
{
    *len = 0;
    *too_long = false;
    *first = x->line + 1;
    bool quoted = false, any = false;
    int c;
    while ((c = getc(x->in)) != EOF) {
        any = true;
        if (c == '"' && x->csv)
            quoted = !quoted; /* "" inside quotes toggles twice: the parser sees both */
        if (c == '\n') {
            x->line++;
            if (!quoted)
                break;
        }
        if (*len < JOBS_IMPORT_LINE_MAX_BYTES)
            x->buf[(*len)++] = (char)c;
        else
            *too_long = true;
    }
    if (!any)
        return 0;
    if (c == EOF)
        x->line++; /* the last line has no line break */
    if (*len > 0 && x->buf[*len - 1] == '\r')
        (*len)--;
    x->buf[*len] = '\0';
    return 1;
}

/* A CSV record (RFC 4180) as a JSON array of strings; NULL with *why when malformed. */
static json_t *jobs_import_csv_fields(const char *s, size_t len, const char **why)
{
    json_t *out = json_array();
    char *field = malloc(len + 1);
    size_t i = 0;
    *why = NULL;
    while (out != NULL && field != NULL && *why == NULL) {
        size_t n = 0;
        if (i < len && s[i] == '"') {
            for (i++;; i++) {
                if (i >= len) {
                    *why = "unterminated quoted field";
                    break;
                }
                if (s[i] == '"' && i + 1 < len && s[i + 1] == '"')
                    field[n++] = s[i++];
                else if (s[i] == '"')
                    break;
                else
                    field[n++] = s[i];
            }
            if (*why == NULL && ++i < len && s[i] != ',')
                *why = "text after a closing quote";
        } else {
            for (; i < len && s[i] != ','; i++) {
                if (s[i] == '"')
                    *why = "quote inside an unquoted field";
                field[n++] = s[i];
            }
        }
        json_t *v = *why == NULL ? json_stringn(field, n) : NULL;
        if (*why == NULL && (v == NULL || json_array_append_new(out, v) != 0))
            *why = "not UTF-8";
        if (i >= len)
            break;
        i++; /* the comma */
    }
    free(field);
    if (*why != NULL || out == NULL) {
        json_decref(out);
        return NULL;
    }
    return out;
}

/* The row in x->buf as an object; NULL with *why. */
static json_t *jobs_import_row(struct jobs_import *x, size_t len, const char **why)
{
    if (!x->csv) {
        json_error_t jerr;
        json_t *row = json_loadb(x->buf, len, JSON_REJECT_DUPLICATES, &jerr);
        *why = row == NULL ? "not JSON" : !json_is_object(row) ? "not a JSON object" : NULL;
        if (*why != NULL)
            json_decref(row);
        return *why == NULL ? row : NULL;
    }
    json_t *fields = jobs_import_csv_fields(x->buf, len, why);
    if (fields == NULL)
        return NULL;
    json_t *row = json_object();
    if (json_array_size(fields) != json_array_size(x->header))
        *why = "not as many fields as the header";
    for (size_t i = 0; *why == NULL && row != NULL && i < json_array_size(fields); i++) {
        if (json_object_set(row, json_string_value(json_array_get(x->header, i)),
                            json_array_get(fields, i)) != 0)
            *why = "out of memory";
    }
    json_decref(fields);
    if (*why != NULL || row == NULL) {
        json_decref(row);
        *why = *why != NULL ? *why : "out of memory";
        return NULL;
    }
    return row;
}

static void jobs_import_position(struct broker *b, struct jobs_import *x)
{
    struct store_record rec = {.type = STORE_CONSUMER_POSITION};
    rec.u.consumer_position = (struct store_rec_consumer_position){
        .consumer = {(const uint8_t *)x->consumer, strlen(x->consumer)}, .position = x->line};
    commit_store_write(b, &rec); /* into the open batch: with the line's envelope, if any */
    x->wrote = true;
}

/* Sends one row. JOBS_STEP_DONE: done (sent, refused or malformed: the position is written),
 * JOBS_STEP_MORE: the server's rate refused it (not done: read again later), or LMQ_ENOMEM. */
static int jobs_import_send(struct broker *b, struct jobs_import *x, json_t *row, uint64_t first)
{
    const struct lmq_jobs_config *cfg = &b->cfg.jobs;
    const char *why = NULL;
    if (json_object_get(row, "_on_behalf_of") != NULL || json_object_get(row, "_deleted") != NULL)
        why = "reserved_member: _on_behalf_of and _deleted are the server's";
    else if (cfg->import_type[0] != '\0' && json_object_get(row, "_t") == NULL &&
             json_object_set_new(row, "_t", json_string(cfg->import_type)) != 0)
        return LMQ_ENOMEM;
    if (why != NULL) {
        jobs_import_log(x, first, "import_row_refused", why, NULL);
        x->refused++;
        jobs_import_position(b, x);
        return JOBS_STEP_DONE;
    }
    struct pipeline_server_envelope e = {
        .to = cfg->import_to, .type = "object", .body = row, .charged_to = NULL};
    struct pipeline_refusal refusal = {0};
    int rc = pipeline_server_send(b, &e, &refusal, NULL);
    if (rc == LMQ_EPROTO) {
        bool rate = strcmp(refusal.reason, "rate_limited") == 0;
        if (!rate) {
            char *members = refusal.members != NULL
                                ? json_dumps(refusal.members, JSON_COMPACT | JSON_SORT_KEYS)
                                : NULL;
            jobs_import_log(x, first, "import_row_refused", refusal.reason,
                            members != NULL ? members : refusal.detail);
            free(members);
            x->refused++;
            jobs_import_position(b, x);
        }
        json_decref(refusal.members);
        return rate ? JOBS_STEP_MORE : JOBS_STEP_DONE;
    }
    if (rc != LMQ_OK)
        return rc;
    x->sent++;
    jobs_import_position(b, x); /* the same open batch as the envelope just appended */
    return JOBS_STEP_DONE;
}

/* The CSV header (the file's first record): 1, 0 (empty file) or -1 (malformed: logged). */
static int jobs_import_header(struct jobs_import *x)
{
    size_t len = 0;
    uint64_t first = 0;
    bool too_long = false;
    const char *why = "header too long";
    if (jobs_import_read(x, &len, &first, &too_long) == 0)
        return 0;
    if (!too_long)
        x->header = jobs_import_csv_fields(x->buf, len, &why);
    for (size_t i = 0; x->header != NULL && why == NULL && i < json_array_size(x->header); i++) {
        const char *name = json_string_value(json_array_get(x->header, i));
        for (size_t k = 0; k < i; k++)
            if (strcmp(name, json_string_value(json_array_get(x->header, k))) == 0)
                why = "duplicate name in the header";
    }
    if (why != NULL) {
        jobs_import_log(x, 1, "import_file_skipped", why, NULL);
        x->skipped_files++;
        return -1;
    }
    return 1;
}

/* The first step: the file list. */
static int jobs_import_begin(struct jobs_step *st, struct jobs_import *x)
{
    const struct lmq_jobs_config *cfg = &st->broker->cfg.jobs;
    jobs_import_reset(x); /* a run cut short (timeout) left its state */
    if (cfg->import_dir[0] == '\0' || cfg->import_to[0] == '\0') {
        snprintf(st->detail, sizeof(st->detail), "[jobs] import.dir and import.to must be set");
        return LMQ_EINVAL;
    }
    x->buf = malloc(JOBS_IMPORT_LINE_MAX_BYTES + 1);
    int rc = x->buf != NULL ? jobs_import_list(cfg->import_dir, x) : LMQ_ENOMEM;
    if (rc != LMQ_OK) {
        snprintf(st->detail, sizeof(st->detail), "cannot read import.dir %.120s", cfg->import_dir);
        jobs_import_reset(x);
        return rc;
    }
    st->cursor = 1;
    return JOBS_STEP_MORE;
}

/* One row of the open file: 1 (a row handled or skipped), 0 (end of file), JOBS_STEP_MORE + 1
 * (rate limited: read again later) or a negative error. *sent: it wrote a position. */
static int jobs_import_one(struct broker *b, struct jobs_import *x, bool *sent)
{
    *sent = false;
    long at = ftell(x->in);
    uint64_t line_before = x->line, first = 0;
    size_t len = 0;
    bool too_long = false;
    if (jobs_import_read(x, &len, &first, &too_long) == 0)
        return 0;
    size_t blank = strspn(x->buf, " \t\r\n");
    if (x->line <= x->stored || (!too_long && blank == len && (!x->csv || len == 0)))
        return 1; /* done before, or an empty line */
    *sent = true;
    const char *why = too_long ? "line longer than 64 KiB" : NULL;
    json_t *row = why == NULL ? jobs_import_row(x, len, &why) : NULL;
    if (row == NULL) {
        jobs_import_log(x, first, "import_row_malformed", why, NULL);
        x->malformed++;
        jobs_import_position(b, x);
        return 1;
    }
    int rc = jobs_import_send(b, x, row, first);
    json_decref(row);
    if (rc == JOBS_STEP_MORE) {
        *sent = false;
        x->line = line_before;
        return at >= 0 && fseek(x->in, at, SEEK_SET) == 0 ? JOBS_STEP_MORE + 1 : LMQ_EIO;
    }
    return rc == JOBS_STEP_DONE ? 1 : rc;
}

/* The end of the open file: moved to done/ when this run found nothing left in it. */
static void jobs_import_file_end(struct broker *b, struct jobs_import *x)
{
    if (!x->wrote)
        jobs_import_move_done(b, x);
    jobs_import_close(x);
}

int jobs_import_step(struct jobs_step *st)
{
    struct jobs_import *x = &jobs_import_state;
    struct broker *b = st->broker;
    if (st->cursor == 0)
        return jobs_import_begin(st, x);
    uint32_t sent = 0, skipped = 0;
    int rc = LMQ_OK;
    while (rc >= 0 && sent < b->cfg.jobs.import_batch && skipped < JOBS_IMPORT_SKIP_MAX) {
        if (x->in == NULL) {
            if (x->next_file == x->file_count)
                break;
            rc = jobs_import_open(b, x);
            if (rc == LMQ_EAGAIN) {
                rc = LMQ_OK;
                continue;
            }
            int h = rc == LMQ_OK && x->csv ? jobs_import_header(x) : 1;
            if (h <= 0)
                h == 0 ? jobs_import_file_end(b, x) : jobs_import_close(x);
            continue;
        }
        bool wrote = false;
        rc = jobs_import_one(b, x, &wrote);
        if (rc == 0)
            jobs_import_file_end(b, x);
        else if (rc == JOBS_STEP_MORE + 1) {
            st->delay_ms = JOBS_IMPORT_RATE_WAIT_MS;
            st->count = x->sent;
            return JOBS_STEP_MORE;
        }
        sent += wrote ? 1u : 0u;
        skipped += wrote ? 0u : 1u;
    }
    st->count = x->sent;
    if (rc < 0) {
        snprintf(st->detail, sizeof(st->detail), "cannot import %.100s: %s", x->name,
                 rc == LMQ_ENOMEM ? "out of memory" : "read failed");
        jobs_import_reset(x);
        return rc;
    }
    if (x->in != NULL || x->next_file < x->file_count) {
        /* Not 0: libuv runs a timer re-armed for 0 ms within the same timers phase, so the
         * whole run would go into one batch; 1 ms puts each step on its own loop turn, whose
         * end commits the step's batch. */
        st->delay_ms = 1;
        return JOBS_STEP_MORE;
    }
    snprintf(st->detail, sizeof(st->detail),
             "%zu files: sent %" PRIu64 ", refused %" PRIu64 ", malformed %" PRIu64
             ", moved to done %" PRIu64 ", skipped files %" PRIu64,
             x->file_count, x->sent, x->refused, x->malformed, x->moved, x->skipped_files);
    jobs_import_reset(x);
    return JOBS_STEP_DONE;
}
