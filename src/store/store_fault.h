/*
 * Fault injection for the store, driven by environment variables so crash and
 * failure tests can run the real binary:
 *   LMQ_FAULT_FAIL_WRITE=N      the Nth write to the database or WAL fails (EIO)
 *   LMQ_FAULT_FAIL_SYNC=N       the Nth fsync of the database or WAL fails
 *   LMQ_FAULT_COMMIT_DELAY_MS=N every commit waits N ms before COMMIT
 * With none set, SQLite's default VFS is used untouched.
 */
#ifndef STORE_FAULT_H
#define STORE_FAULT_H

#include <stddef.h>

/* Reads the environment and registers the fault VFS when needed. Returns 0 or LMQ_EINVAL. */
int store_fault_init(char *err, size_t err_len);

/* Name of the VFS to open the writer with (NULL = SQLite's default). */
const char *store_fault_vfs_name(void);

/* Called by the storage thread right before COMMIT (applies the commit delay). */
void store_fault_before_commit(void);

#endif
