#include "store/store_fault.h"

#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/lmq.h"
#include "core/log.h"

#define FAULT_VFS_NAME "lmq-fault"

/* Process-wide by nature: SQLite VFSes are global. Set once before the storage thread starts. */
static struct {
    bool enabled;
    uint64_t fail_write_at;
    uint64_t fail_sync_at;
    uint64_t commit_delay_ms;
    atomic_uint_fast64_t writes;
    atomic_uint_fast64_t syncs;
    sqlite3_vfs vfs;
    sqlite3_vfs *base;
    sqlite3_io_methods methods;
} fault;

struct fault_file {
    sqlite3_file base;
    bool counted; /* the database or its WAL */
    sqlite3_file *real;
};

static int env_u64(const char *name, uint64_t *out, char *err, size_t err_len)
{
    const char *v = getenv(name);
    *out = 0;
    if (v == NULL || *v == '\0')
        return LMQ_OK;
    char *end = NULL;
    unsigned long long n = strtoull(v, &end, 10);
    if (*end != '\0' || v[0] == '-') {
        snprintf(err, err_len, "%s: expected a non-negative integer, got \"%s\"", name, v);
        return LMQ_EINVAL;
    }
    *out = n;
    return LMQ_OK;
}

#define REAL(f) (((struct fault_file *)(f))->real)

/* Storage thread: the logger builds the line on this stack and writes it with one write(2). */
static void fault_log(const char *op)
{
    struct lmq_log_line line;
    if (!lmq_log_begin(&line, LMQ_LOG_WARN, "fault_injected"))
        return;
    lmq_log_str(&line, "op", op);
    lmq_log_end(&line);
}

static int fault_close(sqlite3_file *f)
{
    int rc = REAL(f)->pMethods->xClose(REAL(f));
    return rc;
}
static int fault_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
    return REAL(f)->pMethods->xRead(REAL(f), buf, amt, off);
}
static int fault_write(sqlite3_file *f, const void *buf, int amt, sqlite3_int64 off)
{
    if (((struct fault_file *)f)->counted && fault.fail_write_at > 0 &&
        atomic_fetch_add(&fault.writes, 1) + 1 == fault.fail_write_at) {
        fault_log("write");
        return SQLITE_IOERR_WRITE;
    }
    return REAL(f)->pMethods->xWrite(REAL(f), buf, amt, off);
}
static int fault_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    return REAL(f)->pMethods->xTruncate(REAL(f), size);
}
static int fault_sync(sqlite3_file *f, int flags)
{
    if (((struct fault_file *)f)->counted && fault.fail_sync_at > 0 &&
        atomic_fetch_add(&fault.syncs, 1) + 1 == fault.fail_sync_at) {
        fault_log("fsync");
        return SQLITE_IOERR_FSYNC;
    }
    return REAL(f)->pMethods->xSync(REAL(f), flags);
}
static int fault_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return REAL(f)->pMethods->xFileSize(REAL(f), size);
}
static int fault_lock(sqlite3_file *f, int level)
{
    return REAL(f)->pMethods->xLock(REAL(f), level);
}
static int fault_unlock(sqlite3_file *f, int level)
{
    return REAL(f)->pMethods->xUnlock(REAL(f), level);
}
static int fault_check_lock(sqlite3_file *f, int *out)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}
static int fault_file_control(sqlite3_file *f, int op, void *arg)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}
static int fault_sector_size(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}
static int fault_device_chars(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int fault_shm_map(sqlite3_file *f, int pg, int sz, int extend, void volatile **pp)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, extend, pp);
}
static int fault_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}
static void fault_shm_barrier(sqlite3_file *f)
{
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}
static int fault_shm_unmap(sqlite3_file *f, int del)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

static int fault_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags,
                      int *out_flags)
{
    LMQ_UNUSED(vfs);
    struct fault_file *ff = (struct fault_file *)f;
    ff->real = (sqlite3_file *)(ff + 1);
    ff->counted = (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL)) != 0;
    int rc = fault.base->xOpen(fault.base, name, ff->real, flags, out_flags);
    ff->base.pMethods = rc == SQLITE_OK && ff->real->pMethods ? &fault.methods : NULL;
    return rc;
}

int store_fault_init(char *err, size_t err_len)
{
    if (fault.base != NULL)
        return LMQ_OK; /* already registered in this process */
    if (env_u64("LMQ_FAULT_FAIL_WRITE", &fault.fail_write_at, err, err_len) != LMQ_OK ||
        env_u64("LMQ_FAULT_FAIL_SYNC", &fault.fail_sync_at, err, err_len) != LMQ_OK ||
        env_u64("LMQ_FAULT_COMMIT_DELAY_MS", &fault.commit_delay_ms, err, err_len) != LMQ_OK)
        return LMQ_EINVAL;
    fault.enabled = fault.fail_write_at > 0 || fault.fail_sync_at > 0;
    if (!fault.enabled)
        return LMQ_OK;
    fault.base = sqlite3_vfs_find(NULL);
    LMQ_ASSERT(fault.base != NULL);
    fault.vfs = *fault.base;
    fault.vfs.zName = FAULT_VFS_NAME;
    fault.vfs.pNext = NULL;
    fault.vfs.szOsFile = (int)sizeof(struct fault_file) + fault.base->szOsFile;
    fault.vfs.xOpen = fault_open;
    fault.methods = (sqlite3_io_methods){
        .iVersion = 2,
        .xClose = fault_close,
        .xRead = fault_read,
        .xWrite = fault_write,
        .xTruncate = fault_truncate,
        .xSync = fault_sync,
        .xFileSize = fault_file_size,
        .xLock = fault_lock,
        .xUnlock = fault_unlock,
        .xCheckReservedLock = fault_check_lock,
        .xFileControl = fault_file_control,
        .xSectorSize = fault_sector_size,
        .xDeviceCharacteristics = fault_device_chars,
        .xShmMap = fault_shm_map,
        .xShmLock = fault_shm_lock,
        .xShmBarrier = fault_shm_barrier,
        .xShmUnmap = fault_shm_unmap,
    };
    if (sqlite3_vfs_register(&fault.vfs, 0) != SQLITE_OK) {
        snprintf(err, err_len, "cannot register the fault-injection VFS");
        return LMQ_EINVAL;
    }
    return LMQ_OK;
}

const char *store_fault_vfs_name(void)
{
    return fault.enabled ? FAULT_VFS_NAME : NULL;
}

void store_fault_before_commit(void)
{
    if (fault.commit_delay_ms == 0)
        return;
    struct timespec ts = {.tv_sec = (time_t)(fault.commit_delay_ms / 1000),
                          .tv_nsec = (long)(fault.commit_delay_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}
