/* The SQLite schema and its forward migrations. */
#ifndef STORE_SCHEMA_H
#define STORE_SCHEMA_H

#include <sqlite3.h>
#include <stddef.h>

/* The schema version this binary writes. */
#define STORE_SCHEMA_VERSION 12

/*
 * Brings db to `target` (<= STORE_SCHEMA_VERSION), applying each missing
 * migration in its own transaction. Refuses a database newer than this
 * binary. Returns 0 or LMQ_EIO with a one-line message in err.
 */
int store_schema_migrate_to(sqlite3 *db, int target, char *err, size_t err_len);

/* store_schema_migrate_to(db, STORE_SCHEMA_VERSION, ...). */
int store_schema_migrate(sqlite3 *db, char *err, size_t err_len);

/* Reads the schema version (0 for an empty database). Returns 0 or LMQ_EIO. */
int store_schema_version(sqlite3 *db, int *version);

/* Like store_schema_version() on a read-only connection: creates nothing (no schema_version
 * table: 0). Returns 0 or LMQ_EIO (not a database, I/O error: sqlite3_errmsg(db) says). */
int store_schema_version_read(sqlite3 *db, int *version);

#endif
