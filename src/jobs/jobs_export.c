/*
 * The export job (docs/ARCHITECTURE.md "Scheduled jobs"): the data-lake feed. Each run appends
 * the ledger entries committed since the last export to a new file in [jobs] export.dir, as JSON
 * lines, at most export.max_rows per run:
 *
 *   ledger-<first>-<last>.jsonl          one line per entry, in index order:
 *       {"envelope":{...},"from":..,"index":I,"link":..,"object":{...}|null,"position":P,
 *        "seq":S,"time_ms":T,"to":..}
 *       ("object": the typed-object version the envelope stored, as GET /api/v1 shows it)
 *   ledger-<first>-<last>.manifest.json  {"checkpoint":"<signed note>","count":N,"first":..,
 *       "format":1,"last":..,"sha256":"<hex of the .jsonl>","tree_size":S}
 *
 * (indexes zero-padded to 20 digits). With [jobs] export.gzip = true the lines go into
 * ledger-<first>-<last>.jsonl.gz instead (one gzip member, zlib, no name and no time in its
 * header, so the same lines give the same bytes), and the manifest adds "compression":"gzip";
 * its sha256 is then the .jsonl.gz file's (the bytes named by the manifest, either way). The
 * checkpoint is the latest signed one when the run
 * started, covering every exported entry (tree_size > last), so a consumer can check the file
 * with `ledgermq verify` and the proofs API. Resumable: the files are the state. A run starts
 * after the highest "last" of the manifests in the directory; the .jsonl is written to a
 * temporary name, fsynced, renamed, then the manifest the same way, so a manifest exists only
 * for a complete, durable file; a run cut short leaves at most a temporary file, overwritten by
 * the next run, which exports the same range again.
 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <zlib.h>

#include "crypto/encoding.h"
#include "data/data.h"
#include "jobs/jobs_internal.h"
#include "pipeline/pipeline.h"

/* Ledger entries read and written per step. */
#define JOBS_EXPORT_STEP_ROWS 500
/* "ledger-" + 20 digits + "-" + 20 digits + ".manifest.json" */
#define JOBS_EXPORT_NAME_MAX 80
/* Compressed bytes produced per deflate call at most (then written and hashed). */
#define JOBS_EXPORT_ZBUF_BYTES 16384
/* zlib's windowBits for a gzip wrapper (15 + 16) and its default memLevel. */
#define JOBS_EXPORT_GZIP_WBITS 31
#define JOBS_EXPORT_GZIP_MEMLEVEL 8

/* One run's state (the scheduler never runs a job twice at once). */
struct jobs_export {
    FILE *out;
    EVP_MD_CTX *sha; /* over the bytes written to out (compressed ones with gzip) */
    bool gzip;
    bool z_init;
    z_stream z;
    uint64_t first, end; /* exporting [first, end) */
    char checkpoint_note[1024];
    uint64_t tree_size;
    char tmp[LMQ_PATH_MAX_BYTES + JOBS_EXPORT_NAME_MAX];
};

static struct jobs_export jobs_export_state;

static void jobs_export_reset(struct jobs_export *x)
{
    if (x->out != NULL)
        fclose(x->out);
    if (x->z_init)
        deflateEnd(&x->z);
    EVP_MD_CTX_free(x->sha);
    if (x->tmp[0] != '\0')
        unlink(x->tmp);
    *x = (struct jobs_export){0};
}

/* The next index to export: one past the highest "last" of the manifests in dir (0: none). */
static int jobs_export_next(const char *dir, uint64_t *next)
{
    *next = 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        return LMQ_EIO;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        unsigned long long first = 0, last = 0;
        char tail[32];
        if (sscanf(e->d_name, "ledger-%20llu-%20llu.%31s", &first, &last, tail) == 3 &&
            strcmp(tail, "manifest.json") == 0 && last + 1 > *next)
            *next = last + 1;
    }
    closedir(d);
    return LMQ_OK;
}

static int jobs_export_fsync_close(FILE *f)
{
    int rc = fflush(f) == 0 && fsync(fileno(f)) == 0 ? LMQ_OK : LMQ_EIO;
    return fclose(f) == 0 ? rc : LMQ_EIO;
}

static int jobs_export_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return LMQ_EIO;
    int rc = fsync(fd) == 0 ? LMQ_OK : LMQ_EIO;
    close(fd);
    return rc;
}

/* Writes len bytes to the file and the hash, as they are or through deflate (flush: Z_FINISH at
 * the end, else Z_NO_FLUSH). false: a write or zlib failed. */
static bool jobs_export_write(struct jobs_export *x, const void *data, size_t len, int flush)
{
    LMQ_ASSERT(x->out != NULL && x->sha != NULL);
    if (!x->gzip) {
        LMQ_ASSERT(flush == Z_NO_FLUSH);
        return fwrite(data, 1, len, x->out) == len && EVP_DigestUpdate(x->sha, data, len) == 1;
    }
    LMQ_ASSERT(x->z_init && len <= UINT_MAX);
    uint8_t buf[JOBS_EXPORT_ZBUF_BYTES];
    x->z.next_in = (Bytef *)(uintptr_t)data; /* zlib does not write through next_in */
    x->z.avail_in = (uInt)len;
    /* Each call fills at most buf; the input and the pending output shrink every turn, so the
     * loop ends: deflate needs about len / 1000 + 1 more turns than len / buf at worst. */
    size_t turns_max = len / 64 + 64;
    for (size_t turn = 0; turn < turns_max; turn++) {
        x->z.next_out = buf;
        x->z.avail_out = sizeof(buf);
        int zrc = deflate(&x->z, flush);
        if (zrc == Z_STREAM_ERROR)
            return false;
        size_t n = sizeof(buf) - x->z.avail_out;
        if (n > 0 && (fwrite(buf, 1, n, x->out) != n || EVP_DigestUpdate(x->sha, buf, n) != 1))
            return false;
        if (flush == Z_FINISH ? zrc == Z_STREAM_END : x->z.avail_in == 0 && x->z.avail_out > 0)
            return true;
    }
    return false;
}

struct jobs_export_rows {
    struct broker *b;
    struct jobs_export *x;
    uint64_t last;
    bool failed;
};

static int jobs_export_row(void *ctx, const struct store_ledger_row *r)
{
    struct jobs_export_rows *w = ctx;
    json_error_t jerr;
    json_t *env = json_loadb((const char *)r->envelope.data, r->envelope.len, 0, &jerr);
    char link[65];
    snprintf(link, sizeof(link), "%.*s", (int)r->link.len, (const char *)r->link.data);
    char *object = NULL;
    json_t *obj = NULL;
    if (data_version_json(w->b, link, &object) == LMQ_OK) {
        obj = json_loads(object, 0, &jerr);
        free(object);
    }
    json_t *line =
        json_pack("{s:o,s:s#,s:I,s:s,s:o,s:I,s:I,s:I,s:s#}", "envelope",
                  env != NULL ? env : json_null(), "from", (const char *)r->sender.data,
                  (int)r->sender.len, "index", (json_int_t)r->index, "link", link, "object",
                  obj != NULL ? obj : json_null(), "position", (json_int_t)r->position, "seq",
                  (json_int_t)r->seq, "time_ms", (json_int_t)r->created_unix_ms, "to",
                  (const char *)r->recipient.data, (int)r->recipient.len);
    char *text = line != NULL ? json_dumps(line, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(line);
    size_t n = text != NULL ? strlen(text) : 0;
    bool ok = text != NULL && jobs_export_write(w->x, text, n, Z_NO_FLUSH) &&
              jobs_export_write(w->x, "\n", 1, Z_NO_FLUSH);
    free(text);
    if (!ok) {
        w->failed = true;
        return -1;
    }
    w->last = r->index;
    return 0;
}

/* The first step: where to start, where to stop, the temporary file. */
static int jobs_export_begin(struct jobs_step *st, struct jobs_export *x)
{
    struct broker *b = st->broker;
    const char *dir = b->cfg.jobs.export_dir;
    jobs_export_reset(x); /* a run cut short (timeout) left its state */
    if (dir[0] == '\0') {
        snprintf(st->detail, sizeof(st->detail), "[jobs] export.dir is not set");
        return LMQ_EINVAL;
    }
    uint64_t next = 0;
    if (jobs_export_next(dir, &next) != LMQ_OK) {
        snprintf(st->detail, sizeof(st->detail), "cannot read export.dir %.120s", dir);
        return LMQ_EIO;
    }
    const char *note = pipeline_checkpoint_note(b, &x->tree_size);
    if (note == NULL || x->tree_size <= next) {
        snprintf(st->detail, sizeof(st->detail), "nothing new after %" PRIu64, next);
        return JOBS_STEP_DONE;
    }
    snprintf(x->checkpoint_note, sizeof(x->checkpoint_note), "%s", note);
    x->first = next;
    x->end = LMQ_MIN(x->tree_size, next + b->cfg.jobs.export_max_rows);
    x->gzip = b->cfg.jobs.export_gzip;
    snprintf(x->tmp, sizeof(x->tmp), "%s/.ledger-%020" PRIu64 ".jsonl.tmp", dir, x->first);
    x->out = fopen(x->tmp, "w");
    x->sha = EVP_MD_CTX_new();
    if (x->gzip && deflateInit2(&x->z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, JOBS_EXPORT_GZIP_WBITS,
                                JOBS_EXPORT_GZIP_MEMLEVEL, Z_DEFAULT_STRATEGY) == Z_OK)
        x->z_init = true;
    if (x->out == NULL || x->sha == NULL || EVP_DigestInit_ex(x->sha, EVP_sha256(), NULL) != 1 ||
        x->gzip != x->z_init) {
        snprintf(st->detail, sizeof(st->detail), "cannot write %.120s", x->tmp);
        jobs_export_reset(x);
        return LMQ_EIO;
    }
    st->cursor = x->first + 1; /* cursor: the next index + 1 (0 means "not begun") */
    st->delay_ms = 1;
    return JOBS_STEP_MORE;
}

/* The last step: the .jsonl renamed into place, then its manifest. */
static int jobs_export_finish(struct jobs_step *st, struct jobs_export *x)
{
    const char *dir = st->broker->cfg.jobs.export_dir;
    uint64_t last = x->end - 1;
    char name[LMQ_PATH_MAX_BYTES + JOBS_EXPORT_NAME_MAX], hex[65] = "";
    uint8_t digest[32];
    unsigned int len = 0;
    int rc = LMQ_OK;
    if (x->gzip && !jobs_export_write(x, "", 0, Z_FINISH))
        rc = LMQ_EIO;
    if (rc == LMQ_OK && EVP_DigestFinal_ex(x->sha, digest, &len) != 1)
        rc = LMQ_EIO;
    if (rc == LMQ_OK)
        rc = crypto_hex_encode(digest, len, hex, sizeof(hex));
    FILE *out = x->out;
    x->out = NULL;
    if (rc == LMQ_OK)
        rc = jobs_export_fsync_close(out);
    else
        fclose(out);
    snprintf(name, sizeof(name), "%s/ledger-%020" PRIu64 "-%020" PRIu64 ".jsonl%s", dir, x->first,
             last, x->gzip ? ".gz" : "");
    if (rc == LMQ_OK && rename(x->tmp, name) != 0)
        rc = LMQ_EIO;
    json_t *m =
        json_pack("{s:s,s:I,s:I,s:i,s:I,s:s,s:I}", "checkpoint", x->checkpoint_note, "count",
                  (json_int_t)(x->end - x->first), "first", (json_int_t)x->first, "format", 1,
                  "last", (json_int_t)last, "sha256", hex, "tree_size", (json_int_t)x->tree_size);
    if (m != NULL && x->gzip && json_object_set_new(m, "compression", json_string("gzip")) != 0)
        rc = LMQ_EIO;
    snprintf(x->tmp, sizeof(x->tmp), "%s/.ledger-%020" PRIu64 ".manifest.tmp", dir, x->first);
    FILE *mf = rc == LMQ_OK && m != NULL ? fopen(x->tmp, "w") : NULL;
    if (mf == NULL || json_dumpf(m, mf, JSON_COMPACT | JSON_SORT_KEYS) != 0 ||
        fputc('\n', mf) == EOF) {
        rc = LMQ_EIO;
        if (mf != NULL)
            fclose(mf);
    } else {
        rc = jobs_export_fsync_close(mf);
    }
    json_decref(m);
    snprintf(name, sizeof(name), "%s/ledger-%020" PRIu64 "-%020" PRIu64 ".manifest.json", dir,
             x->first, last);
    if (rc == LMQ_OK && (rename(x->tmp, name) != 0 || jobs_export_fsync_dir(dir) != LMQ_OK))
        rc = LMQ_EIO;
    if (rc != LMQ_OK) {
        snprintf(st->detail, sizeof(st->detail),
                 "cannot write the export of %" PRIu64 "..%" PRIu64 " into %.160s", x->first, last,
                 dir);
        jobs_export_reset(x);
        return rc;
    }
    x->tmp[0] = '\0'; /* renamed: nothing to remove */
    snprintf(st->detail, sizeof(st->detail),
             "exported %" PRIu64 "..%" PRIu64 " (%" PRIu64 " entries)", x->first, last,
             x->end - x->first);
    jobs_export_reset(x);
    return JOBS_STEP_DONE;
}

int jobs_export_step(struct jobs_step *st)
{
    struct jobs_export *x = &jobs_export_state;
    if (st->cursor == 0)
        return jobs_export_begin(st, x);
    uint64_t from = st->cursor - 1;
    if (from < x->end) {
        struct jobs_export_rows w = {.b = st->broker, .x = x, .last = from};
        size_t count = 0;
        size_t limit = (size_t)LMQ_MIN((uint64_t)JOBS_EXPORT_STEP_ROWS, x->end - from);
        int rc = store_ledger_range(st->broker->store, from, limit, jobs_export_row, &w, &count);
        if (rc != LMQ_OK || w.failed || count == 0) {
            snprintf(st->detail, sizeof(st->detail), "cannot export from %" PRIu64 ": %s", from,
                     w.failed ? "write failed" : "read failed");
            jobs_export_reset(x);
            return LMQ_EIO;
        }
        st->count += count;
        st->cursor = from + count + 1;
        st->delay_ms = 1; /* the next step in a later loop turn: other work runs between */
        if (from + count < x->end)
            return JOBS_STEP_MORE;
    }
    return jobs_export_finish(st, x);
}
