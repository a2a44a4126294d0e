/*
 * powerloss: an LD_PRELOAD shim that turns a SIGKILL into a simulated power
 * loss for SQLite's files.
 *
 * For every file whose path ends in one of the tracked suffixes (".db",
 * "-wal", "-journal"; POWERLOSS_SUFFIXES="a,b,c" replaces the list; the -shm
 * file is always pass-through: SQLite rebuilds it after a crash), writes do
 * not reach the file. They go to an in-memory overlay kept per inode (so every
 * descriptor of the file, in every thread, sees them, as it would see the page
 * cache). Reads and fstat see the overlay on top of the real file. fsync and
 * fdatasync write the overlay (and any truncation) to the real file and then
 * call the real fsync. What was never fsynced is lost when the process dies:
 * exactly what a power loss loses, file creation and unlink aside (they are
 * treated as durable at once).
 *
 * POWERLOSS_TEAR=1: at one fsync of a tracked file, chosen at random in
 * 1..POWERLOSS_TEAR_MAX (default 100), only a random prefix of the overlay (in
 * file order, possibly ending inside a page) is written, then the process
 * ends with _exit(137): a torn write at the moment the power goes.
 * POWERLOSS_SEED seeds that choice. POWERLOSS_REPORT=FILE appends one line per
 * tracked open ("open PATH") and per torn fsync, so a harness can prove the
 * shim was really in the path.
 *
 * Anything the overlay cannot model (mmap of a tracked file, a descriptor
 * number above PL_FDS_MAX, running out of memory) aborts loudly: a shim that
 * silently stops simulating would make a harness pass for the wrong reason.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define PL_BLOCK_BYTES 4096
#define PL_FDS_MAX 4096
#define PL_FILES_MAX 64
#define PL_SUFFIXES_MAX 8
#define PL_SUFFIX_BYTES 32
#define PL_PATH_BYTES 512
#define PL_TEAR_MAX_DEFAULT 100

struct pl_file {
    bool used;
    dev_t dev;
    ino_t ino;
    char path[PL_PATH_BYTES];
    int open_count;
    bool unlinked;
    off_t size;       /* size as the process sees it */
    off_t disk_floor; /* real bytes at or past this offset are invisible (truncated away) */
    bool dirty;       /* overlay or size differs from the real file */
    uint8_t **blocks; /* blocks[i]: bytes [i*PL_BLOCK_BYTES, +PL_BLOCK_BYTES), or NULL */
    size_t blocks_cap;
};

static pthread_mutex_t pl_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pl_file pl_files[PL_FILES_MAX];
static atomic_int pl_fd_file[PL_FDS_MAX]; /* file index + 1, 0 when untracked */
static char pl_suffixes[PL_SUFFIXES_MAX][PL_SUFFIX_BYTES];
static int pl_suffix_count = -1;
static long pl_fsync_count;
static long pl_tear_at; /* 0: never tear */
static unsigned long long pl_rng;

/* The real functions. */
static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
static int (*real_close)(int);
static ssize_t (*real_read)(int, void *, size_t);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pread)(int, void *, size_t, off_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static off_t (*real_lseek)(int, off_t, int);
static int (*real_ftruncate)(int, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_fstat)(int, struct stat *);
static int (*real_fstat64)(int, struct stat64 *);
static int (*real_unlink)(const char *);
static void *(*real_mmap)(void *, size_t, int, int, int, off_t);
static int (*real_fallocate)(int, int, off_t, off_t);
static int (*real_posix_fallocate)(int, off_t, off_t);

static void *pl_sym(const char *name)
{
    void *p = dlsym(RTLD_NEXT, name);
    if (p == NULL) {
        fprintf(stderr, "powerloss: dlsym(%s) failed\n", name);
        abort();
    }
    return p;
}

static void pl_resolve(void)
{
    if (real_open != NULL)
        return;
    real_openat = pl_sym("openat");
    real_openat64 = pl_sym("openat64");
    real_open64 = pl_sym("open64");
    real_close = pl_sym("close");
    real_read = pl_sym("read");
    real_write = pl_sym("write");
    real_pread = pl_sym("pread64");
    real_pwrite = pl_sym("pwrite64");
    real_lseek = pl_sym("lseek64");
    real_ftruncate = pl_sym("ftruncate64");
    real_fsync = pl_sym("fsync");
    real_fdatasync = pl_sym("fdatasync");
    real_fstat = pl_sym("fstat");
    real_fstat64 = pl_sym("fstat64");
    real_unlink = pl_sym("unlink");
    real_mmap = pl_sym("mmap64");
    real_fallocate = pl_sym("fallocate64");
    real_posix_fallocate = pl_sym("posix_fallocate64");
    real_open = pl_sym("open"); /* last: it is the "resolved" flag */
}

/* Resolve before the program starts threads; the wrappers also resolve lazily for calls
 * made by other constructors. */
__attribute__((constructor)) static void pl_init(void)
{
    pl_resolve();
}

static void pl_die(const char *what, const char *path)
{
    char msg[PL_PATH_BYTES + 128];
    int n = snprintf(msg, sizeof(msg), "powerloss: %s (%s)\n", what, path ? path : "-");
    if (n > 0 && real_write != NULL)
        (void)!real_write(2, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
    abort();
}

static void pl_report(const char *fmt, ...)
{
    const char *report = getenv("POWERLOSS_REPORT");
    if (report == NULL || report[0] == '\0')
        return;
    char line[PL_PATH_BYTES + 128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    size_t len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
    int fd = real_open(report, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    (void)!real_write(fd, line, len);
    real_close(fd);
}

static unsigned long long pl_random(void)
{
    /* splitmix64: small, seedable, good enough to pick a tear point. */
    unsigned long long z = (pl_rng += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Reads the environment once (under pl_lock). */
static void pl_config(void)
{
    if (pl_suffix_count >= 0)
        return;
    const char *list = getenv("POWERLOSS_SUFFIXES");
    if (list == NULL || list[0] == '\0')
        list = ".db,-wal,-journal";
    pl_suffix_count = 0;
    while (*list != '\0' && pl_suffix_count < PL_SUFFIXES_MAX) {
        size_t n = strcspn(list, ",");
        if (n > 0 && n < PL_SUFFIX_BYTES) {
            memcpy(pl_suffixes[pl_suffix_count], list, n);
            pl_suffixes[pl_suffix_count][n] = '\0';
            pl_suffix_count++;
        }
        list += n + (list[n] == ',' ? 1 : 0);
    }
    const char *seed = getenv("POWERLOSS_SEED");
    pl_rng = seed ? strtoull(seed, NULL, 10) : (unsigned long long)getpid();
    const char *tear = getenv("POWERLOSS_TEAR");
    if (tear != NULL && strcmp(tear, "1") == 0) {
        const char *max_s = getenv("POWERLOSS_TEAR_MAX");
        long max = max_s ? strtol(max_s, NULL, 10) : PL_TEAR_MAX_DEFAULT;
        if (max < 1)
            max = 1;
        pl_tear_at = 1 + (long)(pl_random() % (unsigned long long)max);
    }
}

static bool pl_path_tracked(const char *path)
{
    if (path == NULL)
        return false;
    size_t len = strlen(path);
    for (int i = 0; i < pl_suffix_count; i++) {
        size_t n = strlen(pl_suffixes[i]);
        if (len >= n && strcmp(path + len - n, pl_suffixes[i]) == 0)
            return true;
    }
    return false;
}

static struct pl_file *pl_fd(int fd)
{
    if (fd < 0 || fd >= PL_FDS_MAX)
        return NULL;
    int idx = atomic_load(&pl_fd_file[fd]);
    return idx == 0 ? NULL : &pl_files[idx - 1];
}

static void pl_file_free(struct pl_file *f)
{
    for (size_t i = 0; i < f->blocks_cap; i++)
        free(f->blocks[i]);
    free(f->blocks);
    memset(f, 0, sizeof(*f));
}

/* After a real open returned fd for path: start tracking it (under pl_lock). */
static void pl_track(int fd, const char *path)
{
    struct stat st;
    if (fd >= PL_FDS_MAX)
        pl_die("descriptor number too large to track", path);
    if (real_fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        return;
    struct pl_file *f = NULL, *free_slot = NULL;
    for (int i = 0; i < PL_FILES_MAX; i++) {
        if (pl_files[i].used && !pl_files[i].unlinked && pl_files[i].dev == st.st_dev &&
            pl_files[i].ino == st.st_ino)
            f = &pl_files[i];
        else if (!pl_files[i].used && free_slot == NULL)
            free_slot = &pl_files[i];
    }
    if (f == NULL) {
        if (free_slot == NULL)
            pl_die("too many tracked files", path);
        f = free_slot;
        f->used = true;
        f->dev = st.st_dev;
        f->ino = st.st_ino;
        snprintf(f->path, sizeof(f->path), "%s", path);
        f->size = st.st_size;
        f->disk_floor = st.st_size;
    }
    f->open_count++;
    atomic_store(&pl_fd_file[fd], (int)(f - pl_files) + 1);
    pl_report("open %s\n", path);
}

/* Copies the visible bytes of block b (overlay, else real file below disk_floor, else zeros). */
static void pl_block_read(int fd, struct pl_file *f, size_t b, uint8_t *out)
{
    if (b < f->blocks_cap && f->blocks[b] != NULL) {
        memcpy(out, f->blocks[b], PL_BLOCK_BYTES);
        return;
    }
    memset(out, 0, PL_BLOCK_BYTES);
    off_t start = (off_t)b * PL_BLOCK_BYTES;
    if (start >= f->disk_floor)
        return;
    off_t want = f->disk_floor - start < PL_BLOCK_BYTES ? f->disk_floor - start : PL_BLOCK_BYTES;
    off_t got = 0;
    while (got < want) { /* bounded: each pass reads at least one byte or stops */
        ssize_t n = real_pread(fd, out + got, (size_t)(want - got), start + got);
        if (n <= 0)
            break; /* a short real file reads as zeros, as beyond its end */
        got += n;
    }
}

static uint8_t *pl_block_get(int fd, struct pl_file *f, size_t b)
{
    if (b >= f->blocks_cap) {
        size_t cap = f->blocks_cap ? f->blocks_cap : 64;
        while (cap <= b)
            cap *= 2;
        uint8_t **blocks = realloc(f->blocks, cap * sizeof(*blocks));
        if (blocks == NULL)
            pl_die("out of memory", f->path);
        memset(blocks + f->blocks_cap, 0, (cap - f->blocks_cap) * sizeof(*blocks));
        f->blocks = blocks;
        f->blocks_cap = cap;
    }
    if (f->blocks[b] == NULL) {
        uint8_t *data = malloc(PL_BLOCK_BYTES);
        if (data == NULL)
            pl_die("out of memory", f->path);
        pl_block_read(fd, f, b, data);
        f->blocks[b] = data;
    }
    return f->blocks[b];
}

static ssize_t pl_read_at(int fd, struct pl_file *f, void *buf, size_t len, off_t pos)
{
    if (pos < 0) {
        errno = EINVAL;
        return -1;
    }
    if (pos >= f->size)
        return 0;
    if ((off_t)len > f->size - pos)
        len = (size_t)(f->size - pos);
    uint8_t block[PL_BLOCK_BYTES];
    size_t done = 0;
    while (done < len) { /* one block per pass */
        off_t at = pos + (off_t)done;
        size_t b = (size_t)(at / PL_BLOCK_BYTES), in = (size_t)(at % PL_BLOCK_BYTES);
        size_t n = PL_BLOCK_BYTES - in < len - done ? PL_BLOCK_BYTES - in : len - done;
        pl_block_read(fd, f, b, block);
        memcpy((uint8_t *)buf + done, block + in, n);
        done += n;
    }
    return (ssize_t)done;
}

static ssize_t pl_write_at(int fd, struct pl_file *f, const void *buf, size_t len, off_t pos)
{
    if (pos < 0) {
        errno = EINVAL;
        return -1;
    }
    size_t done = 0;
    while (done < len) { /* one block per pass */
        off_t at = pos + (off_t)done;
        size_t b = (size_t)(at / PL_BLOCK_BYTES), in = (size_t)(at % PL_BLOCK_BYTES);
        size_t n = PL_BLOCK_BYTES - in < len - done ? PL_BLOCK_BYTES - in : len - done;
        memcpy(pl_block_get(fd, f, b) + in, (const uint8_t *)buf + done, n);
        done += n;
    }
    if (pos + (off_t)len > f->size)
        f->size = pos + (off_t)len;
    f->dirty = true;
    return (ssize_t)len;
}

static void pl_truncate(struct pl_file *f, off_t len)
{
    for (size_t b = 0; b < f->blocks_cap; b++) {
        off_t start = (off_t)b * PL_BLOCK_BYTES;
        if (f->blocks[b] == NULL || start + PL_BLOCK_BYTES <= len)
            continue;
        if (start >= len) {
            free(f->blocks[b]);
            f->blocks[b] = NULL;
        } else { /* the block straddling the new end: what follows it reads as zeros */
            memset(f->blocks[b] + (len - start), 0, (size_t)(PL_BLOCK_BYTES - (len - start)));
        }
    }
    if (len < f->disk_floor)
        f->disk_floor = len;
    f->size = len;
    f->dirty = true;
}

static int pl_write_all(int fd, const uint8_t *data, size_t len, off_t pos)
{
    size_t done = 0;
    while (done < len) { /* bounded: each pass writes at least one byte or fails */
        ssize_t n = real_pwrite(fd, data + done, len - done, pos + (off_t)done);
        if (n <= 0)
            return -1;
        done += (size_t)n;
    }
    return 0;
}

/* Writes the first limit bytes (in file order) of the overlay to the real file. */
static int pl_apply(int fd, struct pl_file *f, unsigned long long limit, bool set_size)
{
    if (set_size && real_ftruncate(fd, f->disk_floor) != 0)
        return -1;
    for (size_t b = 0; b < f->blocks_cap && limit > 0; b++) {
        if (f->blocks[b] == NULL)
            continue;
        off_t start = (off_t)b * PL_BLOCK_BYTES;
        size_t n = f->size - start < PL_BLOCK_BYTES ? (size_t)(f->size - start) : PL_BLOCK_BYTES;
        if (n > limit)
            n = (size_t)limit;
        if (pl_write_all(fd, f->blocks[b], n, start) != 0)
            return -1;
        limit -= n;
        if (set_size) {
            free(f->blocks[b]);
            f->blocks[b] = NULL;
        }
    }
    if (set_size) {
        if (real_ftruncate(fd, f->size) != 0)
            return -1;
        f->disk_floor = f->size;
        f->dirty = false;
    }
    return 0;
}

static unsigned long long pl_overlay_bytes(const struct pl_file *f)
{
    unsigned long long total = 0;
    for (size_t b = 0; b < f->blocks_cap; b++) {
        off_t start = (off_t)b * PL_BLOCK_BYTES;
        if (f->blocks[b] != NULL)
            total += f->size - start < PL_BLOCK_BYTES ? (unsigned long long)(f->size - start)
                                                      : PL_BLOCK_BYTES;
    }
    return total;
}

static int pl_sync(int fd, int (*real_sync)(int))
{
    pl_resolve();
    struct pl_file *f = pl_fd(fd);
    if (f == NULL)
        return real_sync(fd);
    pthread_mutex_lock(&pl_lock);
    f = pl_fd(fd);
    if (f == NULL) {
        pthread_mutex_unlock(&pl_lock);
        return real_sync(fd);
    }
    pl_fsync_count++;
    if (pl_tear_at > 0 && pl_fsync_count == pl_tear_at) {
        unsigned long long total = pl_overlay_bytes(f);
        unsigned long long keep = total ? pl_random() % total : 0;
        pl_report("tear fsync=%ld path=%s applied=%llu of=%llu\n", pl_fsync_count, f->path, keep,
                  total);
        (void)pl_apply(fd, f, keep, false);
        _exit(137);
    }
    int rc = f->dirty ? pl_apply(fd, f, ~0ULL, true) : 0;
    int saved = errno;
    pthread_mutex_unlock(&pl_lock);
    if (rc != 0) {
        errno = saved ? saved : EIO;
        return -1;
    }
    return real_sync(fd);
}

static int pl_open_common(int dirfd, const char *path, int flags, mode_t mode, bool at)
{
    pl_resolve();
    int fd = at ? real_openat64(dirfd, path, flags, mode) : real_open64(path, flags, mode);
    if (fd < 0)
        return fd;
    int saved = errno;
    pthread_mutex_lock(&pl_lock);
    pl_config();
    if (pl_path_tracked(path)) {
        if (flags & O_TRUNC)
            pl_die("O_TRUNC on a tracked file is not modelled", path);
        pl_track(fd, path);
    }
    pthread_mutex_unlock(&pl_lock);
    errno = saved;
    return fd;
}

static mode_t pl_mode(int flags, va_list ap)
{
    /* The same test as glibc's __OPEN_NEEDS_MODE: only then was a mode passed. */
    bool needs_mode = (flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE;
    return needs_mode ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = pl_mode(flags, ap);
    va_end(ap);
    return pl_open_common(AT_FDCWD, path, flags, mode, false);
}

int open64(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = pl_mode(flags, ap);
    va_end(ap);
    return pl_open_common(AT_FDCWD, path, flags, mode, false);
}

int openat(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = pl_mode(flags, ap);
    va_end(ap);
    return pl_open_common(dirfd, path, flags, mode, true);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = pl_mode(flags, ap);
    va_end(ap);
    return pl_open_common(dirfd, path, flags, mode, true);
}

int close(int fd)
{
    pl_resolve();
    if (pl_fd(fd) == NULL)
        return real_close(fd);
    pthread_mutex_lock(&pl_lock);
    struct pl_file *f = pl_fd(fd);
    if (f != NULL) {
        atomic_store(&pl_fd_file[fd], 0);
        /* The overlay outlives the descriptor (it is the page cache), unless the file is gone. */
        if (--f->open_count == 0 && f->unlinked)
            pl_file_free(f);
    }
    int rc = real_close(fd);
    pthread_mutex_unlock(&pl_lock);
    return rc;
}

int unlink(const char *path)
{
    pl_resolve();
    struct stat st;
    pthread_mutex_lock(&pl_lock);
    pl_config();
    bool tracked = pl_path_tracked(path) && stat(path, &st) == 0;
    int rc = real_unlink(path);
    if (rc == 0 && tracked && st.st_nlink <= 1) {
        for (int i = 0; i < PL_FILES_MAX; i++) {
            struct pl_file *f = &pl_files[i];
            if (f->used && !f->unlinked && f->dev == st.st_dev && f->ino == st.st_ino) {
                f->unlinked = true;
                if (f->open_count == 0)
                    pl_file_free(f);
            }
        }
    }
    int saved = errno;
    pthread_mutex_unlock(&pl_lock);
    errno = saved;
    return rc;
}

ssize_t pread64(int fd, void *buf, size_t len, off_t pos)
{
    pl_resolve();
    if (pl_fd(fd) == NULL)
        return real_pread(fd, buf, len, pos);
    pthread_mutex_lock(&pl_lock);
    struct pl_file *f = pl_fd(fd);
    ssize_t n = f ? pl_read_at(fd, f, buf, len, pos) : real_pread(fd, buf, len, pos);
    pthread_mutex_unlock(&pl_lock);
    return n;
}

ssize_t pread(int fd, void *buf, size_t len, off_t pos)
{
    return pread64(fd, buf, len, pos);
}

ssize_t pwrite64(int fd, const void *buf, size_t len, off_t pos)
{
    pl_resolve();
    if (pl_fd(fd) == NULL)
        return real_pwrite(fd, buf, len, pos);
    pthread_mutex_lock(&pl_lock);
    struct pl_file *f = pl_fd(fd);
    ssize_t n = f ? pl_write_at(fd, f, buf, len, pos) : real_pwrite(fd, buf, len, pos);
    pthread_mutex_unlock(&pl_lock);
    return n;
}

ssize_t pwrite(int fd, const void *buf, size_t len, off_t pos)
{
    return pwrite64(fd, buf, len, pos);
}

/* read/write at the descriptor's offset, kept by the kernel through the real lseek. */
ssize_t read(int fd, void *buf, size_t len)
{
    pl_resolve();
    if (pl_fd(fd) == NULL)
        return real_read(fd, buf, len);
    pthread_mutex_lock(&pl_lock);
    struct pl_file *f = pl_fd(fd);
    off_t pos = real_lseek(fd, 0, SEEK_CUR);
    ssize_t n = pos < 0 || f == NULL ? -1 : pl_read_at(fd, f, buf, len, pos);
    if (n > 0)
        real_lseek(fd, pos + n, SEEK_SET);
    pthread_mutex_unlock(&pl_lock);
    return n;
}

ssize_t write(int fd, const void *buf, size_t len)
{
    pl_resolve();
    if (pl_fd(fd) == NULL)
        return real_write(fd, buf, len);
    pthread_mutex_lock(&pl_lock);
    struct pl_file *f = pl_fd(fd);
    off_t pos = real_lseek(fd, 0, SEEK_CUR);
    ssize_t n = pos < 0 || f == NULL ? -1 : pl_write_at(fd, f, buf, len, pos);
    if (n > 0)
        real_lseek(fd, pos + n, SEEK_SET);
    pthread_mutex_unlock(&pl_lock);
    return n;
}

off_t lseek64(int fd, off_t off, int whence)
{
    pl_resolve();
    if (pl_fd(fd) == NULL || whence != SEEK_END)
        return real_lseek(fd, off, whence);
    pthread_mutex_lock(&pl_lock);
    struct pl_file *f = pl_fd(fd);
    off_t rc = f ? real_lseek(fd, f->size + off, SEEK_SET) : real_lseek(fd, off, whence);
    pthread_mutex_unlock(&pl_lock);
    return rc;
}

off_t lseek(int fd, off_t off, int whence)
{
    return lseek64(fd, off, whence);
}

int ftruncate64(int fd, off_t len)
{
    pl_resolve();
    if (pl_fd(fd) == NULL)
        return real_ftruncate(fd, len);
    if (len < 0) {
        errno = EINVAL;
        return -1;
    }
    pthread_mutex_lock(&pl_lock);
    struct pl_file *f = pl_fd(fd);
    int rc = 0;
    if (f != NULL)
        pl_truncate(f, len);
    else
        rc = real_ftruncate(fd, len);
    pthread_mutex_unlock(&pl_lock);
    return rc;
}

int ftruncate(int fd, off_t len)
{
    return ftruncate64(fd, len);
}

int fallocate64(int fd, int mode, off_t off, off_t len)
{
    pl_resolve();
    if (pl_fd(fd) == NULL)
        return real_fallocate(fd, mode, off, len);
    if (mode != 0)
        pl_die("fallocate with a mode on a tracked file is not modelled", pl_fd(fd)->path);
    pthread_mutex_lock(&pl_lock);
    struct pl_file *f = pl_fd(fd);
    if (f != NULL && off + len > f->size) { /* the new range reads as zeros: holes in the overlay */
        f->size = off + len;
        f->dirty = true;
    }
    pthread_mutex_unlock(&pl_lock);
    return 0;
}

int fallocate(int fd, int mode, off_t off, off_t len)
{
    return fallocate64(fd, mode, off, len);
}

int posix_fallocate64(int fd, off_t off, off_t len)
{
    pl_resolve();
    if (pl_fd(fd) == NULL)
        return real_posix_fallocate(fd, off, len);
    return fallocate64(fd, 0, off, len) == 0 ? 0 : errno;
}

int posix_fallocate(int fd, off_t off, off_t len)
{
    return posix_fallocate64(fd, off, len);
}

int fsync(int fd)
{
    return pl_sync(fd, real_fsync);
}

int fdatasync(int fd)
{
    return pl_sync(fd, real_fdatasync);
}

/* Replaces the size reported for a tracked descriptor by the size the process sees. */
static void pl_fix_stat(int fd, off_t *size, blkcnt_t *blocks)
{
    pthread_mutex_lock(&pl_lock);
    struct pl_file *f = pl_fd(fd);
    if (f != NULL) {
        *size = f->size;
        *blocks = (f->size + 511) / 512;
    }
    pthread_mutex_unlock(&pl_lock);
}

int fstat64(int fd, struct stat64 *st)
{
    pl_resolve();
    int rc = real_fstat64(fd, st);
    if (rc == 0 && pl_fd(fd) != NULL)
        pl_fix_stat(fd, &st->st_size, &st->st_blocks);
    return rc;
}

int fstat(int fd, struct stat *st)
{
    pl_resolve();
    int rc = real_fstat(fd, st);
    if (rc == 0 && pl_fd(fd) != NULL)
        pl_fix_stat(fd, &st->st_size, &st->st_blocks);
    return rc;
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    pl_resolve();
    if (pl_fd(fd) != NULL)
        pl_die("mmap of a tracked file bypasses the overlay (PRAGMA mmap_size?)", pl_fd(fd)->path);
    return real_mmap(addr, len, prot, flags, fd, off);
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    return mmap64(addr, len, prot, flags, fd, off);
}
